"""The agreement's evidence: an append-only hash chain of events (portal.domain.evidence), and its verification.

The other agreement modules record every step through ``append`` while holding ``lock``; ``refusal_rolls_back``
makes a refused step change nothing. Every append also re-anchors the chain head with the install's evidence key
(keys.py), which is kept outside the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import evidence
from portal.models import Agreement, AgreementEvent

from ..locking import begin_write
from ..runtime import Runtime
from .keys import chain_key

OPEN = evidence.AgreementStatus.INVITED  # the status of an invitation that can still be signed

EVENT_LABELS = {
    "invited": "Invited to sign",
    "email_sent": "Email sent",
    "email_failed": "Email could not be delivered",
    "opened": "Signing page opened",
    "consented": "Consented to electronic records and signatures",
    "viewed": "Document displayed in full",
    "clause_acknowledged": "Clause acknowledged",
    "signed": "Signed",
    "copy_delivered": "Signed copy emailed",
    "copy_delivery_failed": "Signed copy could not be emailed",
    "declined": "Declined",
    "voided": "Invitation voided",
    "superseded": "Superseded",
    "outdated": "A newer version was published",
}


@dataclass(frozen=True)
class Meta:
    """Who acted and from where; recorded with every event."""

    ip: str = ""
    user_agent: str = ""
    session_id: str = ""
    contact_id: int | None = None
    staff_id: int | None = None


SYSTEM = Meta()


@contextmanager
def refusal_rolls_back(session: Session) -> Iterator[None]:
    """A refused step changes nothing: drop whatever this transaction did (and its row lock)."""
    try:
        yield
    except Exception:
        session.rollback()
        raise


@contextmanager
def step(session: Session) -> Iterator[None]:
    """One check-then-append on the evidence: the write lock first (SQLite's BEGIN IMMEDIATE; on PostgreSQL the
    row lock ``lock`` takes), so two processes never both read "not yet signed" and both append; a refusal
    changes nothing."""
    begin_write(session)
    with refusal_rolls_back(session):
        yield


def lock(session: Session, agreement: Agreement) -> Agreement:
    """Fresh agreement row, locked on PostgreSQL so two requests append to its chain one after the other."""
    return session.scalars(select(Agreement).where(Agreement.id == agreement.id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def append(session: Session, rt: Runtime, agreement: Agreement, kind: str, meta: Meta,
           data: dict[str, Any] | None = None) -> AgreementEvent:
    facts = evidence.EventFacts(
        agreement_reference=agreement.reference, seq=agreement.event_count + 1, kind=kind, occurred_at=now(),
        ip=(meta.ip or "")[:64], user_agent=(meta.user_agent or "")[:500], session_id=(meta.session_id or "")[:64],
        contact_id=meta.contact_id, staff_id=meta.staff_id, data=data or {},
    )
    digest = evidence.event_hash(agreement.chain_head, facts)
    row = AgreementEvent(agreement_id=agreement.id, seq=facts.seq, kind=kind, occurred_at=facts.occurred_at,
                         ip=facts.ip, user_agent=facts.user_agent, session_id=facts.session_id,
                         contact_id=facts.contact_id, staff_id=facts.staff_id,
                         data=evidence.canonical_json(facts.data).decode(), prev_hash=agreement.chain_head,
                         hash=digest)
    session.add(row)
    agreement.chain_head = digest
    agreement.event_count = facts.seq
    agreement.chain_anchor = evidence.anchor(chain_key(rt), agreement.reference, facts.seq, digest)
    session.flush()
    return row


def events(session: Session, agreement: Agreement) -> list[AgreementEvent]:
    return list(session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                                .order_by(AgreementEvent.seq)))


def event_data(row: AgreementEvent) -> dict[str, Any]:
    return json.loads(row.data or "{}")


def _link(agreement: Agreement, row: AgreementEvent) -> evidence.Link:
    facts = evidence.EventFacts(agreement.reference, row.seq, row.kind, row.occurred_at, row.ip, row.user_agent,
                                row.session_id, row.contact_id, row.staff_id, event_data(row))
    return evidence.Link(facts, row.prev_hash, row.hash)


def stored_links(session: Session, agreement: Agreement) -> tuple[Agreement, list[evidence.Link] | None]:
    """The agreement and its chain as stored now (not as this session remembers them from earlier in the
    request); None for the links when an event's data is no longer readable JSON."""
    agreement = session.get(Agreement, agreement.id, populate_existing=True) or agreement
    rows = session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                           .order_by(AgreementEvent.seq).execution_options(populate_existing=True)).all()
    try:
        return agreement, [_link(agreement, row) for row in rows]
    except (ValueError, TypeError):
        return agreement, None


UNANCHORED = "the chain's last event is not vouched for by this portal's evidence key (the chain was rewritten)"


def check_links(rt: Runtime, agreement: Agreement, links: list[evidence.Link] | None) -> evidence.ChainReport:
    if links is None:
        return evidence.ChainReport(False, 0, evidence.GENESIS, "an event's data is unreadable")
    report = evidence.verify_chain(links, expected_head=agreement.chain_head, expected_count=agreement.event_count)
    if report.intact and not evidence.anchor_matches(chain_key(rt), agreement.reference, agreement.event_count,
                                                     agreement.chain_head, agreement.chain_anchor):
        return evidence.ChainReport(False, report.count, report.head, UNANCHORED)
    return report


def verify_events(session: Session, rt: Runtime, agreement: Agreement) -> evidence.ChainReport:
    """Every hash recomputed from the stored facts, and the head checked against the key-held anchor."""
    agreement, links = stored_links(session, agreement)
    return check_links(rt, agreement, links)
