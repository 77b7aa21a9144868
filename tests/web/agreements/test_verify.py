"""The public verification page: no sign-in, exact-file matching, references, chain status, rate limits."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text

from .conftest import assert_clean


def upload(http, data: bytes, name: str = "agreement.pdf"):
    return http.post("/verify/file", data={"pdf": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def test_the_page_is_public_and_clean(http):
    response = http.get("/verify")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Upload the signed PDF" in body and "Or enter the reference" in body
    assert_clean(body, "/verify")


def test_the_exact_signed_pdf_matches(http, signed):
    response = upload(http, signed.signed_pdf)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"This file matches signed agreement {signed.reference} exactly" in body
    assert "Dana Whitfield, Office Manager" in body and "Harbor Dental Group LLC" in body
    assert signed.signed_at.strftime("%Y-%m-%d %H:%M:%S") in body
    assert f"Intact: {signed.event_count} events" in body
    assert 'data-outcome="match"' in body


def test_a_pdf_altered_by_one_byte_does_not_match(http, signed):
    altered = bytearray(signed.signed_pdf)
    altered[-20] ^= 0x20
    body = upload(http, bytes(altered)).get_data(as_text=True)
    assert "This file does not match any signed agreement" in body
    assert signed.reference not in body and "Dana Whitfield" not in body
    assert 'data-outcome="none"' in body


def test_a_reference_shows_who_signed_what_and_when(http, signed):
    body = http.post("/verify/reference", data={"reference": signed.reference.lower()}).get_data(as_text=True)
    assert f"Agreement {signed.reference} is signed and its record is intact" in body
    assert "Payment terms, version 1" in body and signed.document_sha256 in body


def test_a_tampered_chain_is_reported(http, session, signed):
    session.execute(text("UPDATE agreement_events SET ip = '10.0.0.1' WHERE agreement_id = :a AND seq = 2"),
                    {"a": signed.id})
    session.commit()
    body = http.post("/verify/reference", data={"reference": signed.reference}).get_data(as_text=True)
    assert f"The record of agreement {signed.reference} does not verify" in body
    assert "Broken: event 2 was changed after it was recorded" in body
    assert 'data-outcome="problem"' in body
    assert "does not verify" in upload(http, signed.signed_pdf).get_data(as_text=True)


def test_an_edited_signer_name_is_a_break_and_the_page_shows_the_chains_name(http, session, signed):
    """The attack from issue 8: the row's signer_name changed directly in the database."""
    session.execute(text("UPDATE agreements SET signer_name = 'Mallory Forger' WHERE id = :a"), {"a": signed.id})
    session.commit()
    body = http.post("/verify/reference", data={"reference": signed.reference}).get_data(as_text=True)
    assert f"The record of agreement {signed.reference} does not verify" in body
    assert 'data-field="signer_name"' in body and "Broken: signer_name" in body
    assert "Mallory Forger" not in body and "Dana Whitfield, Office Manager" in body  # shown from the chain
    assert 'data-outcome="problem"' in body


def test_an_unsigned_invitation_says_so_without_details(http, invitation):
    body = http.post("/verify/reference", data={"reference": invitation.reference}).get_data(as_text=True)
    assert "was not signed" in body and "Harbor Dental Group LLC" not in body


@pytest.mark.parametrize("reference", ["AGR-0000-0000-0000", "hello", "' OR 1=1 --"])
def test_unknown_references(http, reference, signed):
    body = http.post("/verify/reference", data={"reference": reference}).get_data(as_text=True)
    assert "No agreement has that reference" in body


def test_missing_input_is_a_form_error(http):
    response = http.post("/verify/reference", data={"reference": ""})
    assert response.status_code == 400 and "Enter the reference." in response.get_data(as_text=True)
    response = http.post("/verify/file", data={}, content_type="multipart/form-data")
    assert response.status_code == 400 and "Choose the signed PDF to check." in response.get_data(as_text=True)


class TestRateLimit:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["RATELIMIT_ENABLED"] = True
        return app_config

    def test_lookups_are_limited_per_ip_but_the_page_still_loads(self, http):
        for _ in range(20):
            assert http.post("/verify/reference", data={"reference": "AGR-0000-0000-0000"}).status_code == 200
        blocked = http.post("/verify/reference", data={"reference": "AGR-0000-0000-0001"})
        assert blocked.status_code == 429 and "Too many attempts" in blocked.get_data(as_text=True)
        assert upload(http, b"%PDF-1.7").status_code == 429  # the same budget covers uploads
        assert http.get("/verify").status_code == 200
