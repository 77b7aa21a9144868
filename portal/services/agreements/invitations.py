"""Invitations to sign the payment terms, and what staff do with them: publish new terms (marking agreements on
older versions), invite, email, remind and void."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, ScalarSelect, and_, bindparam, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from portal.clock import now, today
from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.errors import DomainError
from portal.domain.evidence import AgreementStatus
from portal.gateways.email import Delivery
from portal.models import Agreement, Client, Contact, StaffUser, TermsVersion

from .. import mail
from .. import terms as terms_service
from ..billing import net_days_for
from ..errors import Conflict, NotFound
from ..keysets import one_of
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from .chain import OPEN, Meta, append, lock, step


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


def _create(session: Session, rt: Runtime, client: Client, version: TermsVersion, *, contact: Contact | None,
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
    append(session, rt, agreement, "invited", meta, {
        "via": via, "version": version.number, "version_sha256": version.sha256,
        "document_sha256": agreement.document_sha256, "contact_id": contact.id if contact else None,
        "contact_email": contact.email if contact else "",
    })
    return agreement


def open_invitation(session: Session, client_id: int, version: TermsVersion) -> Agreement | None:
    return session.scalar(select(Agreement).where(Agreement.open_key == _open_key(client_id, version)))


def signed_terms_of(session: Session, client_ids: Iterable[int]) -> dict[int, Agreement]:
    """The payment terms each client signed last (still in force): the version whose numbers bind it now, for
    standing, notices and deposits. (Late fees instead look for the terms in force when each invoice was issued.)"""
    ids = list(client_ids)
    if not ids:
        return {}
    return {a.client_id: a for a in session.scalars(_SIGNED_TERMS, {"client_ids": ids})}


def last_signed_terms(client_id: ColumnElement[int]) -> ScalarSelect[int]:
    """The id of the payment terms agreement a client signed last, the one whose numbers bind it now (``client_id``:
    a column of the query it goes in, e.g. ``Client.id``)."""
    signed = aliased(Agreement)
    return (select(func.max(signed.id))
            .where(signed.client_id == client_id, signed.kind == T.TERMS, signed.status == AgreementStatus.SIGNED)
            .scalar_subquery())


# Built once, like the other statements a client's standing reads on every view: building it cost about as much as
# running it.
_SIGNED_TERMS = (select(Agreement).join(Client, Agreement.id == last_signed_terms(Client.id))
                 .where(Client.id.in_(bindparam("client_ids", expanding=True))))


def _signed_on(session: Session, client_id: int, version: TermsVersion) -> Agreement | None:
    return session.scalar(select(Agreement).where(Agreement.client_id == client_id,
                                                  Agreement.version_id == version.id,
                                                  Agreement.status == AgreementStatus.SIGNED))


def _find_or_create(session: Session, rt: Runtime, client: Client, version: TermsVersion, *,
                    contact: Contact | None, meta: Meta, via: str) -> tuple[Agreement, bool]:
    existing = open_invitation(session, client.id, version)
    if existing is not None:
        return existing, False
    begin_write(session)
    try:
        existing = open_invitation(session, client.id, version)  # again, now that no one else can write
        if existing is None:
            existing = _create(session, rt, client, version, contact=contact, meta=meta, via=via)
            session.commit()
            return existing, True
        session.commit()
        return existing, False
    except IntegrityError:  # PostgreSQL: another request opened it a moment ago: use that one
        session.rollback()
        existing = open_invitation(session, client.id, version)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        session.rollback()
        raise


def _current_terms(session: Session) -> TermsVersion:
    version = terms_service.current_version(session, T.TERMS)
    if version is None:
        raise DomainError("Publish your payment terms before inviting clients to sign them.")
    return version


def invite(session: Session, rt: Runtime, client: Client, contact: Contact, *, meta: Meta,
           send: bool = True) -> Agreement:
    """Invite ``contact`` to sign the current payment terms for ``client`` (re-uses an open invitation)."""
    if contact.client_id != client.id:
        raise DomainError("That contact belongs to another client.")
    if not contact.portal_access:
        raise DomainError(f"{contact.name} has no portal access, so cannot sign in to sign.")
    version = _current_terms(session)
    signed = _signed_on(session, client.id, version)
    if signed is not None:
        raise Conflict(f"{client.legal_name} already signed version {version.number} ({signed.reference}).")
    agreement, created = _find_or_create(session, rt, client, version, contact=contact, meta=meta, via="invitation")
    if not created:
        with step(session):
            agreement = lock(session, agreement)
            agreement.invited_contact_id = contact.id
            append(session, rt, agreement, "invited", meta, {"via": "invitation", "version": version.number,
                                                              "contact_id": contact.id, "contact_email": contact.email})
            session.commit()
    if send:
        _email_invitation(session, rt, agreement, contact, meta, purpose="invitation")
    return agreement


def resend(session: Session, rt: Runtime, agreement: Agreement, *, meta: Meta, contact: Contact | None = None,
           purpose: str = "reminder") -> Delivery:
    """Email the invitation again (to its contact, or another contact of the same client)."""
    if agreement.status != OPEN:
        raise DomainError("Only an open invitation can be sent again.")
    contact = contact or agreement.invited_contact
    if contact is None or contact.client_id != agreement.client_id:
        raise DomainError("Choose a contact of this client to send the invitation to.")
    return _email_invitation(session, rt, agreement, contact, meta, purpose=purpose)


def _email_invitation(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, meta: Meta, *,
                      purpose: str) -> Delivery:
    """Send, then record what happened in a transaction of its own (no lock is held across the SMTP call)."""
    settings = get_settings(session)
    url = rt.url("agreements.sign_page", reference=agreement.reference)
    subject = (f"Reminder: please sign the {settings.name} payment terms" if purpose == "reminder"
               else f"Please review and sign the {settings.name} payment terms")
    session.commit()
    delivery = mail.send(session, rt, to=[contact.email], subject=subject, template="agreement_invitation",
                         context={"contact": contact, "client": agreement.client, "agreement": agreement,
                                  "url": url, "version": agreement.version, "reminder": purpose == "reminder"})
    with step(session):
        agreement = lock(session, agreement)
        if delivery.ok:
            append(session, rt, agreement, "email_sent", meta, {"purpose": purpose, "to": contact.email,
                                                                 "message_id": delivery.message_id})
        else:
            append(session, rt, agreement, "email_failed", meta, {"purpose": purpose, "to": contact.email,
                                                                   "error": delivery.error[:500]})
        agreement.last_emailed_at = now()
        session.commit()
    return delivery


@dataclass(frozen=True)
class ReminderRun:
    sent: int
    failed: int
    skipped: int  # no contact who can sign in, or reminded too recently


def remind_outstanding(session: Session, rt: Runtime, *, meta: Meta, min_days_between: int = 3) -> ReminderRun:
    """Email every client that has not signed the current terms (unsigned, invited or outdated). Clients without
    an invitation get one, addressed to their first billing contact with portal access."""
    version = _current_terms(session)
    sent = failed = skipped = 0
    for status in terms_service.client_statuses(session):
        if status.status not in (T.TermsStanding.UNSIGNED, T.TermsStanding.INVITED, T.TermsStanding.OUTDATED):
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
            open_, _ = _find_or_create(session, rt, status.client, version, contact=contact, meta=meta,
                                       via="reminder")
        delivery = _email_invitation(session, rt, open_, contact, meta, purpose="reminder")
        sent, failed = (sent + 1, failed) if delivery.ok else (sent, failed + 1)
    return ReminderRun(sent, failed, skipped)


def _billing_contact(client: Client) -> Contact | None:
    eligible = [c for c in client.contacts if c.portal_access]
    return next((c for c in eligible if c.is_billing), eligible[0] if eligible else None)


def terms_for_contact(session: Session, rt: Runtime, contact: Contact, *, meta: Meta) -> Agreement | None:
    """The payment-terms agreement a signed-in contact should act on: the signed current one, or an open
    invitation on the current version (opened now if there is none). None when no terms are published."""
    version = terms_service.current_version(session, T.TERMS)
    if version is None:
        return None
    signed = _signed_on(session, contact.client_id, version)
    if signed is not None:
        return signed
    agreement, _ = _find_or_create(session, rt, contact.client, version, contact=contact, meta=meta, via="sign-in")
    return agreement


def needs_terms(session: Session, client_id: int) -> bool:
    return terms_to_sign(session, client_id) is not None


def terms_to_sign(session: Session, client_id: int) -> int | None:
    """The current payment terms version this client still has to sign, or None."""
    return session.scalar(select(terms_to_sign_expr(client_id)))


def terms_to_sign_expr(client_id: int | ColumnElement[int]) -> ScalarSelect[int | None]:
    """terms_to_sign as a column, e.g. beside the signed-in contact's row (one query, no extra round trip on every
    page view): terms are published and the client has no agreement on the current version that is signed,
    declined or voided (those need a person, not a prompt). A few index lookups."""
    current = terms_service.current_version_id_query(T.TERMS)
    settled = exists().where(and_(Agreement.client_id == client_id, Agreement.version_id == current,
                                  one_of(Agreement.status, (AgreementStatus.SIGNED, AgreementStatus.DECLINED,
                                                            AgreementStatus.VOID)))).correlate_except(Agreement)
    return select(current).where(~settled).scalar_subquery()


def void(session: Session, rt: Runtime, agreement: Agreement, *, reason: str, meta: Meta) -> None:
    """Cancel an unsigned invitation. Signed agreements are evidence and are never voided."""
    reason = (reason or "").strip()[:2000]
    if not reason:
        raise DomainError("Say why the invitation is voided (it is kept with the evidence).")
    with step(session):
        agreement = lock(session, agreement)
        if agreement.status != OPEN:
            raise DomainError("Only an unsigned invitation can be voided.")
        append(session, rt, agreement, "voided", meta, {"reason": reason})
        agreement.status, agreement.open_key = AgreementStatus.VOID, None
        agreement.voided_at, agreement.void_reason = now(), reason
        session.commit()


def publish(session: Session, rt: Runtime, kind: str, *, staff: StaffUser | None, summary: str = "") -> TermsVersion:
    """Freeze the current draft as the next version. For payment terms, open invitations on older versions are
    superseded and clients signed on an older version are marked outdated (they are asked to sign again)."""
    with step(session):
        version = terms_service.add_version(session, kind, staff=staff, summary=summary)
        if kind == T.TERMS:
            _mark_older_versions(session, rt, version, staff=staff)
        session.commit()
    return version


def _mark_older_versions(session: Session, rt: Runtime, version: TermsVersion, *, staff: StaffUser | None) -> None:
    """Open invitations on older versions can no longer be signed, and clients signed on an older version are
    marked outdated (they are asked to sign again)."""
    meta = Meta(staff_id=staff.id if staff else None)
    older = session.scalars(select(Agreement).where(Agreement.kind == version.kind,
                                                    Agreement.version_id != version.id,
                                                    Agreement.status.in_((OPEN, AgreementStatus.SIGNED))))
    for agreement in list(older):
        agreement = lock(session, agreement)
        if agreement.status == OPEN:
            append(session, rt, agreement, "superseded", meta, {"by_version": version.number})
            agreement.status, agreement.open_key, agreement.superseded_at = AgreementStatus.SUPERSEDED, None, now()
        elif agreement.outdated_at is None:
            append(session, rt, agreement, "outdated", meta, {"new_version": version.number,
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
        Agreement.status.in_((AgreementStatus.SIGNED, AgreementStatus.SUPERSEDED)), Agreement.signed_at.is_not(None),
        Agreement.version_id != agreement.version_id).order_by(Agreement.signed_at.desc()).limit(1))
