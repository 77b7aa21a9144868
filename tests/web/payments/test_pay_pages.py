"""Paying from the client portal and from an emailed invoice link, on the SANDBOX gateway (the demo's)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.models import ChargeAttempt, InvoiceLink, Payment, PaymentRequest
from portal.services import delivery, payments
from tests.conftest import sign_in, statements_run
from tests.payments_fixtures import count, invoice_state, read_outbox

from .conftest import bank_form, card_form, location, row, start_payment, text, value_of, words

# --- choosing --------------------------------------------------------------------------------------------------


def test_the_pay_page_lists_open_invoices_with_full_balances(contact_http, shop):
    page = text(contact_http.get("/pay"))

    assert "SANDBOX" in page
    number = shop.first.number
    # the due date and an overdue badge are in the invoice's own cell (the phone layout has no due column)
    assert row(page, "invoice", number) == (f"{number} Due Mar 1, 2026 Overdue Balance $100.00 $100.00 "
                                            f"Amount to pay on {number}")
    assert 'value="100.00"' in page and 'value="250.00"' in page


def test_the_invoice_page_link_preselects_that_invoice(contact_http, shop):
    page = text(contact_http.get(f"/pay?invoice={shop.second.id}"))

    assert f'data-pick="amount-{shop.second.id}" checked>' in page
    assert f'data-pick="amount-{shop.first.id}">' in page
    # an unticked invoice shows no amount, so nothing reads as if it will be paid; ticking it fills in its balance
    assert value_of(page, f"amount-{shop.first.id}") == ""
    assert value_of(page, f"amount-{shop.second.id}") == "250.00"


def test_paying_the_full_balance_by_card_lands_on_a_receipt(contact_http, session, shop, outbox):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    checkout = text(contact_http.get(f"/pay/{public_id}"))
    assert "SANDBOX" in checkout and "Pay $100.00" in checkout

    response = contact_http.post(f"/pay/{public_id}", data=card_form(public_id))

    assert location(response) == f"/pay/{public_id}/status"
    receipt = text(contact_http.get(f"/pay/{public_id}/status"))
    assert "Payment received" in receipt and "Visa credit card ending 4242" in receipt
    assert row(receipt, "line", "total") == "Total $100.00"
    assert invoice_state(session, shop.first) == ("paid", 0)
    attempt = session.scalar(select(ChargeAttempt))
    assert attempt.gateway == "sandbox" and attempt.gateway_id.startswith("sbx_pi_")
    assert attempt.gateway_id in receipt
    assert "4242424242424242" not in str(attempt.method_token)  # only a token, never the card number
    [email] = read_outbox(outbox)
    assert "SANDBOX payment" in email.get_body(("plain",)).get_content()


def test_a_partial_payment_of_several_invoices(contact_http, session, shop):
    public_id = start_payment(contact_http, {shop.first.id: "100.00", shop.second.id: "40.50"})
    contact_http.post(f"/pay/{public_id}", data=card_form(public_id))

    assert invoice_state(session, shop.first) == ("paid", 0)
    assert invoice_state(session, shop.second) == ("open", 20_950)
    assert session.scalar(select(ChargeAttempt.charged_cents)) == 14_050


def test_the_checkout_reads_its_invoices_with_it_however_many(app, contact_http, session, shop, make):
    """A checkout of many invoices names each: its items' invoices are read with the checkout (one statement), not
    one by one on each view of the checkout and its status page."""
    def checkout_of(invoices) -> str:
        return payments.create_request(session, client=shop.client, contact=shop.contact,
                                       amounts={i.id: i.total_cents for i in invoices}).public_id

    more = [make.invoice(shop.client, 1_000 + 100 * k) for k in range(5)]  # different amounts: none held
    few, many = checkout_of([shop.first]), checkout_of([shop.first, shop.second, *more])
    contact_http.get(f"/pay/{few}")  # the process's first page also copies the MSP's settings
    one = statements_run(app, lambda: contact_http.get(f"/pay/{few}"))
    shown = []
    seven = statements_run(app, lambda: shown.append(text(contact_http.get(f"/pay/{many}"))))
    assert len(one) == len(seven), seven
    assert all(i.number in shown[0] for i in (shop.first, shop.second, *more))


@pytest.mark.parametrize(("amount", "message"), [
    ("250.01", "more than is owed"),
    ("5.00", "at least $10.00"),
    ("ten dollars", "Enter an amount such as 125.00."),
    ("0", "Enter an amount above zero"),
])
def test_bad_amounts_are_refused_and_nothing_is_created(contact_http, session, shop, amount, message):
    response = contact_http.post("/pay", data={f"pay-{shop.second.id}": "1", f"amount-{shop.second.id}": amount})

    assert response.status_code == 200
    page = text(response)
    assert message in page
    assert f'value="{amount}"' in page  # what was typed is kept
    assert count(session, PaymentRequest) == 0


def test_nothing_ticked_is_refused(contact_http, session, shop):
    assert "Choose at least one invoice" in text(contact_http.post("/pay", data={}))
    assert count(session, PaymentRequest) == 0


def test_another_clients_invoice_cannot_be_chosen(contact_http, session, shop, make):
    other = make.client("Other Co")
    theirs = make.invoice(other, 5_000)
    response = contact_http.post("/pay", data={f"pay-{theirs.id}": "1", f"amount-{theirs.id}": "50.00"})

    assert theirs.number not in text(contact_http.get("/pay"))
    assert "Choose at least one invoice" in text(response)
    assert count(session, PaymentRequest) == 0


def test_the_pay_page_needs_a_signed_in_contact(http, shop, sandbox_gateway):
    response = http.get("/pay")
    assert response.status_code == 302 and location(response) == "/login"


# --- checkout access ---------------------------------------------------------------------------------------------


def test_a_checkout_is_private_to_its_client(contact_http, http, shop, make):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    other = make.client("Other Co")
    sign_in(http, make.contact(other))

    assert http.get(f"/pay/{public_id}").status_code == 404
    assert http.post(f"/pay/{public_id}", data=card_form(public_id)).status_code == 404
    assert http.get(f"/pay/{public_id}/status").status_code == 404
    assert http.get("/pay/no-such-checkout").status_code == 404


# --- the pay form ------------------------------------------------------------------------------------------------


def test_the_same_form_posted_twice_charges_once(contact_http, session, shop):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    form = card_form(public_id)

    first = contact_http.post(f"/pay/{public_id}", data=form)
    second = contact_http.post(f"/pay/{public_id}", data=form)  # a double click, or the browser retrying

    assert location(first) == location(second) == f"/pay/{public_id}/status"
    assert count(session, ChargeAttempt) == 1
    assert count(session, Payment) == 1
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_a_declined_card_shows_why_and_lets_the_client_try_again(contact_http, session, shop, outbox):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    response = contact_http.post(f"/pay/{public_id}", data=card_form(public_id, "4000000000000002"))

    assert location(response) == f"/pay/{public_id}"  # the same checkout, with the method tried kept
    page = text(contact_http.get(response.headers["Location"]))
    assert "Your card was declined. Please use a different card or contact your bank." in page
    # a next step: another card, the bank account, or a word about a payment plan
    assert "Try another card" in page and "Pay from your bank account (ACH) instead" in page
    assert "payment plan" in page
    # the bank-account link opens the same checkout with that method chosen
    bank = text(contact_http.get(f"/pay/{public_id}?method=us_bank_account"))
    assert re.search(r'<input checked[^>]*value="us_bank_account"', bank)
    assert value_of(page, "attempt") == "2"
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert read_outbox(outbox) == []

    contact_http.post(f"/pay/{public_id}", data=card_form(public_id, attempt=2))
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert [a.status for a in session.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id))] == [
        "failed", "succeeded"]


def test_insufficient_funds_is_told_as_such(contact_http, shop):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    contact_http.post(f"/pay/{public_id}", data=card_form(public_id, "4000000000009995"))
    assert "Your card has insufficient funds." in text(contact_http.get(f"/pay/{public_id}"))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("card_number", "4242", "Enter the card number (12 to 19 digits)."),
    ("card_number", "4242x42424242424", "Enter the card number (12 to 19 digits)."),
    ("card_expiry", "13/30", "Enter the expiry date as MM/YY."),
    ("card_expiry", "02/26", "This card has expired."),
    ("card_cvc", "1", "Enter the 3 or 4 digit security code."),
])
def test_bad_card_details_are_refused_without_charging(contact_http, session, shop, field, value, message):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    response = contact_http.post(f"/pay/{public_id}", data=card_form(public_id, **{field: value}))

    assert response.status_code == 200
    assert message in text(response)
    assert count(session, ChargeAttempt) == 0


def test_bad_bank_details_are_refused(contact_http, session, shop):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    form = bank_form(public_id) | {"routing_number": "12345"}
    assert "Enter the 9-digit routing number." in text(contact_http.post(f"/pay/{public_id}", data=form))
    assert count(session, ChargeAttempt) == 0


def test_a_form_of_another_checkout_or_a_made_up_token_is_refused(contact_http, session, shop):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    other = start_payment(contact_http, {shop.second.id: "250.00"})

    wrong_nonce = contact_http.post(f"/pay/{public_id}", data=card_form(other))
    assert "This payment form is out of date" in text(wrong_nonce)
    made_up = contact_http.post(f"/pay/{public_id}", data=card_form(public_id, confirmation_token="ctoken_123"))
    assert "could not be used" in text(made_up)
    forged = contact_http.post(f"/pay/{public_id}",
                               data=card_form(public_id, confirmation_token="sbx_ctok_ok_credit_visa_42"))
    assert "could not be used" in text(forged)
    assert count(session, ChargeAttempt) == 0


# --- ACH on the sandbox --------------------------------------------------------------------------------------------


def test_a_sandbox_bank_payment_processes_then_settles(contact_http, session, shop, clock, outbox):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    contact_http.post(f"/pay/{public_id}", data=bank_form(public_id))

    page = text(contact_http.get(f"/pay/{public_id}/status"))
    assert "Payment processing" in page and "The invoice stays open until the bank confirms" in page
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert "on its way" in text(contact_http.get("/pay"))  # and it cannot be paid twice meanwhile

    clock.advance(seconds=61)
    page = text(contact_http.get(f"/pay/{public_id}/status"))
    assert "Payment received" in page and "bank account ending 6789" in page
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert len(read_outbox(outbox)) == 1


def test_a_sandbox_bank_payment_that_fails_after_processing(contact_http, session, shop, clock, outbox):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    contact_http.post(f"/pay/{public_id}", data=bank_form(public_id, "000222222227"))
    clock.advance(minutes=2)

    page = text(contact_http.get(f"/pay/{public_id}/status"))

    assert "Payment not completed" in page and "insufficient funds" in page and "Try again" in page
    assert invoice_state(session, shop.first) == ("open", 10_000)
    [notice] = read_outbox(outbox)
    assert "did not go through" in notice["Subject"]


# --- surcharge ---------------------------------------------------------------------------------------------------


@pytest.fixture
def surcharge(session):
    payments.update_payment_settings(session, surcharge_percent=Decimal("3"), blocked_regions="",
                                            partial_minimum_cents=1_000)


def test_the_surcharge_is_disclosed_and_confirmed_before_a_credit_card_pays(contact_http, session, shop, surcharge,
                                                                            outbox):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    assert "Credit cards carry a 3% surcharge ($3.00 on this payment, $103.00 in total)." in words(
        contact_http.get(f"/pay/{public_id}"))

    review = contact_http.post(f"/pay/{public_id}", data=card_form(public_id))

    assert review.status_code == 200
    page = text(review)
    assert "Review your payment" in page
    assert row(page, "line", "surcharge") == "Credit card surcharge (3%) $3.00"
    assert row(page, "line", "total") == "Total charged $103.00"
    assert "4242424242424242" not in page  # the review carries a token, not the card number
    assert count(session, ChargeAttempt) == 0

    confirm = {"nonce": public_id, "attempt": "1", "confirmation_token": "sbx_ctok_ok_credit_visa_4242",
               "accepted_surcharge": "300"}
    assert location(contact_http.post(f"/pay/{public_id}", data=confirm)) == f"/pay/{public_id}/status"
    attempt = session.scalar(select(ChargeAttempt))
    assert (attempt.amount_cents, attempt.surcharge_cents, attempt.charged_cents) == (10_000, 300, 10_300)
    receipt = text(contact_http.get(f"/pay/{public_id}/status"))
    assert row(receipt, "line", "surcharge") == "Credit card surcharge (3%) $3.00"
    assert row(receipt, "line", "total") == "Total charged $103.00"
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_a_debit_card_pays_without_surcharge(contact_http, session, shop, surcharge):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    response = contact_http.post(f"/pay/{public_id}", data=card_form(public_id, "4000056655665556"))

    assert location(response) == f"/pay/{public_id}/status"
    assert session.scalar(select(ChargeAttempt.charged_cents)) == 10_000
    assert 'data-line="surcharge"' not in text(contact_http.get(f"/pay/{public_id}/status"))


def test_a_bank_payment_pays_without_surcharge(contact_http, session, shop, surcharge):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    contact_http.post(f"/pay/{public_id}", data=bank_form(public_id))
    assert session.scalar(select(ChargeAttempt.surcharge_cents)) == 0


def test_no_surcharge_is_disclosed_where_it_is_blocked(contact_http, session, shop):
    payments.update_payment_settings(session, surcharge_percent=Decimal("3"), blocked_regions="CT",
                                            partial_minimum_cents=1_000)
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    assert "surcharge" not in words(contact_http.get(f"/pay/{public_id}")).lower()
    contact_http.post(f"/pay/{public_id}", data=card_form(public_id))
    assert session.scalar(select(ChargeAttempt.charged_cents)) == 10_000


# --- from an emailed invoice link --------------------------------------------------------------------------------


@pytest.fixture
def link_token(session, rt, shop, sandbox_gateway) -> str:
    delivery.send_invoice(session, rt, shop.second, contacts=[shop.contact])
    link = session.scalar(select(InvoiceLink).where(InvoiceLink.invoice_id == shop.second.id))
    return delivery.link_token(rt, link)


def test_paying_from_an_invoice_link_without_signing_in(http, session, shop, link_token):
    page = text(http.get(f"/i/{link_token}/pay"))
    assert shop.second.number in page and shop.first.number not in page  # only the link's own invoice

    response = http.post(f"/i/{link_token}/pay", data={f"pay-{shop.second.id}": "1",
                                                       f"amount-{shop.second.id}": "250.00"})
    public_id = location(response).removeprefix("/pay/")
    paid = http.post(f"/pay/{public_id}", data=card_form(public_id))

    assert location(paid) == f"/pay/{public_id}/status"
    receipt = text(http.get(f"/pay/{public_id}/status"))
    assert "Payment received" in receipt and "Back to the invoice" in receipt
    assert invoice_state(session, shop.second) == ("paid", 0)
    request = session.scalar(select(PaymentRequest))
    assert request.contact_id == shop.contact.id and request.link_id is not None


def test_a_link_pays_only_its_own_invoice(http, session, shop, link_token):
    response = http.post(f"/i/{link_token}/pay", data={f"pay-{shop.first.id}": "1",
                                                       f"amount-{shop.first.id}": "100.00"})
    assert "Choose at least one invoice" in text(response)
    assert count(session, PaymentRequest) == 0


def test_a_revoked_link_can_no_longer_pay(http, session, shop, link_token):
    response = http.post(f"/i/{link_token}/pay", data={f"pay-{shop.second.id}": "1",
                                                       f"amount-{shop.second.id}": "250.00"})
    public_id = location(response).removeprefix("/pay/")
    link = session.scalar(select(InvoiceLink))
    delivery.revoke_link(session, link, actor=None)

    assert http.get(f"/i/{link_token}/pay").status_code == 404
    assert http.get(f"/pay/{public_id}").status_code == 404
    assert http.post(f"/pay/{public_id}", data=card_form(public_id)).status_code == 404
    assert count(session, ChargeAttempt) == 0


def test_a_tampered_link_token_gets_404(http, shop, link_token):
    assert http.get(f"/i/{link_token}x/pay").status_code == 404


def test_the_pay_forms_need_a_csrf_token(app, contact_http, session, shop):
    public_id = start_payment(contact_http, {shop.first.id: "100.00"})
    app.config["WTF_CSRF_ENABLED"] = True

    response = contact_http.post(f"/pay/{public_id}", data=card_form(public_id))

    assert response.status_code == 400
    assert count(session, ChargeAttempt) == 0
