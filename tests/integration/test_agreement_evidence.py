"""Verification trusts the evidence, not the agreement row: every row field edited in the database is reported by
name, a chain rewritten whole with recomputed hashes is caught by the key-held anchor, and the signed PDF carries a
PAdES signature that pyHanko's own validator accepts untouched and rejects after one changed byte."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select, text

from portal.domain import evidence
from portal.models import AgreementEvent
from portal.services import agreements as svc
from portal.web.runtime import runtime
from tests.integration.test_agreements import invite, prepare, sign, signed, w  # noqa: F401 (fixtures)


def edit_row(session, agreement, column: str, value) -> None:
    session.execute(text(f"UPDATE agreements SET {column} = :v WHERE id = :i"), {"v": value, "i": agreement.id})  # noqa: S608
    session.commit()
    session.expire_all()


def broken_fields(session, agreement) -> list[str]:
    result = svc.verify_reference(session, runtime(), agreement.reference)
    assert result is not None
    return [b.field for b in result.breaks]


def test_an_untouched_signed_agreement_verifies_from_its_chain(session, signed):  # noqa: F811
    result = svc.verify_reference(session, runtime(), signed.reference)
    assert result.intact and result.signed and result.breaks == ()
    record = result.record
    assert (record["signer_name"], record["signer_title"], record.ip) == ("Dana Whitfield", "Office Manager",
                                                                          "203.0.113.7")
    assert record.signed_at == signed.signed_at and record["document_sha256"] == signed.document_sha256
    assert result.consent is not None and result.consent.kind == "consented"
    assert [a["clause"] for a in record.acknowledgments] == ["remote_disable", "equipment_recovery", "autopay",
                                                             "late_fees"]
    assert result.parties == ("Acme IT Services LLC", "Harbor Dental Group LLC")


ROW_EDITS = [
    ("signer_name", "Mallory Forger"),
    ("signer_title", "CEO"),
    ("signer_email", "mallory@evil.test"),
    ("authority_statement", "I am not authorized."),
    ("signature_kind", "drawn"),
    ("signature_text", "Mallory Forger"),
    ("signed_ip", "10.6.6.6"),
    ("signed_chain_head", "a" * 64),
    ("document_sha256", "b" * 64),
    ("version_sha256", "c" * 64),
    ("status", "declined"),
    ("pdf_sha256", "d" * 64),
    ("signed_pdf", b"%PDF-1.7 forged"),
    ("merged_variables", json.dumps({"client_legal_name": "Someone Else LLC"})),
]


@pytest.mark.parametrize("column, value", ROW_EDITS, ids=[c for c, _ in ROW_EDITS])
def test_each_row_field_edited_in_the_database_is_a_break_named_by_field(session, signed, column, value):  # noqa: F811
    assert broken_fields(session, signed) == []
    edit_row(session, signed, column, value)
    result = svc.verify_reference(session, runtime(), signed.reference)
    assert column in [b.field for b in result.breaks]
    assert not result.intact and result.chain.intact  # the chain itself is fine: the row lies


def test_the_signing_time_contact_client_and_disclosure_are_checked_too(session, w, signed, make):  # noqa: F811
    for column, value in [("signed_at", signed.signed_at.replace(tzinfo=None) - timedelta(days=3)),
                          ("signer_contact_id", make.contact(w.client).id),
                          ("client_id", make.client("Other Co").id),
                          ("disclosure_version_id", None)]:
        original = session.scalar(text(f"SELECT {column} FROM agreements WHERE id = :i"), {"i": signed.id})  # noqa: S608
        edit_row(session, signed, column, value)
        assert column in broken_fields(session, signed), column
        edit_row(session, signed, column, original)
    assert broken_fields(session, signed) == []


def test_rewriting_the_terms_text_and_its_fingerprint_is_caught(session, signed):  # noqa: F811
    """The attack from the issue: remote disable after 5 days instead of 45, fingerprint recomputed."""
    text_ = signed.document_text.replace("45 days", "5 days")
    html = evidence.to_html(text_)
    assert text_ != signed.document_text
    session.execute(text("UPDATE agreements SET document_text = :t, document_html = :h, document_sha256 = :s "
                         "WHERE id = :i"), {"t": text_, "h": html, "s": evidence.sha256_hex(html), "i": signed.id})
    session.commit()
    fields = broken_fields(session, signed)
    assert {"document_html", "document_text", "document_sha256"} <= set(fields)


def test_a_row_marked_signed_without_a_signed_event_is_not_a_signature(session, w):  # noqa: F811
    agreement = invite(session, w)
    edit_row(session, agreement, "status", "signed")
    edit_row(session, agreement, "signer_name", "Dana Whitfield")
    result = svc.verify_reference(session, runtime(), agreement.reference)
    assert not result.signed and [b.field for b in result.breaks] == ["status"]


def _rewrite_chain(session, agreement, change) -> None:
    """What someone with write access to the database could do: edit an event and recompute every hash after it,
    and the agreement's head, so the chain is internally consistent again."""
    rows = session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                           .order_by(AgreementEvent.seq)).all()
    prev = evidence.GENESIS
    for row in rows:
        data = json.loads(row.data)
        if row.kind == "signed":
            change(data)
        facts = evidence.EventFacts(agreement.reference, row.seq, row.kind, row.occurred_at, row.ip, row.user_agent,
                                    row.session_id, row.contact_id, row.staff_id, data)
        digest = evidence.event_hash(prev, facts)
        session.execute(text("UPDATE agreement_events SET data = :d, prev_hash = :p, hash = :h WHERE id = :i"),
                        {"d": evidence.canonical_json(data).decode(), "p": prev, "h": digest, "i": row.id})
        if row.kind == "signed":
            session.execute(text("UPDATE agreements SET signed_chain_head = :h WHERE id = :i"),
                            {"h": digest, "i": agreement.id})
        prev = digest
    session.execute(text("UPDATE agreements SET chain_head = :h WHERE id = :i"), {"h": prev, "i": agreement.id})
    session.commit()
    session.expire_all()


def test_a_chain_rewritten_whole_with_recomputed_hashes_is_caught_by_the_anchor(session, signed):  # noqa: F811
    def forge(data):
        data["signer_name"] = "Mallory Forger"
    _rewrite_chain(session, signed, forge)
    edit_row(session, signed, "signer_name", "Mallory Forger")
    # every hash checks out again ...
    agreement, links = svc.chain.stored_links(session, signed)
    assert evidence.verify_chain(links, expected_head=agreement.chain_head, expected_count=agreement.event_count).intact
    # ... but the head is not the one the key vouched for
    report = svc.verify_events(session, runtime(), signed)
    assert not report.intact and "evidence key" in report.problem
    result = svc.verify_reference(session, runtime(), signed.reference)
    assert not result.intact and result.record is None  # nothing from a rewritten chain is shown as fact


def test_the_anchor_key_lives_in_the_instance_folder_owner_only(session, app, signed):  # noqa: F811
    path = Path(app.instance_path) / "keys" / "evidence-chain.key"
    assert path.exists() and (os.stat(path).st_mode & 0o777) == 0o600
    assert path.read_text().strip() not in str(session.scalar(text("SELECT chain_anchor FROM agreements")))


def test_the_anchor_key_can_come_from_the_environment(session, app, signed):  # noqa: F811
    """A different key (another install, or a key lost and replaced) vouches for none of the chains."""
    assert svc.verify_events(session, runtime(), signed).intact
    app.config["EVIDENCE_KEY"] = "another-install's-key"
    report = svc.verify_events(session, runtime(), signed)
    assert not report.intact and "evidence key" in report.problem


# ---------------------------------------------------------------------------------------------------- PAdES

def install_certificate(app) -> asn1_x509.Certificate:
    pem = (Path(app.instance_path) / "keys" / "agreement-signing.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return asn1_x509.Certificate.load(der)


def pades(pdf: bytes, root: asn1_x509.Certificate):
    """pyHanko's own validation of the file's one signature, with the install's certificate as trust root."""
    [signature] = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    return validate_pdf_signature(signature, ValidationContext(trust_roots=[root]))


def test_the_signed_pdf_carries_a_pades_signature_that_pyhanko_validates(app, signed):  # noqa: F811
    root = install_certificate(app)
    status = pades(signed.signed_pdf, root)
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.signing_cert.sha256 == root.sha256


def test_one_changed_byte_fails_pyhankos_pades_validation(app, signed):  # noqa: F811
    root = install_certificate(app)
    altered = bytearray(signed.signed_pdf)
    position = signed.signed_pdf.index(b"/Type /Page") + 2  # inside the signed content: "/Type" becomes "/Tzpe"
    altered[position] ^= 0x03
    status = pades(bytes(altered), root)
    assert not status.intact and not status.bottom_line


def test_a_pdf_signed_by_another_install_is_not_trusted(app, signed, tmp_path):  # noqa: F811
    from portal.gateways.pdf_signing import PdfSigner

    stranger = PdfSigner(tmp_path / "elsewhere")
    status = pades(signed.signed_pdf, asn1_x509.Certificate.load(stranger.certificate_der))
    assert status.intact and not status.trusted
