"""A bank payment in flight (issue 15 point 6) is shown wherever the client or staff see the invoice, and what is
offered to pay (or record) leaves it out, so nobody pays the same invoice twice while the bank transfer clears."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from portal.models import InvoiceLink
from portal.services import delivery
from tests.conftest import sign_in
from tests.payments_fixtures import invoice_state

from .conftest import bank_form, start_payment, value_of, words

IN_FLIGHT = "Bank payment of $100.00 processing since"
BANK_DAYS = "(bank transfers take up to 4 business days)"


def _pay_by_bank(http, invoice_id: int, amount: str) -> None:
    public_id = start_payment(http, {invoice_id: amount})
    http.post(f"/pay/{public_id}", data=bank_form(public_id))


def test_the_invoice_list_and_overview_show_it_and_offer_only_the_rest(contact_http, session, shop, clock):
    _pay_by_bank(contact_http, shop.second.id, "100.00")  # $100 of the $250 invoice, by bank
    assert invoice_state(session, shop.second) == ("open", 25_000)  # not money until it settles
    since = clock.today().strftime("%b %-d, %Y")

    page = words(contact_http.get(f"/invoices/{shop.second.id}"))
    assert f"{IN_FLIGHT} {since} {BANK_DAYS}" in page
    assert "Pay the remaining $150.00" in page
    assert "No payments have been applied to this invoice yet: the payment above is applied once it clears" in page

    listing = words(contact_http.get("/invoices"))
    assert f"Payment of $100.00 processing since {since}" in listing
    overview = words(contact_http.get("/"))
    assert f"Payment of $100.00 processing since {since}" in overview
    assert "of which $100.00 processing" in overview and "Pay the remaining $250.00" in overview  # $350 - $100

    payments_page = words(contact_http.get("/payments"))  # the payment clearing says which invoice it is for
    assert f"{shop.second.number} $100.00 Applied when the payment clears" in payments_page

    pay = contact_http.get(f"/pay?invoice={shop.second.id}").get_data(as_text=True)
    assert value_of(pay, f"amount-{shop.second.id}") == "150.00"  # the amount offered excludes what is on its way


def test_an_invoice_whose_whole_balance_is_on_its_way_offers_no_second_payment(contact_http, session, shop):
    _pay_by_bank(contact_http, shop.first.id, "100.00")

    page = words(contact_http.get(f"/invoices/{shop.first.id}"))
    assert f"{IN_FLIGHT}" in page and BANK_DAYS in page
    assert 'id="pay-online"' not in contact_http.get(f"/invoices/{shop.first.id}").get_data(as_text=True)
    assert "The whole balance is covered by the payment on its way" in page


def test_the_emailed_link_page_shows_it_too(contact_http, app, rt, session, shop):
    _pay_by_bank(contact_http, shop.first.id, "100.00")
    delivery.send_invoice(session, rt, shop.first, contacts=[shop.contact])
    link = session.scalar(select(InvoiceLink).where(InvoiceLink.invoice_id == shop.first.id))
    visitor: FlaskClient = app.test_client()
    token = delivery.link_token(rt, link)

    page = visitor.get(f"/i/{token}")
    assert IN_FLIGHT in words(page) and 'id="pay-online"' not in page.get_data(as_text=True)


def test_staff_see_it_and_are_not_offered_to_record_the_full_balance(contact_http, app, make, session, shop):
    _pay_by_bank(contact_http, shop.first.id, "100.00")
    staff = app.test_client()
    sign_in(staff, make.staff())

    response = staff.get(f"/admin/invoices/{shop.first.id}")
    page = words(response)
    assert IN_FLIGHT in page and "Do not record another payment for it" in page
    assert "Record payment" not in page
