"""Agreements whose document is a published template version merged with per-agreement data (an autopay
authorization: the method, the rules), signed in one step by a contact who is present.

Same evidence as the payment terms: the chain records the invitation, the signer's consent to electronic records,
the exact document displayed (its SHA-256, which the form carries back), and the signature; the signed PDF is
rendered and PAdES-sealed by the same code and the same verify page checks it. What differs is that there is no
emailed invitation: the document is built for this signer at this moment, so the steps happen in one request.
Later events (a revocation) append to the same chain; the document stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import evidence
from portal.domain.errors import DomainError
from portal.domain.evidence import AgreementStatus
from portal.models import Agreement, Client, Contact, TermsVersion

from .. import terms as terms_service
from ..runtime import Runtime
from .chain import Meta, append, lock
from .signing import (
    Signature,
    _checked_signer,
    _deliver_copy,
    _disclosure_html,
    authority_statement,
    consent_statement,
)


@dataclass(frozen=True)
class Document:
    """What the signer is shown: the version, the merged variables, the text, the HTML and its hash."""

    version: TermsVersion
    variables: dict[str, str]
    text: str
    html: str

    @property
    def sha256(self) -> str:
        return evidence.sha256_hex(self.html)


@dataclass(frozen=True)
class SignedBy:
    """What the signer gave on the signing page: name, title, the two confirmations, the signature, and the
    SHA-256 of the document the page showed (checked again against what is signed)."""

    full_name: str
    title: str
    authority_confirmed: bool
    consent_confirmed: bool
    signature: Signature
    shown_sha256: str


def current_version(session: Session, kind: str) -> TermsVersion:
    """The published version of ``kind``; a fresh install publishes the shipped text as version 1."""
    return terms_service.published(session, kind, "Default text")


def render(version: TermsVersion, variables: dict[str, str]) -> Document:
    text = evidence.merge(version.text, variables)
    return Document(version, variables, text, evidence.to_html(text))


def sign_rendered(session: Session, rt: Runtime, client: Client, contact: Contact, document: Document, *,
                  shown_sha256: str, full_name: str, title: str, authority_confirmed: bool, consent_confirmed: bool,
                  signature: Signature, meta: Meta, data: dict) -> Agreement:
    """Create the agreement and record invitation, consent, view and signature, inside the caller's transaction
    (the caller holds the write lock and commits). ``shown_sha256``: the hash of the document the form showed;
    a document that changed since (the rules or the template) is refused, so what is signed is what was seen."""
    if contact.client_id != client.id:
        raise DomainError("That contact belongs to another client.")
    if shown_sha256 != document.sha256:
        raise DomainError("The authorization changed since you opened it. Please read it again before signing.")
    if not consent_confirmed:
        raise DomainError("Please agree to do business electronically first.")
    full_name, title, png, typed, signature_sha = _checked_signer(full_name, title, authority_confirmed, signature)
    meta = replace(meta, contact_id=contact.id)  # the signer is the contact acting, whoever built the meta
    disclosure = terms_service.ensure_disclosure(session)

    agreement = Agreement(
        kind=document.version.kind, reference=evidence.new_reference(), client_id=client.id,
        version_id=document.version.id, version_sha256=document.version.sha256, status=AgreementStatus.INVITED,
        open_key=None, merged_variables=evidence.canonical_json(document.variables).decode(),
        document_text=document.text, document_html=document.html, document_sha256=document.sha256,
        invited_contact_id=contact.id, created_at=now(), chain_head=evidence.GENESIS, event_count=0,
        disclosure_version_id=disclosure.id,
    )
    session.add(agreement)
    session.flush()
    append(session, rt, agreement, "invited", meta, {
        "via": "portal", "version": document.version.number, "version_sha256": document.version.sha256,
        "document_sha256": document.sha256, "contact_id": contact.id, "contact_email": contact.email, **data})
    append(session, rt, agreement, "consented", meta, {  # the same facts as signing.consent records
        "disclosure_version": disclosure.number, "disclosure_version_sha256": disclosure.sha256,
        "disclosure_sha256": evidence.sha256_hex(_disclosure_html(session, disclosure)),
        "statement": consent_statement(session)})
    append(session, rt, agreement, "viewed", meta, {"document_sha256": document.sha256})
    statement = authority_statement(agreement)
    event = append(session, rt, agreement, "signed", meta, {
        "document_sha256": document.sha256, "version_sha256": document.version.sha256,
        "version": document.version.number, "signer_name": full_name, "signer_title": title,
        "signer_email": contact.email, "authority_statement": statement, "signature_kind": signature.kind,
        "signature_sha256": signature_sha, "disclosure_version_id": disclosure.id, "client_id": client.id,
    })
    agreement.status = AgreementStatus.SIGNED
    agreement.signer_contact_id = contact.id
    agreement.signer_name, agreement.signer_title, agreement.signer_email = full_name, title, contact.email
    agreement.authority_statement = statement
    agreement.signature_kind, agreement.signature_text, agreement.signature_png = signature.kind, typed, png
    agreement.signed_at, agreement.signed_ip = event.occurred_at, event.ip
    agreement.signed_chain_head = agreement.chain_head
    from .documents import render_signed_pdf  # the PDF template reads the events just appended

    pdf = render_signed_pdf(session, rt, agreement)
    agreement.signed_pdf, agreement.pdf_sha256 = pdf, evidence.sha256_hex(pdf)
    return agreement


def deliver_copy(session: Session, rt: Runtime, agreement: Agreement, contact: Contact, meta: Meta) -> None:
    """Email the signer the signed PDF (its own transaction, after the signature is committed)."""
    _deliver_copy(session, rt, agreement, contact, meta)


def record_event(session: Session, rt: Runtime, agreement: Agreement, kind: str, meta: Meta, data: dict) -> None:
    """Append a later event (``revoked``) inside the caller's transaction; the document itself never changes."""
    agreement = lock(session, agreement)
    append(session, rt, agreement, kind, meta, data)
