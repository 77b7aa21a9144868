"""The public magic-link pages: a good link opens exactly one invoice (page + PDF) without signing anyone in; every
bad link gets a clear page that shows nothing of the invoice."""

from __future__ import annotations

import io
from datetime import date

import pytest
from itsdangerous import URLSafeSerializer
from pypdf import PdfReader

from portal.services import billing, clients, delivery

from .conftest import assert_shows_nothing_of, path_of


def test_a_link_opens_its_invoice_with_lines_totals_and_how_to_pay(http, link, invoice):
    page = http.get(path_of(link))

    assert page.status_code == 200
    body = page.get_data(as_text=True)
    for shown in (f"Invoice {invoice.number}", "Northwind Traders", "9 Harbor Rd", "Managed endpoint protection",
                  "Backup storage 2 TB", "$569.20", "Apr 15, 2026", "Mail a check to Acme IT"):
        assert shown in body, shown
    assert 'id="pay"' in body
    assert f'href="{path_of(link)}/pdf"' in body


def test_the_link_page_shows_no_other_invoice_and_signs_nobody_in(http, link, invoice, make, northwind):
    other = make.invoice(northwind, 77_700)

    page = http.get(path_of(link))

    assert other.number not in page.text and "$777.00" not in page.text
    assert "Sign out" not in page.text  # no session, so no portal navigation
    with http.session_transaction() as s:
        assert "_user_id" not in s
    assert http.get("/").status_code == 302  # the client portal still wants a sign-in
    assert http.get("/invoices").status_code in (302, 404)


def test_the_pdf_downloads_as_an_attachment_naming_the_invoice(http, link, invoice):
    response = http.get(path_of(link) + "/pdf")

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f"attachment; filename={invoice.number}.pdf"
    assert invoice.number in PdfReader(io.BytesIO(response.data)).pages[0].extract_text()


def test_link_pages_are_not_cached_indexed_or_leaked_by_referer(http, link):
    response = http.get(path_of(link))

    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_a_paid_invoice_still_opens_and_says_nothing_is_owed(http, link, invoice, make, northwind, session):
    make.payment(northwind, 56_920)

    page = http.get(path_of(link))

    assert page.status_code == 200
    assert "Nothing to pay" in page.text and 'id="pay"' not in page.text


# --- rejections -----------------------------------------------------------------------------------------------------

def tampered(token: str) -> str:
    body, _, signature = token.rpartition(".")
    return f"{body}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def test_a_tampered_signature_gets_the_generic_page(http, link, invoice, rt):
    token = delivery.link_token(rt, link)

    for bad in (tampered(token), token[:-3], "not-a-token", token.split(".")[0]):
        for suffix in ("", "/pdf"):
            response = http.get(f"/i/{bad}{suffix}")
            assert response.status_code == 404, (bad, suffix)
            assert "This link is not valid" in response.text
            assert "Email me a fresh link" in response.text
            assert_shows_nothing_of(response, invoice)


def test_another_invoices_id_in_the_token_is_rejected(app, http, link, invoice, make, northwind):
    other = make.invoice(northwind, 4_400)
    forged = URLSafeSerializer(app.config["SECRET_KEY"], salt="invoice-link").dumps([link.id, other.id, link.nonce])

    for suffix in ("", "/pdf"):
        response = http.get(f"/i/{forged}{suffix}")
        assert response.status_code == 404
        assert_shows_nothing_of(response, invoice)
        assert other.number not in response.text


def test_an_expired_link_says_so_and_offers_a_fresh_one(http, link, invoice, clock):
    clock.set(date(2026, 5, 16))  # due Apr 15 + 30 days has fully passed

    for suffix in ("", "/pdf"):
        response = http.get(path_of(link) + suffix)
        assert response.status_code == 410
        assert "This link has expired" in response.text
        assert "Email me a fresh link" in response.text
        assert_shows_nothing_of(response, invoice)


def test_the_last_day_of_a_link_still_works(http, link, clock):
    clock.set(date(2026, 5, 15))

    assert http.get(path_of(link)).status_code == 200


def test_a_revoked_link_is_rejected(http, session, link, invoice):
    delivery.revoke_link(session, link, actor=None)

    response = http.get(path_of(link))
    assert response.status_code == 410
    assert "This link no longer works" in response.text and "switched off" in response.text
    assert_shows_nothing_of(response, invoice)
    assert http.get(path_of(link) + "/pdf").status_code == 410


def test_a_link_replaced_by_a_resend_is_dead_and_the_new_one_works(http, session, link, invoice, pat, rt):
    [again] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)

    old = http.get(path_of(link))
    assert old.status_code == 410 and "A newer email was sent" in old.text
    assert_shows_nothing_of(old, invoice)
    assert http.get(path_of(again.link)).status_code == 200


@pytest.mark.parametrize("how", ["deleted", "moved", "no_access"])
def test_a_contact_removed_from_the_client_is_rejected_like_a_bad_link(http, session, link, invoice, pat, make, how):
    emailed = path_of(link)  # what the email says, taken before the contact (and with it the link row) goes
    if how == "deleted":
        session.delete(pat)
        session.commit()
    elif how == "moved":
        pat.client_id = make.client("Contoso").id
        session.commit()
    else:
        clients.update_contact(session, pat, portal_access=False)

    for suffix in ("", "/pdf"):
        response = http.get(emailed + suffix)
        assert response.status_code == 404
        assert "This link is not valid" in response.text
        assert_shows_nothing_of(response, invoice)


def test_a_void_invoice_shows_a_clear_page_without_details(http, session, link, invoice):
    billing.void_invoice(session, invoice, "Billed twice")

    response = http.get(path_of(link))
    assert response.status_code == 410
    assert "This invoice was cancelled" in response.text
    assert "Email me a fresh link" not in response.text
    assert_shows_nothing_of(response, invoice)
    assert "Billed twice" not in response.text
