"""The pay pages in Stripe mode: Stripe's Payment Element in the browser, only a ConfirmationToken id reaches us."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.models import ChargeAttempt
from portal.services import payments
from tests.conftest import sign_in
from tests.payments_fixtures import count, invoice_state, stripe_config

from .conftest import card_form, location, row, start_payment, text, value_of


@pytest.fixture
def app_config(app_config, fake_stripe):
    app_config.update(stripe_config(fake_stripe))
    return app_config


@pytest.fixture
def browser(http, shop, stripe_gateway):
    sign_in(http, shop.contact)
    return http


def token_form(public_id: str, token: str, *, attempt: int = 1, **extra) -> dict:
    return {"nonce": public_id, "attempt": str(attempt), "confirmation_token": token, **extra}


def test_the_checkout_loads_the_payment_element_and_no_card_fields(browser, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    response = browser.get(f"/pay/{public_id}")
    page = text(response)

    assert '<script src="https://js.stripe.com/endive/stripe.js"></script>' in page
    assert '/static/js/payment-element.js' in page
    assert f'data-publishable-key="{fake_stripe.publishable_key}"' in page
    assert 'data-amount="10000"' in page and 'data-currency="usd"' in page
    assert f'data-return-url="http://localhost/pay/{public_id}/status"' in page
    assert value_of(page, "card_number") is None and "SANDBOX" not in page
    assert "https://js.stripe.com" in response.headers["Content-Security-Policy"]


def test_a_confirmation_token_pays(browser, session, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    response = browser.post(f"/pay/{public_id}", data=token_form(public_id, fake_stripe.confirmation_token(
        "pm_card_visa")))

    assert location(response) == f"/pay/{public_id}/status"
    attempt = session.scalar(select(ChargeAttempt))
    assert attempt.gateway == "stripe" and fake_stripe.payment_intent(attempt.gateway_id)["status"] == "succeeded"
    assert "Payment received" in text(browser.get(f"/pay/{public_id}/status"))
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_card_numbers_are_never_taken_in_stripe_mode(browser, session, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    response = browser.post(f"/pay/{public_id}", data=card_form(public_id))

    assert "Enter your payment details above." in text(response)
    assert count(session, ChargeAttempt) == 0 and fake_stripe.payment_intent_count == 0


def test_a_sandbox_token_is_refused_in_stripe_mode(browser, session, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    response = browser.post(f"/pay/{public_id}", data=token_form(public_id, "sbx_ctok_ok_credit_visa_4242"))
    assert "could not be used" in text(response)
    assert fake_stripe.payment_intent_count == 0


def test_an_unknown_token_is_refused_before_any_charge(browser, session, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    response = browser.post(f"/pay/{public_id}", data=token_form(public_id, "ctoken_doesnotexist"))
    assert "Those payment details could not be used. Please enter them again." in text(response)
    assert count(session, ChargeAttempt) == 0 and fake_stripe.payment_intent_count == 0


def test_two_posts_of_the_same_token_make_one_payment_intent(browser, session, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    form = token_form(public_id, fake_stripe.confirmation_token("pm_card_visa"))

    browser.post(f"/pay/{public_id}", data=form)
    browser.post(f"/pay/{public_id}", data=form)

    assert fake_stripe.payment_intent_count == 1 and count(session, ChargeAttempt) == 1


def test_the_bank_authentication_step_redirects_and_comes_back(browser, session, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    response = browser.post(f"/pay/{public_id}", data=token_form(
        public_id, fake_stripe.confirmation_token("pm_card_authenticationRequired")))

    attempt = session.scalar(select(ChargeAttempt))
    assert response.status_code == 302
    assert response.headers["Location"] == f"{fake_stripe.url}/fake/3ds/{attempt.gateway_id}"
    assert "Your bank asks you to approve this payment." in text(browser.get(f"/pay/{public_id}/status"))

    fake_stripe.authenticate(attempt.gateway_id)
    page = text(browser.get(f"/pay/{public_id}/status?payment_intent={attempt.gateway_id}&redirect_status=succeeded"))
    assert "Payment received" in page
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_a_credit_card_surcharge_is_reviewed_first(browser, session, shop, fake_stripe):
    payments.update_payment_settings(session, surcharge_percent=Decimal("2.5"), blocked_regions="",
                                            partial_minimum_cents=1_000)
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    token = fake_stripe.confirmation_token("pm_card_visa")

    review = text(browser.post(f"/pay/{public_id}", data=token_form(public_id, token)))
    assert row(review, "line", "surcharge") == "Credit card surcharge (2.5%) $2.50"
    assert value_of(review, "confirmation_token") == token and value_of(review, "accepted_surcharge") == "250"
    assert fake_stripe.payment_intent_count == 0

    browser.post(f"/pay/{public_id}", data=token_form(public_id, token, accepted_surcharge="250"))
    attempt = session.scalar(select(ChargeAttempt))
    assert fake_stripe.payment_intent(attempt.gateway_id)["amount"] == 10_250


def test_a_stripe_outage_at_the_token_preview_charges_nothing(browser, session, shop, fake_stripe):
    public_id = start_payment(browser, {shop.first.id: "100.00"})
    token = fake_stripe.confirmation_token("pm_card_visa")
    fake_stripe.fail_next(500)

    response = browser.post(f"/pay/{public_id}", data=token_form(public_id, token))

    assert "The payment service is not answering. Nothing was charged; please try again." in text(response)
    assert count(session, ChargeAttempt) == 0 and fake_stripe.payment_intent_count == 0
