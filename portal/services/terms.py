"""Templates and their published versions: edit the draft, publish an immutable version, compare versions,
and see which client stands on which version of the payment terms.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.clients import ClientStatus
from portal.domain.errors import DomainError
from portal.domain.evidence import AgreementStatus
from portal.domain.terms import TermsStanding
from portal.models import Agreement, Client, StaffUser, TermsTemplate, TermsVersion

from . import reports
from .locking import begin_write, serialize


def get_template(session: Session, kind: str) -> TermsTemplate:
    """The template of this kind; the first call creates it from the shipped default."""
    if kind not in T.TEMPLATE_KINDS:
        raise DomainError("Unknown kind of document.")
    query = select(TermsTemplate).where(TermsTemplate.kind == kind)
    template = session.scalar(query)
    if template is None:
        # a fresh install's first use, often a page view: create it holding the write lock (SQLite refuses a write
        # from a read transaction once another connection has committed), then look again under it
        begin_write(session)
        serialize(session, f"template {kind}")  # PostgreSQL: a second process waits here, then finds it
        template = session.scalar(query)
        if template is None:
            params = T.DEFAULT_PARAMETERS if kind == T.TERMS else {}
            template = TermsTemplate(kind=kind, title=T.TEMPLATE_TITLES[kind], draft_text=T.DEFAULT_TEXTS[kind],
                                     draft_parameters=evidence.canonical_json(params).decode(), updated_at=now())
            session.add(template)
        session.commit()
    return template


def draft_parameters(template: TermsTemplate) -> dict[str, str]:
    return json.loads(template.draft_parameters or "{}")


def version_parameters(version: TermsVersion) -> dict[str, str]:
    return json.loads(version.parameters or "{}")


def _validate(kind: str, text: str, parameters: dict, *, for_publishing: bool) -> dict[str, str]:
    text = (text or "").strip()
    if not text:
        raise DomainError("The text cannot be empty.")
    if len(text) > 100_000:
        raise DomainError("The text is too long (100,000 characters at most).")
    evidence.check_placeholders(text, T.variables_for(kind))
    return T.parse_parameters(parameters, for_publishing=for_publishing) if kind == T.TERMS else {}


def save_draft(session: Session, kind: str, *, text: str, parameters: dict, staff: StaffUser | None) -> TermsTemplate:
    """Edit the draft. Published versions are untouched: they only change by publishing a new one."""
    template = get_template(session, kind)
    clean = _validate(kind, text, parameters, for_publishing=False)
    template.draft_text = text.strip() + "\n"
    template.draft_parameters = evidence.canonical_json(clean).decode()
    template.updated_at = now()
    template.updated_by_staff_id = staff.id if staff else None
    session.commit()
    return template


def version_hash(text: str, parameters: dict[str, str]) -> str:
    """A version is its text and its parameters; the hash covers both."""
    return evidence.sha256_hex(evidence.canonical_json({"parameters": parameters, "text": text}))


def add_version(session: Session, kind: str, *, staff: StaffUser | None, summary: str = "") -> TermsVersion:
    """Freeze the current draft as the next version, inside the caller's transaction (no commit). Publishing
    payment terms also marks agreements on older versions: ``portal.services.agreements.publish`` does both."""
    template = get_template(session, kind)
    serialize(session, f"publish {kind}")  # PostgreSQL: two publishers of one kind take numbers one after the other
    parameters = _validate(kind, template.draft_text, draft_parameters(template), for_publishing=True)
    digest = version_hash(template.draft_text, parameters)
    latest = current_version(session, kind)
    if latest is not None and latest.sha256 == digest:
        raise DomainError(f"Nothing changed since version {latest.number}; edit the draft before publishing.")
    number = (session.scalar(select(func.max(TermsVersion.number)).where(TermsVersion.template_id == template.id))
              or 0) + 1
    version = TermsVersion(template_id=template.id, kind=kind, number=number, title=template.title,
                           text=template.draft_text, parameters=evidence.canonical_json(parameters).decode(),
                           sha256=digest, summary=(summary or "").strip()[:2000], published_at=now(),
                           published_by_staff_id=staff.id if staff else None)
    session.add(version)
    session.flush()
    return version


def current_version(session: Session, kind: str = T.TERMS) -> TermsVersion | None:
    return session.scalar(select(TermsVersion).where(TermsVersion.kind == kind)
                          .order_by(TermsVersion.number.desc()).limit(1))


def current_version_id_query(kind: str = T.TERMS):
    return select(func.max(TermsVersion.id)).where(TermsVersion.kind == kind).scalar_subquery()


def published(session: Session, kind: str, summary: str) -> TermsVersion:
    """The published version of ``kind``; on a fresh install the shipped text is published as version 1 (and
    committed), once however many processes get here first."""
    version = current_version(session, kind)
    if version is None:
        get_template(session, kind)  # created (and committed) first: publishing below then commits once
        # the first use may be a page view: publish holding the write lock (SQLite refuses a write from a read
        # transaction another connection committed after); on PostgreSQL a second process waits at the same
        # advisory lock as add_version takes, then finds the first one's version 1
        begin_write(session)
        serialize(session, f"publish {kind}")
        version = current_version(session, kind) or add_version(session, kind, staff=None, summary=summary)
        session.commit()
    return version


def ensure_disclosure(session: Session) -> TermsVersion:
    """The E-SIGN disclosure a signer consents to."""
    return published(session, T.DISCLOSURE, "Default disclosure")


def versions(session: Session, kind: str) -> list[TermsVersion]:
    return list(session.scalars(select(TermsVersion).where(TermsVersion.kind == kind)
                                .order_by(TermsVersion.number.desc())))


def get_version(session: Session, version_id: int) -> TermsVersion | None:
    return session.get(TermsVersion, version_id)


def previous_version(session: Session, version: TermsVersion) -> TermsVersion | None:
    return session.scalar(select(TermsVersion).where(TermsVersion.template_id == version.template_id,
                                                     TermsVersion.number < version.number)
                          .order_by(TermsVersion.number.desc()).limit(1))


@dataclass(frozen=True)
class ParameterChange:
    label: str
    old: str
    new: str


def compare(old: TermsVersion | None, new: TermsVersion) -> tuple[list[evidence.DiffLine], list[ParameterChange]]:
    """What changed from ``old`` to ``new``: a line diff of the text and the parameters that differ."""
    if old is None:
        return [], []
    before, after = version_parameters(old), version_parameters(new)
    changes = [ParameterChange(p.label, before.get(p.name, ""), after.get(p.name, ""))
               for p in T.PARAMETERS if before.get(p.name, "") != after.get(p.name, "")]
    return evidence.line_diff(old.text, new.text), changes


# ---------------------------------------------------------------------------------------------------- who is where

@dataclass(frozen=True)
class ClientTermsStatus:
    client: Client
    status: str  # unsigned | invited | signed | outdated | declined
    signed: Agreement | None  # the newest signed agreement, on whatever version
    open: Agreement | None  # an invitation on the current version
    latest: Agreement | None  # the newest agreement of any status

    @property
    def label(self) -> str:
        if self.status == TermsStanding.SIGNED and self.signed:
            return f"Signed v{self.signed.version.number}"
        if self.status == TermsStanding.OUTDATED and self.signed:
            return f"Outdated (signed v{self.signed.version.number})"
        return {TermsStanding.UNSIGNED: "Unsigned", TermsStanding.INVITED: "Invited",
                TermsStanding.DECLINED: "Declined"}.get(self.status, self.status)


def status_for(current: TermsVersion | None, client: Client, rows: list[Agreement]) -> ClientTermsStatus:
    """``rows``: the client's payment-terms agreements, newest first."""
    return ClientTermsStatus(client, *_standing(current, rows))


def _standing(current: TermsVersion | None, rows: Sequence[Agreement | _Terms]) -> tuple:
    """Where a client stands, and its agreements that say so (signed, open, latest), from its payment-terms
    agreements newest first: whole records or ``_Terms`` rows (the status and version are all the rule reads)."""
    signed = next((a for a in rows if a.status == AgreementStatus.SIGNED), None)
    open_ = next((a for a in rows if a.status == AgreementStatus.INVITED and current and a.version_id == current.id),
                 None)
    latest = rows[0] if rows else None
    if signed and current and signed.version_id == current.id:
        status = TermsStanding.SIGNED
    elif signed:
        status = TermsStanding.OUTDATED
    elif open_:
        status = TermsStanding.INVITED
    elif latest and latest.status == AgreementStatus.DECLINED and current and latest.version_id == current.id:
        status = TermsStanding.DECLINED
    else:
        status = TermsStanding.UNSIGNED
    return status, signed, open_, latest


class _Terms(NamedTuple):
    client_id: int
    status: str
    version_id: int


def client_statuses(session: Session) -> list[ClientTermsStatus]:
    """Every active or on-hold client with where it stands on the payment terms (two queries)."""
    current = current_version(session, T.TERMS)
    clients = list(session.scalars(select(Client).where(Client.status != ClientStatus.INACTIVE)
                                                .order_by(Client.legal_name)))
    by_client = _agreements_by_client(session)
    return [status_for(current, c, by_client[c.id]) for c in clients]


def _agreements_by_client(session: Session, *where) -> defaultdict[int, list[Agreement]]:
    """Each client's payment-terms agreements (those matching ``where``), newest first, with their versions."""
    found: defaultdict[int, list[Agreement]] = defaultdict(list)
    for a in session.scalars(select(Agreement).options(selectinload(Agreement.version))
                             .where(Agreement.kind == T.TERMS, *where).order_by(Agreement.id.desc())):
        found[a.client_id].append(a)
    return found


def overview(session: Session, wanted: str, page: int, per_page: int) -> tuple[Counter, reports.Page]:
    """The agreements overview: how many active or on-hold clients stand where, and one page of the clients whose
    status is ``wanted`` (a ``TermsStanding``; empty: all), by name. Every client's standing from compact rows;
    whole records only for the page shown (reading every client's, ~0.35 s at 10,000 clients, is what
    ``client_statuses`` does)."""
    current = current_version(session, T.TERMS)
    rows: dict[int, list[_Terms]] = defaultdict(list)
    for row in session.execute(_TERMS_ROWS):
        rows[row.client_id].append(_Terms._make(row))
    standing = {client_id: _standing(current, rows[client_id])[0] for client_id in session.scalars(_LISTED)}
    counts = Counter(standing.values())
    chosen = [client_id for client_id, s in standing.items() if s == wanted] if wanted else list(standing)
    shown = reports.page_of(chosen, page, per_page)
    clients = {c.id: c for c in session.scalars(select(Client).where(Client.id.in_(shown.items)))}
    agreements = _agreements_by_client(session, Agreement.client_id.in_(shown.items))
    return counts, shown.with_items([status_for(current, clients[c], agreements[c]) for c in shown.items])


_LISTED = select(Client.id).where(Client.status != ClientStatus.INACTIVE).order_by(Client.legal_name, Client.id)
_TERMS_ROWS = (select(Agreement.client_id, Agreement.status, Agreement.version_id)
               .where(Agreement.kind == T.TERMS).order_by(Agreement.id.desc()))


def client_status(session: Session, client: Client) -> ClientTermsStatus:
    rows = _agreements_by_client(session, Agreement.client_id == client.id)[client.id]
    return status_for(current_version(session, T.TERMS), client, rows)
