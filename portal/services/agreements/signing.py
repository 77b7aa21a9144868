"""The contact's steps on an open invitation, in the order the service enforces: open, consent to electronic
records, view the document, acknowledge each high-risk clause, then sign (or decline). Signing needs all of them
by this signer on the version it was invited against."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.errors import DomainError
from portal.domain.evidence import AgreementStatus
from portal.gateways.email import Attachment
from portal.models import Agreement, AgreementEvent, Contact, TermsVersion

from .. import mail
from .. import terms as terms_service
from ..errors import NotFound
from ..runtime import Runtime
from ..scope import ClientScope
from ..settings import get_settings
from .chain import OPEN, Meta, append, event_data, lock, step
from .documents import pdf_filename, render_signed_pdf

# One wording per missing step, whichever step the contact tried (acknowledging, viewing or signing)
NOT_CONSENTED = "Please agree to do business electronically first."
NOT_READ = "Please read the terms first."


@dataclass(frozen=True)
class Signature:
    kind: str  # typed | drawn
    typed: str = ""
    drawn_data_url: str = ""


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
    if agreement.status == AgreementStatus.SIGNED:
        raise DomainError("This agreement is already signed.")
    if agreement.status == AgreementStatus.SUPERSEDED:
        raise DomainError("A newer version of these terms was published. Please review and sign the new version.")
    if agreement.status != OPEN:
        raise DomainError(f"This invitation was {agreement.status} and can no longer be signed.")
    current = terms_service.current_version(session, agreement.kind)
    if current is None or current.id != agreement.version_id or current.sha256 != agreement.version_sha256:
        raise DomainError("A newer version of these terms was published. Please review and sign the new version.")


def _session_once(session: Session, agreement: Agreement, contact: Contact, kind: str, meta: Meta) -> bool:
    """True when this browser session already recorded ``kind`` (a reload should not flood the evidence)."""
    return any(r.session_id == meta.session_id for r in _contact_events(session, agreement, contact, (kind,)))


def record_open(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, *, meta: Meta) -> None:
    if agreement.status != OPEN or contact.client_id != agreement.client_id:
        return
    if _session_once(session, agreement, contact, "opened", meta):
        return
    with step(session):
        agreement = lock(session, agreement)
        append(session, rt, agreement, "opened", meta, {})
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


def consent(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, *, disclosure_version_id: int,
            meta: Meta) -> None:
    """The E-SIGN consent, recorded with the hash of the disclosure the contact was shown."""
    with step(session):
        agreement = lock(session, agreement)
        _check_signable(session, agreement, contact)
        version = terms_service.current_version(session, T.DISCLOSURE)
        if version is None or version.id != disclosure_version_id:
            raise DomainError("The disclosure was updated while you were reading it. Please read it again.")
        if progress(session, agreement, contact).consented:
            session.rollback()
            return
        agreement.disclosure_version_id = version.id
        append(session, rt, agreement, "consented", meta, {
            "disclosure_version": version.number, "disclosure_version_sha256": version.sha256,
            "disclosure_sha256": evidence.sha256_hex(_disclosure_html(session, version)),
            "statement": consent_statement(session),
        })
        session.commit()


def record_view(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, *, meta: Meta) -> None:
    """The full document was displayed to this contact (after consenting). Once per browser session."""
    with step(session):
        agreement = lock(session, agreement)
        _check_signable(session, agreement, contact)
        if not progress(session, agreement, contact).consented:
            raise DomainError(NOT_CONSENTED)
        if _session_once(session, agreement, contact, "viewed", meta):
            session.rollback()
            return
        append(session, rt, agreement, "viewed", meta, {"document_sha256": agreement.document_sha256})
        session.commit()


def clause_statements(agreement: Agreement) -> list[tuple[T.Clause, str]]:
    """Each high-risk clause with its statement merged with this agreement's variables."""
    variables = json.loads(agreement.merged_variables)
    return [(c, evidence.merge(c.statement, variables)) for c in T.HIGH_RISK_CLAUSES]


def acknowledge(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, clauses: list[str], *,
                meta: Meta) -> None:
    """One event per acknowledged clause, recording the exact statement ticked."""
    with step(session):
        agreement = lock(session, agreement)
        _check_signable(session, agreement, contact)
        state = progress(session, agreement, contact)
        if not state.consented:
            raise DomainError(NOT_CONSENTED)
        if not state.viewed:
            raise DomainError(NOT_READ)
        if not clauses or set(clauses) - set(T.CLAUSE_KEYS):
            raise DomainError("Tick each statement to acknowledge it.")
        statements = {c.key: text for c, text in clause_statements(agreement)}
        for key in T.CLAUSE_KEYS:
            if key in clauses and key not in state.acknowledged:
                append(session, rt, agreement, "clause_acknowledged", meta, {
                    "clause": key, "statement": statements[key], "document_sha256": agreement.document_sha256})
        session.commit()


def authority_statement(agreement: Agreement) -> str:
    return evidence.merge(T.AUTHORITY_STATEMENT, json.loads(agreement.merged_variables))


def sign(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, *, full_name: str, title: str,
         authority_confirmed: bool, signature: Signature, document_sha256: str, meta: Meta) -> Agreement:
    """Sign, if and only if every step before it was done by this contact on this exact document. Then the
    signed PDF is rendered, PAdES-signed and stored, older signed versions are superseded and the signer gets a
    copy. Checked under the write lock: of two signatures at once, or a signature racing a void or a publish,
    exactly one wins and the other is refused."""
    with step(session):
        agreement = lock(session, agreement)
        _sign_locked(session, rt, agreement, contact, full_name=full_name, title=title,
                     authority_confirmed=authority_confirmed, signature=signature, document_sha256=document_sha256,
                     meta=meta)
        session.commit()
    _deliver_copy(session, rt, agreement, contact, meta)
    return agreement


def _sign_locked(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, *, full_name: str,
                 title: str, authority_confirmed: bool, signature: Signature, document_sha256: str,
                 meta: Meta) -> None:
    _check_signable(session, agreement, contact)
    state = progress(session, agreement, contact)
    if not state.consented:
        raise DomainError(NOT_CONSENTED)
    if not state.viewed:
        raise DomainError(NOT_READ)
    missing = [c.title for c in T.HIGH_RISK_CLAUSES if c.key not in state.acknowledged]
    if missing:
        raise DomainError("Please acknowledge each of these clauses before signing: " + ", ".join(missing) + ".")
    if document_sha256 != agreement.document_sha256 or evidence.sha256_hex(agreement.document_html) != \
            agreement.document_sha256:
        raise DomainError("The document changed since you opened it. Please review it again before signing.")
    full_name, title, png, typed, signature_sha = _checked_signer(full_name, title, authority_confirmed, signature)

    statement = authority_statement(agreement)
    event = append(session, rt, agreement, "signed", meta, {
        "document_sha256": agreement.document_sha256, "version_sha256": agreement.version_sha256,
        "version": agreement.version.number, "signer_name": full_name, "signer_title": title,
        "signer_email": contact.email, "authority_statement": statement, "signature_kind": signature.kind,
        "signature_sha256": signature_sha, "disclosure_version_id": agreement.disclosure_version_id,
        "client_id": agreement.client_id,
    })
    agreement.status = AgreementStatus.SIGNED
    agreement.open_key = None
    agreement.signer_contact_id = contact.id
    agreement.signer_name, agreement.signer_title, agreement.signer_email = full_name, title, contact.email
    agreement.authority_statement = statement
    agreement.signature_kind, agreement.signature_text, agreement.signature_png = signature.kind, typed, png
    agreement.signed_at, agreement.signed_ip = event.occurred_at, event.ip  # the very values the chain holds
    agreement.signed_chain_head = agreement.chain_head
    _supersede_older(session, rt, agreement, meta)
    pdf = render_signed_pdf(session, rt, agreement)
    agreement.signed_pdf, agreement.pdf_sha256 = pdf, evidence.sha256_hex(pdf)


def _checked_signer(full_name: str, title: str, authority_confirmed: bool,
                    signature: Signature) -> tuple[str, str, bytes | None, str, str]:
    """The signer's name and title as recorded (white space folded) and the checked signature (PNG, typed text,
    SHA-256): the same checks whether the terms or an autopay authorization is signed."""
    full_name, title = " ".join((full_name or "").split()), " ".join((title or "").split())
    if len(full_name) < 2 or len(full_name) > 200:
        raise DomainError("Enter your full name.")
    if not title or len(title) > 200:
        raise DomainError("Enter your title (your role at the company).")
    if not authority_confirmed:
        raise DomainError("Confirm that you are authorized to sign for the company.")
    png, typed, signature_sha = _signature(signature, full_name)
    return full_name, title, png, typed, signature_sha


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


def _supersede_older(session: Session, rt: Runtime, agreement: Agreement, meta: Meta) -> None:
    older = session.scalars(select(Agreement).where(Agreement.client_id == agreement.client_id,
                                                    Agreement.kind == agreement.kind,
                                                    Agreement.status == AgreementStatus.SIGNED,
                                                    Agreement.id != agreement.id))
    for old in list(older):
        old = lock(session, old)
        old.status, old.superseded_at = AgreementStatus.SUPERSEDED, now()
        append(session, rt, old, "superseded", meta, {"by": agreement.reference,
                                                       "by_version": agreement.version.number})


def _deliver_copy(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, meta: Meta) -> None:
    settings = get_settings(session)
    delivery = mail.send(
        session, rt, to=[contact.email],
        subject=f"Your signed copy: {settings.name} {agreement.version.title.lower()} ({agreement.reference})",
        template="agreement_signed", context={"contact": contact, "agreement": agreement, "client": agreement.client},
        attachments=[Attachment(pdf_filename(agreement), agreement.signed_pdf or b"")],
    )
    with step(session):
        agreement = lock(session, agreement)
        if delivery.ok:
            append(session, rt, agreement, "copy_delivered", meta, {
                "to": contact.email, "message_id": delivery.message_id, "pdf_sha256": agreement.pdf_sha256})
        else:
            append(session, rt, agreement, "copy_delivery_failed", meta, {"to": contact.email,
                                                                          "error": delivery.error[:500]})
        session.commit()


def decline(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, *, reason: str,
            meta: Meta) -> None:
    reason = (reason or "").strip()
    if len(reason) > 2000:
        raise DomainError("Keep the reason under 2,000 characters.")
    with step(session):
        agreement = lock(session, agreement)
        _check_signable(session, agreement, contact)
        append(session, rt, agreement, "declined", meta, {"reason": reason})
        agreement.status, agreement.open_key = AgreementStatus.DECLINED, None
        agreement.declined_at, agreement.decline_reason = now(), reason
        session.commit()
