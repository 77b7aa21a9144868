"""The staff pages for late fees and likely duplicate bills, and what the client sees of a late fee: the invoice
page's banners and buttons, waiving with a reason, confirming distinct or duplicate, the send refused while held,
staff-only access, and CSRF on every form."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from portal.clock import today
from portal.domain.duplicates import DuplicateStatus
from portal.domain.invoices import OPEN, VOID
from portal.models import Agreement, DuplicateFlag, Invoice, InvoiceDelivery, LateFee
from portal.services.collections import late_fees
from tests.conftest import sign_in, statements_unchanged_as_rows_grow
from tests.late_fee_fixtures import publish_terms, sign_terms

from .conftest import page

ISSUED = date(2026, 3, 2)


@pytest.fixture
def client(make):
    client = make.client("Harbor Dental Group LLC")
    make.contact(client, "dana@harbor.test", name="Dana Whitfield")
    return client


@pytest.fixture
def fee(session, make, clock, client, staff_user):
    version = publish_terms(session, staff=staff_user)
    sign_terms(session, client, version, on=date(2026, 1, 5))
    late = make.invoice(client, 100_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    clock.set(date(2026, 3, 9))
    late_fees.charge_late_fees(session, today())
    row = session.scalar(select(LateFee))
    assert row is not None and row.late_invoice_id == late.id
    return row


@pytest.fixture
def held(make, client):
    original = make.invoice(client, 125_000, issue_date=ISSUED)
    again = make.invoice(client, 125_000, issue_date=date(2026, 3, 4))
    return original, again


def flag_status(session, invoice) -> str:
    session.expire_all()
    return session.scalar(select(DuplicateFlag.status).where(DuplicateFlag.invoice_id == invoice.id))


def test_the_fee_and_duplicate_lists_read_their_invoices_with_the_rows_not_one_by_one(app, admin, session, make,
                                                                                     clock, staff_user):
    """A fee names its late invoice, that invoice's client and its fee invoice; a held bill names both invoices and
    the client. The lists (up to 200 fees, 500 flags) read those with their rows, one statement each, not one lazy
    load per row (200 fees were ~400 statements)."""
    version = publish_terms(session, staff=staff_user)
    clock.set(date(2026, 3, 9))

    def grow(n: int) -> None:
        for _ in range(n):
            client = make.client()
            sign_terms(session, client, version, on=date(2026, 1, 5))
            make.invoice(client, 100_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))  # 3 days late
            make.invoice(client, 125_000, issue_date=ISSUED)
            make.invoice(client, 125_000, issue_date=date(2026, 3, 4))  # the same bill again: held
        late_fees.charge_late_fees(session, today())

    grow(1)
    fees, flags = (page(r) for r in statements_unchanged_as_rows_grow(
        app, [lambda p=p: admin.get(p) for p in ("/admin/late-fees", "/admin/duplicates")], lambda: grow(4)))
    assert fees.count('data-fee="') == 5 and flags.count('data-flag="') == 5
    for fee in session.scalars(select(LateFee)):
        assert fee.late_invoice.number in fees and fee.fee_invoice.number in fees
        assert fee.late_invoice.client.legal_name in fees
    for flag in session.scalars(select(DuplicateFlag)):
        assert flag.invoice.number in flags and flag.duplicate_of.number in flags


# --- late fees ---------------------------------------------------------------------------------------------------

def test_the_fee_invoice_page_says_which_invoice_and_clause_and_offers_the_waiver(admin, session, fee):
    text = page(admin.get(f"/admin/invoices/{fee.fee_invoice_id}"))
    assert (f'Late fee on invoice <a href="/admin/invoices/{fee.late_invoice_id}">{fee.late_invoice.number}</a>'
            in text)
    assert "Per clause 4. Late fees and interest: If a balance is still unpaid 5 days after its due date" in text
    assert f'action="/admin/invoices/{fee.fee_invoice_id}/late-fee/waive"' in text
    late = page(admin.get(f"/admin/invoices/{fee.late_invoice_id}"))
    assert "Late fees on this invoice" in late and fee.fee_invoice.number in late
    listing = page(admin.get("/admin/late-fees"))
    assert fee.late_invoice.number in listing and "$15.00" in listing


@pytest.mark.parametrize("reason", ["", "    "])
def test_waiving_without_a_reason_is_refused_with_a_message_and_changes_nothing(admin, session, fee, reason):
    response = admin.post(f"/admin/invoices/{fee.fee_invoice_id}/late-fee/waive", data={"reason": reason})
    assert response.status_code == 400
    assert "Say why the late fee is waived; the reason is kept on record." in page(response)
    session.expire_all()
    assert session.get(LateFee, fee.id).waived_at is None
    assert session.get(Invoice, fee.fee_invoice_id).status == OPEN


def test_waiving_with_a_reason_records_it_and_voids_the_fee_invoice(admin, session, fee, staff_user):
    response = admin.post(f"/admin/invoices/{fee.fee_invoice_id}/late-fee/waive",
                          data={"reason": "Long-standing client, first late payment"})
    assert response.status_code == 302
    text = page(admin.get(response.headers["Location"]))
    assert "Late fee waived" in text and "Waived on" in text and "Long-standing client, first late payment" in text
    session.expire_all()
    row = session.get(LateFee, fee.id)
    assert (row.waived_by_id, row.waiver_reason) == (staff_user.id, "Long-standing client, first late payment")
    assert session.get(Invoice, fee.fee_invoice_id).status == VOID


def test_an_invoice_that_is_not_a_late_fee_has_nothing_to_waive(admin, session, make, client):
    plain = make.invoice(client, 5_000)
    assert admin.post(f"/admin/invoices/{plain.id}/late-fee/waive", data={"reason": "x"}).status_code == 404


def test_the_client_sees_which_invoice_and_clause_a_late_fee_is_for(http, session, make, fee, client):
    contact = client.contacts[0]
    sign_in(http, contact)
    text = page(http.get(f"/invoices/{fee.fee_invoice_id}"))
    assert "About this late fee" in text
    assert f'href="/invoices/{fee.late_invoice_id}"' in text and fee.late_invoice.number in text
    assert "From the payment terms you signed: 4. Late fees and interest" in text
    assert "About this late fee" not in page(http.get(f"/invoices/{fee.late_invoice_id}"))
    other = make.client("Other LLC")
    sign_terms(session, other, session.get(Agreement, fee.agreement_id).version, on=date(2026, 1, 5))
    sign_in(http, make.contact(other, "ap@other.test"))
    assert http.get(f"/invoices/{fee.fee_invoice_id}").status_code == 404


# --- duplicates --------------------------------------------------------------------------------------------------

def test_a_held_invoice_shows_the_banner_and_is_listed(admin, session, held):
    original, again = held
    text = page(admin.get(f"/admin/invoices/{again.id}"))
    assert f'Likely duplicate of invoice <a href="/admin/invoices/{original.id}">{original.number}</a>' in text
    assert f'action="/admin/invoices/{again.id}/duplicate/distinct"' in text
    assert f'action="/admin/invoices/{again.id}/duplicate/void"' in text
    assert "Likely duplicate" not in page(admin.get(f"/admin/invoices/{original.id}"))
    assert again.number in page(admin.get("/admin/duplicates"))


def test_sending_a_held_invoice_from_its_page_is_refused_and_the_admin_sees_why(admin, session, held, client):
    original, again = held
    response = admin.post(f"/admin/invoices/{again.id}/send", data={"contact_ids": [client.contacts[0].id]},
                          follow_redirects=True)
    assert f"looks like a duplicate of invoice {original.number}" in page(response)
    assert session.scalar(select(InvoiceDelivery.id).where(InvoiceDelivery.invoice_id == again.id)) is None


def test_confirm_distinct_then_it_can_be_sent(admin, session, held, client):
    _original, again = held
    response = admin.post(f"/admin/invoices/{again.id}/duplicate/distinct", follow_redirects=True)
    assert "confirmed as separate work" in page(response)
    assert flag_status(session, again) == DuplicateStatus.DISTINCT
    admin.post(f"/admin/invoices/{again.id}/send", data={"contact_ids": [client.contacts[0].id]})
    assert session.scalar(select(InvoiceDelivery.id).where(InvoiceDelivery.invoice_id == again.id)) is not None
    again_response = admin.post(f"/admin/invoices/{again.id}/duplicate/void", follow_redirects=True)
    assert "is not held as a likely duplicate" in page(again_response)
    assert session.get(Invoice, again.id).status == OPEN


def test_void_as_duplicate(admin, session, held):
    original, again = held
    response = admin.post(f"/admin/invoices/{again.id}/duplicate/void", follow_redirects=True)
    assert f"voided as a duplicate of {original.number}" in page(response)
    session.expire_all()
    assert (session.get(Invoice, again.id).status, session.get(Invoice, again.id).void_reason) == (
        VOID, f"duplicate of {original.number}")
    assert flag_status(session, again) == DuplicateStatus.DUPLICATE
    assert again.number not in page(admin.get("/admin/duplicates")).split("Recently decided")[0]


# --- access and CSRF ---------------------------------------------------------------------------------------------

def test_staff_only(http, session, make, held, client):
    _original, again = held
    paths = [("get", "/admin/late-fees"), ("get", "/admin/duplicates"),
             ("post", f"/admin/invoices/{again.id}/duplicate/distinct"),
             ("post", f"/admin/invoices/{again.id}/duplicate/void"),
             ("post", f"/admin/invoices/{again.id}/late-fee/waive")]
    for method, path in paths:
        response = getattr(http, method)(path, data={"reason": "x"})
        assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login"), path
    sign_in(http, client.contacts[0])
    for method, path in paths:
        assert getattr(http, method)(path, data={"reason": "x"}).status_code == 403, path
    assert flag_status(session, again) == DuplicateStatus.FLAGGED


class TestWithCsrf:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "WTF_CSRF_ENABLED": True}

    def test_every_form_carries_the_token_and_a_post_without_it_changes_nothing(self, admin, session, fee, held):
        _original, again = held
        for path in (f"/admin/invoices/{fee.fee_invoice_id}", f"/admin/invoices/{again.id}", "/admin/duplicates"):
            text = page(admin.get(path))
            forms = text.count("<form method=\"post\"")
            assert forms and text.count('name="csrf_token"') >= forms, path
        for path in (f"/admin/invoices/{fee.fee_invoice_id}/late-fee/waive",
                     f"/admin/invoices/{again.id}/duplicate/distinct", f"/admin/invoices/{again.id}/duplicate/void"):
            assert admin.post(path, data={"reason": "no token"}).status_code == 400, path
        session.expire_all()
        assert session.get(LateFee, fee.id).waived_at is None
        assert flag_status(session, again) == DuplicateStatus.FLAGGED
        assert session.get(Invoice, again.id).status == OPEN
