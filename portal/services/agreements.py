"""Agreements a client signs: invite, consent, view, acknowledge, sign, decline, void, verify.

Every step appends an event to the agreement's hash chain (portal.domain.evidence). The service, not the page,
enforces the order: signing needs this signer's consent, a view of the document, one acknowledgment per
high-risk clause, name, title, the authority statement and a signature, on the version it was invited against.
Each public function owns its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.errors import DomainError
from portal.gateways import email
from portal.gateways.pdf import render_pdf
from portal.models import Agreement, AgreementEvent, Client, Contact, StaffUser, TermsVersion

from . import terms as terms_service
from .billing import net_days_for
from .errors import Conflict, NotFound
from .scope import ClientScope
from .settings import get_settings

SIGN_PATH = "/agreements/{reference}"  # the contact signing page (portal.web.agreements)
VERIFY_PATH = "/verify"  # the public verification page
OPEN = "invited"

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


@dataclass(frozen=True)
class Signature:
    kind: str  # typed | drawn
    typed: str = ""
    drawn_data_url: str = ""


# ---------------------------------------------------------------------------------------------------- evidence

@contextmanager
def _refusal_rolls_back(session: Session) -> Iterator[None]:
    """A refused step changes nothing: drop whatever this transaction did (and its row lock)."""
    try:
        yield
    except Exception:
        session.rollback()
        raise


def _lock(session: Session, agreement: Agreement) -> Agreement:
    """Fresh agreement row, locked on PostgreSQL so two requests append to its chain one after the other."""
    return session.scalars(select(Agreement).where(Agreement.id == agreement.id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def _append(session: Session, agreement: Agreement, kind: str, meta: Meta,
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


def verify_events(session: Session, agreement: Agreement) -> evidence.ChainReport:
    # Read what is stored now, not what this session remembers from earlier in the request.
    agreement = session.get(Agreement, agreement.id, populate_existing=True) or agreement
    rows = session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                           .order_by(AgreementEvent.seq).execution_options(populate_existing=True)).all()
    try:
        links = [_link(agreement, row) for row in rows]
    except (ValueError, TypeError):  # a data column that is no longer JSON
        return evidence.ChainReport(False, 0, evidence.GENESIS, "an event's data is unreadable")
    return evidence.verify_chain(links, expected_head=agreement.chain_head, expected_count=agreement.event_count)


# ---------------------------------------------------------------------------------------------------- invitations

def _open_key(client_id: int, version: TermsVersion) -> str:
    return f"{client_id}:{version.kind}:{version.id}"


def _render(session: Session, client: Client, version: TermsVersion) -> tuple[dict[str, str], str, str]:
    settings = get_settings(session)
    variables = T.merge_variables(
        msp_legal_name=settings.legal_name or settings.name, msp_email=settings.reply_to or settings.email,
        client_legal_name=client.legal_name, net_days=net_days_for(session, client),
        parameters=terms_service.version_parameters(version), effective_date=today(),
    )
    text = evidence.merge(version.text, variables)
    return variables, text, evidence.to_html(text)


def _create(session: Session, client: Client, version: TermsVersion, *, contact: Contact | None,
            meta: Meta, via: str) -> Agreement:
    variables, text, html = _render(session, client, version)
    agreement = Agreement(
        kind=version.kind, reference=evidence.new_reference(), client_id=client.id, version_id=version.id,
        version_sha256=version.sha256, status=OPEN, open_key=_open_key(client.id, version),
        merged_variables=evidence.canonical_json(variables).decode(), document_text=text, document_html=html,
        document_sha256=evidence.sha256_hex(html), invited_contact_id=contact.id if contact else None,
        invited_by_staff_id=meta.staff_id, created_at=now(), chain_head=evidence.GENESIS, event_count=0,
    )
    session.add(agreement)
    session.flush()
    _append(session, agreement, "invited", meta, {
        "via": via, "version": version.number, "version_sha256": version.sha256,
        "document_sha256": agreement.document_sha256, "contact_id": contact.id if contact else None,
        "contact_email": contact.email if contact else "",
    })
    return agreement


def open_invitation(session: Session, client_id: int, version: TermsVersion) -> Agreement | None:
    return session.scalar(select(Agreement).where(Agreement.open_key == _open_key(client_id, version)))


def _signed_on(session: Session, client_id: int, version: TermsVersion) -> Agreement | None:
    return session.scalar(select(Agreement).where(Agreement.client_id == client_id,
                                                  Agreement.version_id == version.id, Agreement.status == "signed"))


def _find_or_create(session: Session, client: Client, version: TermsVersion, *, contact: Contact | None,
                    meta: Meta, via: str) -> tuple[Agreement, bool]:
    existing = open_invitation(session, client.id, version)
    if existing is not None:
        return existing, False
    try:
        agreement = _create(session, client, version, contact=contact, meta=meta, via=via)
        session.commit()
        return agreement, True
    except IntegrityError:  # another request opened it a moment ago: use that one
        session.rollback()
        existing = open_invitation(session, client.id, version)
        if existing is None:
            raise
        return existing, False


def _current_terms(session: Session) -> TermsVersion:
    version = terms_service.current_version(session, T.TERMS)
    if version is None:
        raise DomainError("Publish your payment terms before inviting clients to sign them.")
    return version


def invite(session: Session, client: Client, contact: Contact, *, meta: Meta, send: bool = True) -> Agreement:
    """Invite ``contact`` to sign the current payment terms for ``client`` (re-uses an open invitation)."""
    if contact.client_id != client.id:
        raise DomainError("That contact belongs to another client.")
    if not contact.portal_access:
        raise DomainError(f"{contact.name} has no portal access, so cannot sign in to sign.")
    version = _current_terms(session)
    signed = _signed_on(session, client.id, version)
    if signed is not None:
        raise Conflict(f"{client.legal_name} already signed version {version.number} ({signed.reference}).")
    agreement, created = _find_or_create(session, client, version, contact=contact, meta=meta, via="invitation")
    if not created:
        agreement = _lock(session, agreement)
        agreement.invited_contact_id = contact.id
        _append(session, agreement, "invited", meta, {"via": "invitation", "version": version.number,
                                                      "contact_id": contact.id, "contact_email": contact.email})
        session.commit()
    if send:
        _email_invitation(session, agreement, contact, meta, purpose="invitation")
    return agreement


def resend(session: Session, agreement: Agreement, *, meta: Meta, contact: Contact | None = None,
           purpose: str = "reminder") -> email.Delivery:
    """Email the invitation again (to its contact, or another contact of the same client)."""
    if agreement.status != OPEN:
        raise DomainError("Only an open invitation can be sent again.")
    contact = contact or agreement.invited_contact
    if contact is None or contact.client_id != agreement.client_id:
        raise DomainError("Choose a contact of this client to send the invitation to.")
    return _email_invitation(session, agreement, contact, meta, purpose=purpose)


def _email_invitation(session: Session, agreement: Agreement, contact: Contact, meta: Meta, *,
                      purpose: str) -> email.Delivery:
    settings = get_settings(session)
    url = current_app.config["BASE_URL"].rstrip("/") + SIGN_PATH.format(reference=agreement.reference)
    subject = (f"Reminder: please sign the {settings.name} payment terms" if purpose == "reminder"
               else f"Please review and sign the {settings.name} payment terms")
    delivery = email.send(to=[contact.email], subject=subject, template="agreement_invitation", context={
        "contact": contact, "client": agreement.client, "agreement": agreement, "url": url,
        "version": agreement.version, "reminder": purpose == "reminder",
    })
    agreement = _lock(session, agreement)
    if delivery.ok:
        _append(session, agreement, "email_sent", meta, {"purpose": purpose, "to": contact.email,
                                                         "message_id": delivery.message_id})
    else:
        _append(session, agreement, "email_failed", meta, {"purpose": purpose, "to": contact.email,
                                                           "error": delivery.error[:500]})
    agreement.last_emailed_at = now()
    session.commit()
    return delivery


@dataclass(frozen=True)
class ReminderRun:
    sent: int
    failed: int
    skipped: int  # no contact who can sign in, or reminded too recently


def remind_outstanding(session: Session, *, meta: Meta, min_days_between: int = 3) -> ReminderRun:
    """Email every client that has not signed the current terms (unsigned, invited or outdated). Clients without
    an invitation get one, addressed to their first billing contact with portal access."""
    version = _current_terms(session)
    sent = failed = skipped = 0
    for status in terms_service.client_statuses(session):
        if status.status not in ("unsigned", "invited", "outdated"):
            continue
        open_ = status.open
        contact = (open_.invited_contact if open_ else None) or _billing_contact(status.client)
        if contact is None or not contact.portal_access:
            skipped += 1
            continue
        if open_ and open_.last_emailed_at and (now() - open_.last_emailed_at).days < min_days_between:
            skipped += 1
            continue
        if open_ is None:
            open_, _ = _find_or_create(session, status.client, version, contact=contact, meta=meta, via="reminder")
        delivery = _email_invitation(session, open_, contact, meta, purpose="reminder")
        sent, failed = (sent + 1, failed) if delivery.ok else (sent, failed + 1)
    return ReminderRun(sent, failed, skipped)


def _billing_contact(client: Client) -> Contact | None:
    eligible = [c for c in client.contacts if c.portal_access]
    return next((c for c in eligible if c.is_billing), eligible[0] if eligible else None)


def terms_for_contact(session: Session, contact: Contact, *, meta: Meta) -> Agreement | None:
    """The payment-terms agreement a signed-in contact should act on: the signed current one, or an open
    invitation on the current version (opened now if there is none). None when no terms are published."""
    version = terms_service.current_version(session, T.TERMS)
    if version is None:
        return None
    signed = _signed_on(session, contact.client_id, version)
    if signed is not None:
        return signed
    agreement, _ = _find_or_create(session, contact.client, version, contact=contact, meta=meta, via="sign-in")
    return agreement


def needs_terms(session: Session, client_id: int) -> bool:
    """One indexed query, cheap enough for every dashboard visit: terms are published and this client has no
    agreement on the current version that is signed, declined or voided (those need a person, not a prompt)."""
    current = terms_service.current_version_id_query(T.TERMS)
    settled = exists().where(and_(Agreement.client_id == client_id, Agreement.version_id == current,
                                  Agreement.status.in_(("signed", "declined", "void"))))
    return bool(session.scalar(select(current.is_not(None) & ~settled)))


# ---------------------------------------------------------------------------------------------------- contact steps

def for_client(session: Session, client_id: int, reference: str) -> Agreement:
    """An agreement of this client by reference; anything else is NotFound (the page answers 404)."""
    return ClientScope(session, client_id).agreement(reference)


def client_agreements(session: Session, client_id: int) -> list[Agreement]:
    return list(session.scalars(ClientScope(session, client_id).agreements().order_by(Agreement.id.desc())))


def _contact_events(session: Session, agreement: Agreement, contact: Contact, kinds: tuple[str, ...]) -> list:
    return list(session.scalars(select(AgreementEvent).where(
        AgreementEvent.agreement_id == agreement.id, AgreementEvent.contact_id == contact.id,
        AgreementEvent.kind.in_(kinds)).order_by(AgreementEvent.seq)))


@dataclass(frozen=True)
class Progress:
    consented: bool
    viewed: bool
    acknowledged: frozenset[str]

    @property
    def step(self) -> str:
        if not self.consented:
            return "consent"
        if not self.viewed or not self.acknowledged.issuperset(T.CLAUSE_KEYS):
            return "review"
        return "sign"


def progress(session: Session, agreement: Agreement, contact: Contact) -> Progress:
    rows = _contact_events(session, agreement, contact, ("consented", "viewed", "clause_acknowledged"))
    return Progress(
        consented=any(r.kind == "consented" for r in rows),
        viewed=any(r.kind == "viewed" and event_data(r).get("document_sha256") == agreement.document_sha256
                   for r in rows),
        acknowledged=frozenset(event_data(r).get("clause", "") for r in rows if r.kind == "clause_acknowledged"),
    )


def _check_signable(session: Session, agreement: Agreement, contact: Contact) -> None:
    if contact.client_id != agreement.client_id:
        raise NotFound()
    if agreement.status == "signed":
        raise DomainError("This agreement is already signed.")
    if agreement.status == "superseded":
        raise DomainError("A newer version of these terms was published. Please review and sign the new version.")
    if agreement.status != OPEN:
        raise DomainError(f"This invitation was {agreement.status} and can no longer be signed.")
    current = terms_service.current_version(session, agreement.kind)
    if current is None or current.id != agreement.version_id or current.sha256 != agreement.version_sha256:
        raise DomainError("A newer version of these terms was published. Please review and sign the new version.")


def _session_once(session: Session, agreement: Agreement, contact: Contact, kind: str, meta: Meta) -> bool:
    """True when this browser session already recorded ``kind`` (a reload should not flood the evidence)."""
    return any(r.session_id == meta.session_id for r in _contact_events(session, agreement, contact, (kind,)))


def record_open(session: Session, agreement: Agreement, contact: Contact, *, meta: Meta) -> None:
    if agreement.status != OPEN or contact.client_id != agreement.client_id:
        return
    if _session_once(session, agreement, contact, "opened", meta):
        return
    with _refusal_rolls_back(session):
        agreement = _lock(session, agreement)
        _append(session, agreement, "opened", meta, {})
        session.commit()


def disclosure_document(session: Session) -> tuple[TermsVersion, str]:
    """The current E-SIGN disclosure and its rendered HTML (merged with the MSP's details)."""
    version = terms_service.ensure_disclosure(session)
    return version, _disclosure_html(session, version)


def _disclosure_html(session: Session, version: TermsVersion) -> str:
    settings = get_settings(session)
    variables = {name: "" for name in T.VARIABLES}
    variables.update(msp_legal_name=settings.legal_name or settings.name,
                     msp_email=settings.reply_to or settings.email or "our billing email address")
    return evidence.to_html(evidence.merge(version.text, variables))


def consent_statement(session: Session) -> str:
    settings = get_settings(session)
    return evidence.merge(T.CONSENT_STATEMENT, {"msp_legal_name": settings.legal_name or settings.name})


def consent(session: Session, agreement: Agreement, contact: Contact, *, disclosure_version_id: int,
            meta: Meta) -> None:
    """The E-SIGN consent, recorded with the hash of the disclosure the contact was shown."""
    with _refusal_rolls_back(session):
        agreement = _lock(session, agreement)
        _check_signable(session, agreement, contact)
        version = terms_service.current_version(session, T.DISCLOSURE)
        if version is None or version.id != disclosure_version_id:
            raise DomainError("The disclosure was updated while you were reading it. Please read it again.")
        if progress(session, agreement, contact).consented:
            session.rollback()
            return
        agreement.disclosure_version_id = version.id
        _append(session, agreement, "consented", meta, {
            "disclosure_version": version.number, "disclosure_version_sha256": version.sha256,
            "disclosure_sha256": evidence.sha256_hex(_disclosure_html(session, version)),
            "statement": consent_statement(session),
        })
        session.commit()


def record_view(session: Session, agreement: Agreement, contact: Contact, *, meta: Meta) -> None:
    """The full document was displayed to this contact (after consenting). Once per browser session."""
    with _refusal_rolls_back(session):
        agreement = _lock(session, agreement)
        _check_signable(session, agreement, contact)
        if not progress(session, agreement, contact).consented:
            raise DomainError("Please agree to do business electronically first.")
        if _session_once(session, agreement, contact, "viewed", meta):
            session.rollback()
            return
        _append(session, agreement, "viewed", meta, {"document_sha256": agreement.document_sha256})
        session.commit()


def clause_statements(agreement: Agreement) -> list[tuple[T.Clause, str]]:
    """Each high-risk clause with its statement merged with this agreement's variables."""
    variables = json.loads(agreement.merged_variables)
    return [(c, evidence.merge(c.statement, variables)) for c in T.HIGH_RISK_CLAUSES]


def acknowledge(session: Session, agreement: Agreement, contact: Contact, clauses: list[str], *,
                meta: Meta) -> None:
    """One event per acknowledged clause, recording the exact statement ticked."""
    with _refusal_rolls_back(session):
        agreement = _lock(session, agreement)
        _check_signable(session, agreement, contact)
        state = progress(session, agreement, contact)
        if not state.consented:
            raise DomainError("Please agree to do business electronically first.")
        if not state.viewed:
            raise DomainError("Please read the terms first.")
        if not clauses or set(clauses) - set(T.CLAUSE_KEYS):
            raise DomainError("Tick each statement to acknowledge it.")
        statements = {c.key: text for c, text in clause_statements(agreement)}
        for key in T.CLAUSE_KEYS:
            if key in clauses and key not in state.acknowledged:
                _append(session, agreement, "clause_acknowledged", meta, {
                    "clause": key, "statement": statements[key], "document_sha256": agreement.document_sha256})
        session.commit()


def authority_statement(agreement: Agreement) -> str:
    return evidence.merge(T.AUTHORITY_STATEMENT, json.loads(agreement.merged_variables))


def sign(session: Session, agreement: Agreement, contact: Contact, *, full_name: str, title: str,
         authority_confirmed: bool, signature: Signature, document_sha256: str, meta: Meta) -> Agreement:
    """Sign, if and only if every step before it was done by this contact on this exact document. Then the
    signed PDF is rendered and stored, older signed versions are superseded and the signer gets a copy."""
    with _refusal_rolls_back(session):
        agreement = _lock(session, agreement)  # checked under the lock: a concurrent void or publish wins cleanly
        _sign_locked(session, agreement, contact, full_name=full_name, title=title,
                     authority_confirmed=authority_confirmed, signature=signature, document_sha256=document_sha256,
                     meta=meta)
        session.commit()
    _deliver_copy(session, agreement, contact, meta)
    return agreement


def _sign_locked(session: Session, agreement: Agreement, contact: Contact, *, full_name: str, title: str,
                 authority_confirmed: bool, signature: Signature, document_sha256: str, meta: Meta) -> None:
    _check_signable(session, agreement, contact)
    state = progress(session, agreement, contact)
    if not state.consented:
        raise DomainError("Please agree to do business electronically before signing.")
    if not state.viewed:
        raise DomainError("Please read the terms before signing.")
    missing = [c.title for c in T.HIGH_RISK_CLAUSES if c.key not in state.acknowledged]
    if missing:
        raise DomainError("Please acknowledge each of these clauses before signing: " + ", ".join(missing) + ".")
    if document_sha256 != agreement.document_sha256 or evidence.sha256_hex(agreement.document_html) != \
            agreement.document_sha256:
        raise DomainError("The document changed since you opened it. Please review it again before signing.")
    full_name, title = " ".join((full_name or "").split()), " ".join((title or "").split())
    if len(full_name) < 2 or len(full_name) > 200:
        raise DomainError("Enter your full name.")
    if not title or len(title) > 200:
        raise DomainError("Enter your title (your role at the company).")
    if not authority_confirmed:
        raise DomainError("Confirm that you are authorized to sign for the company.")
    png, typed, signature_sha = _signature(signature, full_name)

    signed_at = now()
    statement = authority_statement(agreement)
    _append(session, agreement, "signed", meta, {
        "document_sha256": agreement.document_sha256, "version_sha256": agreement.version_sha256,
        "version": agreement.version.number, "signer_name": full_name, "signer_title": title,
        "signer_email": contact.email, "authority_statement": statement, "signature_kind": signature.kind,
        "signature_sha256": signature_sha, "disclosure_version_id": agreement.disclosure_version_id,
    })
    agreement.status = "signed"
    agreement.open_key = None
    agreement.signer_contact_id = contact.id
    agreement.signer_name, agreement.signer_title, agreement.signer_email = full_name, title, contact.email
    agreement.authority_statement = statement
    agreement.signature_kind, agreement.signature_text, agreement.signature_png = signature.kind, typed, png
    agreement.signed_at, agreement.signed_ip = signed_at, (meta.ip or "")[:64]
    agreement.signed_chain_head = agreement.chain_head
    _supersede_older(session, agreement, meta)
    pdf = render_signed_pdf(session, agreement)
    agreement.signed_pdf, agreement.pdf_sha256 = pdf, evidence.sha256_hex(pdf)


def _signature(signature: Signature, full_name: str) -> tuple[bytes | None, str, str]:
    if signature.kind == "typed":
        typed = " ".join((signature.typed or "").split())
        if not typed:
            raise DomainError("Type your name as your signature, or draw it.")
        if typed.casefold() != full_name.casefold():
            raise DomainError("Your typed signature must match your full name.")
        return None, typed, evidence.sha256_hex(typed)
    if signature.kind == "drawn":
        if not signature.drawn_data_url:
            raise DomainError("Draw your signature in the box, or choose to type your name instead.")
        png = evidence.decode_signature_png(signature.drawn_data_url)
        return png, "", evidence.sha256_hex(png)
    raise DomainError("Choose how to sign: type your name or draw your signature.")


def _supersede_older(session: Session, agreement: Agreement, meta: Meta) -> None:
    older = session.scalars(select(Agreement).where(Agreement.client_id == agreement.client_id,
                                                    Agreement.kind == agreement.kind, Agreement.status == "signed",
                                                    Agreement.id != agreement.id))
    for old in list(older):
        old = _lock(session, old)
        old.status, old.superseded_at = "superseded", now()
        _append(session, old, "superseded", meta, {"by": agreement.reference, "by_version": agreement.version.number})


def _deliver_copy(session: Session, agreement: Agreement, contact: Contact, meta: Meta) -> None:
    settings = get_settings(session)
    delivery = email.send(
        to=[contact.email], subject=f"Your signed copy: {settings.name} payment terms ({agreement.reference})",
        template="agreement_signed", context={"contact": contact, "agreement": agreement, "client": agreement.client},
        attachments=[email.Attachment(pdf_filename(agreement), agreement.signed_pdf or b"")],
    )
    agreement = _lock(session, agreement)
    if delivery.ok:
        _append(session, agreement, "copy_delivered", meta, {"to": contact.email, "message_id": delivery.message_id,
                                                            "pdf_sha256": agreement.pdf_sha256})
    else:
        _append(session, agreement, "copy_delivery_failed", meta, {"to": contact.email,
                                                                  "error": delivery.error[:500]})
    session.commit()


def decline(session: Session, agreement: Agreement, contact: Contact, *, reason: str, meta: Meta) -> None:
    reason = (reason or "").strip()
    if len(reason) > 2000:
        raise DomainError("Keep the reason under 2,000 characters.")
    with _refusal_rolls_back(session):
        agreement = _lock(session, agreement)
        _check_signable(session, agreement, contact)
        _append(session, agreement, "declined", meta, {"reason": reason})
        agreement.status, agreement.open_key = "declined", None
        agreement.declined_at, agreement.decline_reason = now(), reason
        session.commit()


# ---------------------------------------------------------------------------------------------------- staff actions

def void(session: Session, agreement: Agreement, *, reason: str, meta: Meta) -> None:
    """Cancel an unsigned invitation. Signed agreements are evidence and are never voided."""
    reason = (reason or "").strip()[:2000]
    if not reason:
        raise DomainError("Say why the invitation is voided (it is kept with the evidence).")
    with _refusal_rolls_back(session):
        agreement = _lock(session, agreement)
        if agreement.status != OPEN:
            raise DomainError("Only an unsigned invitation can be voided.")
        _append(session, agreement, "voided", meta, {"reason": reason})
        agreement.status, agreement.open_key = "void", None
        agreement.voided_at, agreement.void_reason = now(), reason
        session.commit()


def mark_older_versions(session: Session, version: TermsVersion, *, staff: StaffUser | None) -> None:
    """Called by terms.publish inside its transaction: open invitations on older versions can no longer be
    signed, and clients signed on an older version are marked outdated (they are asked to sign again)."""
    meta = Meta(staff_id=staff.id if staff else None)
    older = session.scalars(select(Agreement).where(Agreement.kind == version.kind,
                                                    Agreement.version_id != version.id,
                                                    Agreement.status.in_((OPEN, "signed"))))
    for agreement in list(older):
        agreement = _lock(session, agreement)
        if agreement.status == OPEN:
            _append(session, agreement, "superseded", meta, {"by_version": version.number})
            agreement.status, agreement.open_key, agreement.superseded_at = "superseded", None, now()
        elif agreement.outdated_at is None:
            _append(session, agreement, "outdated", meta, {"new_version": version.number,
                                                           "new_version_sha256": version.sha256})
            agreement.outdated_at = now()


def get(session: Session, agreement_id: int) -> Agreement:
    agreement = session.get(Agreement, agreement_id)
    if agreement is None:
        raise NotFound()
    return agreement


def previous_signed(session: Session, agreement: Agreement) -> Agreement | None:
    """The client's last signed (or superseded) agreement on an older version: what the diff compares with."""
    return session.scalar(select(Agreement).where(
        Agreement.client_id == agreement.client_id, Agreement.kind == agreement.kind, Agreement.id != agreement.id,
        Agreement.status.in_(("signed", "superseded")), Agreement.signed_at.is_not(None),
        Agreement.version_id != agreement.version_id).order_by(Agreement.signed_at.desc()).limit(1))


# ---------------------------------------------------------------------------------------------------- output

def pdf_filename(agreement: Agreement) -> str:
    return f"{agreement.reference}-signed.pdf"


def render_signed_pdf(session: Session, agreement: Agreement) -> bytes:
    """The terms exactly as shown, the signature and a certificate page of the evidence up to signing."""
    import base64

    rows = events(session, agreement)
    signature_uri = ("data:image/png;base64," + base64.b64encode(agreement.signature_png).decode()
                     if agreement.signature_png else "")
    return render_pdf("agreement", agreement=agreement, events=rows, labels=EVENT_LABELS,
                      signature_uri=signature_uri, data_of=event_data, client=agreement.client,
                      verify_url=current_app.config["BASE_URL"].rstrip("/") + VERIFY_PATH,
                      msp=get_settings(session), disclosure=agreement.disclosure_version,
                      acknowledgments=[event_data(r) for r in rows if r.kind == "clause_acknowledged"])


# ---------------------------------------------------------------------------------------------------- verification

@dataclass(frozen=True)
class Verification:
    agreement: Agreement
    chain: evidence.ChainReport
    pdf_match: bool | None  # None: looked up by reference, no file given
    document_intact: bool  # the stored document still hashes to the stored hash

    @property
    def signed(self) -> bool:
        return self.agreement.signed_at is not None and self.agreement.status in ("signed", "superseded")


def _verification(session: Session, agreement: Agreement, pdf_match: bool | None) -> Verification:
    chain = verify_events(session, agreement)
    intact = evidence.sha256_hex(agreement.document_html) == agreement.document_sha256
    if agreement.signed_pdf is not None and agreement.pdf_sha256:
        intact = intact and evidence.sha256_hex(agreement.signed_pdf) == agreement.pdf_sha256
    return Verification(agreement, chain, pdf_match, intact)


def verify_reference(session: Session, text: str) -> Verification | None:
    reference = evidence.normalize_reference(text)
    if reference is None:
        return None
    agreement = session.scalar(select(Agreement).where(Agreement.reference == reference))
    return _verification(session, agreement, None) if agreement is not None else None


def verify_pdf(session: Session, data: bytes) -> Verification | None:
    """Exact match on the SHA-256 of the whole file: one changed byte and it no longer matches."""
    if not data:
        return None
    agreement = session.scalar(select(Agreement).where(Agreement.pdf_sha256 == evidence.sha256_hex(data)))
    return _verification(session, agreement, True) if agreement is not None else None
