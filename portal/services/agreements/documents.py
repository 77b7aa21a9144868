"""What an agreement produces and how anyone checks it: the signed PDF, and verification by reference or file."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import evidence
from portal.domain.errors import DomainError
from portal.models import Agreement, TermsVersion

from .. import terms as terms_service
from ..runtime import Runtime
from ..settings import get_settings
from .chain import EVENT_LABELS, check_links, event_data, events, stored_links
from .keys import pdf_signer


def pdf_filename(agreement: Agreement) -> str:
    return f"{agreement.reference}-signed.pdf"


def render_signed_pdf(session: Session, rt: Runtime, agreement: Agreement) -> bytes:
    """The terms exactly as shown, the signature and a certificate page of the evidence up to signing, sealed
    with a PAdES signature by this install's certificate (a PDF reader shows whether the file changed since)."""
    rows = events(session, agreement)
    signer = pdf_signer(rt)
    msp = get_settings(session)
    signature_uri = ("data:image/png;base64," + base64.b64encode(agreement.signature_png).decode()
                     if agreement.signature_png else "")
    pdf = rt.pdf.render("agreement", agreement=agreement, events=rows, labels=EVENT_LABELS,
                        signature_uri=signature_uri, data_of=event_data, client=agreement.client,
                        verify_url=rt.url("agreements.verify"), msp=msp, disclosure=agreement.disclosure_version,
                        acknowledgments=[event_data(r) for r in rows if r.kind == "clause_acknowledged"],
                        certificate_fingerprint=signer.fingerprint)
    return signer.sign(pdf, reason=f"Signed agreement {agreement.reference}", location=msp.legal_name or msp.name)


# ---------------------------------------------------------------------------------------------------- verification

@dataclass(frozen=True)
class Break:
    """A stored field that disagrees with the evidence chain (or a document with its recorded hash)."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


@dataclass(frozen=True)
class Verification:
    """What the chain says (``record``), whether the chain is intact and anchored, and every row field that
    disagrees with it. A page shows ``record``, never the agreement row's own signer fields."""

    agreement: Agreement
    chain: evidence.ChainReport
    pdf_match: bool | None  # None: looked up by reference, no file given
    record: evidence.SignedRecord | None  # rebuilt from the chain; None when the chain holds no signature
    breaks: tuple[Break, ...]
    version: TermsVersion | None = None

    @property
    def signed(self) -> bool:
        """The chain, not the row, says whether it was signed: a row edited to "signed" is a break, not a
        signature."""
        return self.record is not None

    @property
    def document_intact(self) -> bool:
        return not self.breaks

    @property
    def intact(self) -> bool:
        return self.chain.intact and not self.breaks

    @property
    def consent(self) -> evidence.EventFacts | None:
        return self.record.consent if self.record else None

    @property
    def parties(self) -> tuple[str, str]:
        """The MSP and the client as merged into the signed document (the document's hash covers both)."""
        variables = json.loads(self.agreement.merged_variables or "{}")
        return variables.get("msp_legal_name", ""), variables.get("client_legal_name", "")


def _stamp(moment: datetime | None) -> str:
    return evidence.utc_stamp(moment) if moment is not None else ""


def _row_breaks(rt: Runtime, agreement: Agreement, links: list[evidence.Link],
                record: evidence.SignedRecord | None) -> list[Break]:
    """Every field the pages, the PDF or a dispute rely on, compared with what the chain recorded."""
    found: list[Break] = []

    def check(name: str, ok: bool, problem: str = "differs from the signed evidence") -> None:
        if not ok:
            found.append(Break(name, problem))

    check("status", agreement.status == evidence.chain_status(links),
          f"says {agreement.status!r} but the evidence says {evidence.chain_status(links) or 'nothing'!r}")
    if record is None:
        return found
    signature = (agreement.signature_png or b"") if record["signature_kind"] == "drawn" else agreement.signature_text
    checks = [
        ("signer_name", agreement.signer_name, record["signer_name"]),
        ("signer_title", agreement.signer_title, record["signer_title"]),
        ("signer_email", agreement.signer_email, record["signer_email"]),
        ("authority_statement", agreement.authority_statement, record["authority_statement"]),
        ("signature_kind", agreement.signature_kind, record["signature_kind"]),
        ("signature_png" if record["signature_kind"] == "drawn" else "signature_text",
         evidence.sha256_hex(signature or b""), record["signature_sha256"]),
        ("signed_at", _stamp(agreement.signed_at), _stamp(record.signed_at)),
        ("signed_ip", agreement.signed_ip, record.ip),
        ("signer_contact_id", agreement.signer_contact_id, record.contact_id),
        ("signed_chain_head", agreement.signed_chain_head, record.head),
        ("document_sha256", agreement.document_sha256, record["document_sha256"]),
        ("version_sha256", agreement.version_sha256, record["version_sha256"]),
        ("disclosure_version_id", agreement.disclosure_version_id, record["disclosure_version_id"]),
    ]
    if record["client_id"] is not None:
        checks.append(("client_id", agreement.client_id, record["client_id"]))
    for name, stored, recorded in checks:
        check(name, stored == recorded)
    # The document: the HTML shown must hash to the hash inside the signed event, the text must render to that
    # HTML, and the text must be the signed version merged with the stored variables.
    check("document_html", evidence.sha256_hex(agreement.document_html) == record["document_sha256"],
          "does not hash to the document hash in the signed event")
    check("document_text", evidence.sha256_hex(evidence.to_html(agreement.document_text)) == record["document_sha256"],
          "does not produce the document that was signed")
    version = agreement.version
    version_ok = (version is not None and version.sha256 == record["version_sha256"]
                  and version.number == record["version"]
                  and terms_service.version_hash(version.text, terms_service.version_parameters(version))
                  == version.sha256)
    check("version_id", version_ok, "the linked terms version is not the one that was signed")
    if version_ok:
        try:
            merged = evidence.merge(version.text, json.loads(agreement.merged_variables or "{}"))
        except (ValueError, TypeError, DomainError):
            merged = None
        check("merged_variables", merged == agreement.document_text,
              "do not merge with the signed version into the stored text")
    check("pdf_sha256", agreement.signed_pdf is not None
          and evidence.sha256_hex(agreement.signed_pdf) == agreement.pdf_sha256,
          "the stored PDF does not match its recorded hash")
    check("signed_pdf", agreement.signed_pdf is not None and pdf_signer(rt).check(agreement.signed_pdf),
          "the stored PDF does not carry this portal's intact signature")
    return found


def _verification(session: Session, rt: Runtime, agreement: Agreement, pdf_match: bool | None) -> Verification:
    agreement, links = stored_links(session, agreement)
    chain = check_links(rt, agreement, links)
    record = evidence.signed_record(links) if links is not None and chain.intact else None
    breaks = _row_breaks(rt, agreement, links, record) if links is not None and chain.intact else []
    return Verification(agreement, chain, pdf_match, record, tuple(breaks), agreement.version)


def verify_reference(session: Session, rt: Runtime, text: str) -> Verification | None:
    reference = evidence.normalize_reference(text)
    if reference is None:
        return None
    agreement = session.scalar(select(Agreement).where(Agreement.reference == reference))
    return _verification(session, rt, agreement, None) if agreement is not None else None


def verify_pdf(session: Session, rt: Runtime, data: bytes) -> Verification | None:
    """Exact match on the SHA-256 of the whole file: one changed byte and it no longer matches."""
    if not data:
        return None
    agreement = session.scalar(select(Agreement).where(Agreement.pdf_sha256 == evidence.sha256_hex(data)))
    return _verification(session, rt, agreement, True) if agreement is not None else None
