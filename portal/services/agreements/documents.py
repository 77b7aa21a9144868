"""What an agreement produces and how anyone checks it: the signed PDF, and verification by reference or file."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import evidence
from portal.gateways.pdf import render_pdf
from portal.models import Agreement

from ..settings import get_settings
from .chain import EVENT_LABELS, event_data, events, verify_events

VERIFY_PATH = "/verify"  # the public verification page


def pdf_filename(agreement: Agreement) -> str:
    return f"{agreement.reference}-signed.pdf"


def render_signed_pdf(session: Session, agreement: Agreement) -> bytes:
    """The terms exactly as shown, the signature and a certificate page of the evidence up to signing."""
    rows = events(session, agreement)
    signature_uri = ("data:image/png;base64," + base64.b64encode(agreement.signature_png).decode()
                     if agreement.signature_png else "")
    return render_pdf("agreement", agreement=agreement, events=rows, labels=EVENT_LABELS,
                      signature_uri=signature_uri, data_of=event_data, client=agreement.client,
                      verify_url=current_app.config["BASE_URL"].rstrip("/") + VERIFY_PATH,
                      msp=get_settings(session), disclosure=agreement.disclosure_version,
                      acknowledgments=[event_data(r) for r in rows if r.kind == "clause_acknowledged"])


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
