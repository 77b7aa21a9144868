"""The Stripe adapter against the fake Stripe server, through the real SDK over loopback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.gateways.payments import (
    GatewayRequestError,
    GatewayUnavailable,
    IdempotencyConflict,
)
from portal.gateways.payments.stripe_gateway import ALLOWED_PAYMENT_METHOD_TYPES, PINNED_API_VERSION, StripeGateway
from tests.fake_stripe import FakeStripe
from tests.fake_stripe.fixtures import make_stripe_gateway

MakeToken = Callable[..., str]


def charge(gateway: StripeGateway, customer_id: str, **overrides: object):
    arguments: dict[str, object] = {
        "idempotency_key": "attempt-1",
        "customer_id": customer_id,
        "amount_cents": 12_345,
        "currency": "usd",
        "metadata": {"invoice_id": "42"},
        **overrides,
    }
    return gateway.charge(**arguments)  # type: ignore[arg-type]


def test_pinned_api_version_is_the_sdk_version_and_is_sent(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    # A failing first assert means the SDK was upgraded without reviewing the pinned version.
    assert stripe.api_version == PINNED_API_VERSION
    assert {r.stripe_version for r in fake_stripe.requests} == {PINNED_API_VERSION}


def test_charges_limit_methods_the_endive_way(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    # Endive refuses payment_method_types with a 400, which the gateway would turn into a failed charge for every
    # client; the fake refuses it too (tests/gateways/test_fake_stripe.py), so a success here means it was not sent.
    result = charge(gateway, customer_id, payment_method="pm_usBankAccount_success")

    [request] = [r for r in fake_stripe.requests if r.path == "/v1/payment_intents"]
    assert result.status == "processing"
    assert request.params["allowed_payment_method_types"] == list(ALLOWED_PAYMENT_METHOD_TYPES)
    assert "payment_method_types" not in request.params
    assert fake_stripe.payment_intent(result.gateway_id)["payment_method_types"] == ["card", "us_bank_account"]


def test_the_payment_element_offers_the_methods_the_server_allows() -> None:
    script = (Path(__file__).resolve().parents[2] / "static/js/payment-element.js").read_text()
    [listed] = re.findall(r"allowedPaymentMethodTypes: \[([^\]]*)\]", script)
    assert tuple(json.loads(f"[{listed}]")) == ALLOWED_PAYMENT_METHOD_TYPES
    assert "paymentMethodTypes:" not in script.replace("allowedPaymentMethodTypes:", "")  # Stripe.js endive throws


@pytest.mark.parametrize(
    ("method", "funding", "brand", "last4"),
    [
        ("pm_card_visa", "credit", "visa", "4242"),
        ("pm_card_visa_debit", "debit", "visa", "5556"),
        ("pm_card_mastercard_prepaid", "prepaid", "mastercard", "5100"),
    ],
)
def test_card_success_shows_funding_in_preview_and_result(
    gateway: StripeGateway,
    fake_stripe: FakeStripe,
    customer_id: str,
    make_token: MakeToken,
    method: str,
    funding: str,
    brand: str,
    last4: str,
) -> None:
    token = make_token(method)

    preview = gateway.preview_payment_method(token)
    result = charge(gateway, customer_id, confirmation_token=token)

    assert (preview.method_type, preview.card_funding, preview.brand, preview.last4) == (
        "card",
        funding,
        brand,
        last4,
    )
    assert preview.is_credit_card is (funding == "credit")
    assert result.status == "succeeded"
    assert result.is_final
    assert result.gateway_id is not None and result.gateway_id.startswith("pi_")
    assert (result.method_type, result.card_funding, result.brand, result.last4) == ("card", funding, brand, last4)
    assert result.amount_cents == 12_345 and result.currency == "usd"
    assert result.failure_code is None and result.failure_message is None
    intent = fake_stripe.payment_intent(result.gateway_id)
    assert intent["status"] == "succeeded"
    assert intent["amount_received"] == 12_345
    assert intent["customer"] == customer_id
    assert intent["metadata"] == {"invoice_id": "42"}


@pytest.mark.parametrize(
    ("method", "decline_code", "message"),
    [
        ("pm_card_chargeDeclined", "generic_decline", "Your card was declined."),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "Your card has insufficient funds."),
    ],
)
def test_decline_is_a_failed_result_not_an_exception(
    gateway: StripeGateway,
    fake_stripe: FakeStripe,
    customer_id: str,
    make_token: MakeToken,
    method: str,
    decline_code: str,
    message: str,
) -> None:
    result = charge(gateway, customer_id, confirmation_token=make_token(method))

    assert result.status == "failed"
    assert result.failure_code == "card_declined"
    assert result.decline_code == decline_code
    assert result.failure_message is not None and result.failure_message.startswith(message)
    assert result.method_type == "card" and result.last4 is not None
    assert result.gateway_id is not None
    assert fake_stripe.payment_intent(result.gateway_id)["status"] == "requires_payment_method"
    assert fake_stripe.requests[-1].status == 402  # it really went through stripe.CardError


def test_ach_debit_is_processing_until_the_bank_settles(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, make_token: MakeToken
) -> None:
    preview = gateway.preview_payment_method(make_token("pm_usBankAccount_success"))
    result = charge(gateway, customer_id, confirmation_token=preview.token)

    assert preview.method_type == "us_bank_account" and preview.card_funding is None
    assert preview.bank_name == "STRIPE TEST BANK" and not preview.is_credit_card
    assert result.status == "processing" and not result.is_final
    assert result.method_type == "us_bank_account" and result.last4 == "6789"
    assert gateway.retrieve(result.gateway_id).status == "processing"

    fake_stripe.settle(result.gateway_id)

    settled = gateway.retrieve(result.gateway_id)
    assert settled.status == "succeeded"
    assert settled.gateway_id == result.gateway_id
    assert settled.method_type == "us_bank_account"


def test_ach_processing_method_waits_for_an_explicit_settle(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    result = charge(gateway, customer_id, payment_method="pm_usBankAccount_processing")
    assert gateway.retrieve(result.gateway_id).status == "processing"
    fake_stripe.settle(result.gateway_id)
    assert gateway.retrieve(result.gateway_id).status == "succeeded"


def test_ach_debit_failure_comes_back_as_failed_with_codes(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, make_token: MakeToken
) -> None:
    result = charge(gateway, customer_id, confirmation_token=make_token("pm_usBankAccount_insufficientFunds"))
    assert result.status == "processing"

    fake_stripe.fail(result.gateway_id)

    failed = gateway.retrieve(result.gateway_id)
    assert failed.status == "failed"
    assert failed.failure_code == "insufficient_funds"
    assert failed.failure_message == "ACH debit failed: the bank account has insufficient funds."
    assert failed.method_type == "us_bank_account"


def test_replaying_an_idempotency_key_returns_the_same_intent_and_creates_one(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    first = charge(gateway, customer_id, payment_method="pm_card_visa")
    second = charge(gateway, customer_id, payment_method="pm_card_visa")

    assert second == first
    assert fake_stripe.payment_intent_count == 1
    posts = [r for r in fake_stripe.requests if r.path == "/v1/payment_intents"]
    assert [(r.idempotency_key, r.replayed) for r in posts] == [("attempt-1", False), ("attempt-1", True)]


def test_replaying_a_declined_key_replays_the_decline(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    first = charge(gateway, customer_id, payment_method="pm_card_chargeDeclined")
    second = charge(gateway, customer_id, payment_method="pm_card_chargeDeclined")
    assert first.status == second.status == "failed"
    assert first.gateway_id == second.gateway_id
    assert fake_stripe.payment_intent_count == 1


def test_reusing_a_key_with_other_parameters_is_a_conflict_not_a_failure(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    charge(gateway, customer_id, payment_method="pm_card_visa")
    with pytest.raises(IdempotencyConflict):
        charge(gateway, customer_id, payment_method="pm_card_visa", amount_cents=99_999)
    assert fake_stripe.payment_intent_count == 1


@pytest.mark.parametrize("status", [500, 503, None], ids=["500", "503", "connection-dropped"])
def test_outage_raises_gateway_unavailable_and_the_key_still_works_after(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, status: int | None
) -> None:
    fake_stripe.fail_next(status)
    with pytest.raises(GatewayUnavailable):
        charge(gateway, customer_id, payment_method="pm_card_visa")
    assert fake_stripe.payment_intent_count == 0

    assert charge(gateway, customer_id, payment_method="pm_card_visa").status == "succeeded"
    assert fake_stripe.payment_intent_count == 1


def test_lost_response_then_retry_with_same_key_never_charges_twice(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    # Stripe charged, but the answer never arrived: the caller only knows the outcome is unknown.
    fake_stripe.fail_next(None, after_processing=True)
    with pytest.raises(GatewayUnavailable):
        charge(gateway, customer_id, payment_method="pm_card_visa")
    assert fake_stripe.payment_intent_count == 1

    retried = charge(gateway, customer_id, payment_method="pm_card_visa")

    assert retried.status == "succeeded"
    assert fake_stripe.payment_intent_count == 1
    assert fake_stripe.requests[-1].replayed


def test_sdk_retries_reuse_our_idempotency_key(fake_stripe: FakeStripe) -> None:
    gateway = make_stripe_gateway(fake_stripe, max_network_retries=1)
    try:
        customer = gateway.ensure_customer(client_ref="c", name="C", email=None, existing_id=None)
        fake_stripe.fail_next(500)
        result = charge(gateway, customer, payment_method="pm_card_visa")
    finally:
        gateway.close()
    assert result.status == "succeeded"
    posts = [r for r in fake_stripe.requests if r.path == "/v1/payment_intents"]
    assert [(r.status, r.idempotency_key) for r in posts] == [(500, "attempt-1"), (200, "attempt-1")]


def test_wrong_secret_key_is_unavailable_not_a_decline(fake_stripe: FakeStripe) -> None:
    gateway = make_stripe_gateway(fake_stripe, secret_key="sk_test_wrong_key_123")
    try:
        with pytest.raises(GatewayUnavailable, match="AuthenticationError"):
            charge(gateway, "cus_x", payment_method="pm_card_visa")
    finally:
        gateway.close()
    assert fake_stripe.requests[-1].status == 401


def test_amount_below_stripe_minimum_fails_without_an_intent(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    result = charge(gateway, customer_id, payment_method="pm_card_visa", amount_cents=30)
    assert result.status == "failed"
    assert result.failure_code == "amount_too_small"
    assert result.gateway_id is None
    assert fake_stripe.payment_intent_count == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount_cents": 0},
        {"amount_cents": 10.5},
        {"amount_cents": True},
        {"currency": "dollars"},
        {"confirmation_token": "ctoken_x", "payment_method": "pm_card_visa"},
        {},
        {"confirmation_token": "ctoken_x", "off_session": True},
        {"payment_method": "pm_card_visa", "off_session": True, "save_method": True},
    ],
)
def test_programming_errors_are_rejected_before_any_request(
    gateway: StripeGateway, fake_stripe: FakeStripe, overrides: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        charge(gateway, "cus_x", **overrides)
    assert fake_stripe.requests == []


def test_saved_method_is_charged_off_session(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, make_token: MakeToken
) -> None:
    token = make_token("pm_card_visa", setup_future_usage="off_session")
    first = charge(gateway, customer_id, confirmation_token=token, save_method=True)
    assert first.payment_method_id is not None

    autopay = charge(
        gateway, customer_id, idempotency_key="autopay-1", payment_method=first.payment_method_id, off_session=True
    )

    assert autopay.status == "succeeded"
    assert autopay.payment_method_id == first.payment_method_id
    assert fake_stripe.payment_intent(autopay.gateway_id)["payment_method"] == first.payment_method_id


def test_save_method_must_match_how_the_payment_element_was_set_up(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, make_token: MakeToken
) -> None:
    # The Payment Element's setupFutureUsage and our save_method must agree, or Stripe refuses.
    result = charge(gateway, customer_id, confirmation_token=make_token("pm_card_visa"), save_method=True)
    assert result.status == "failed"
    assert fake_stripe.payment_intent_count == 0


def test_card_needing_authentication_on_session_requires_action(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, make_token: MakeToken
) -> None:
    result = charge(
        gateway,
        customer_id,
        confirmation_token=make_token("pm_card_authenticationRequired"),
        return_url="https://portal.test/pay/return",
    )
    assert result.status == "requires_action"
    assert result.next_action_url is not None and result.next_action_url.startswith(fake_stripe.url)
    assert result.client_secret is not None and result.client_secret.startswith(result.gateway_id)

    fake_stripe.authenticate(result.gateway_id)
    assert gateway.retrieve(result.gateway_id).status == "succeeded"


def test_abandoned_authentication_can_be_canceled_but_a_paid_charge_cannot(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, make_token: MakeToken
) -> None:
    waiting = charge(gateway, customer_id, confirmation_token=make_token("pm_card_authenticationRequired"))
    assert waiting.status == "requires_action"

    canceled = gateway.cancel(waiting.gateway_id)

    assert (canceled.status, canceled.gateway_id) == ("canceled", waiting.gateway_id)
    assert canceled.is_final and canceled.failure_message is None
    assert gateway.retrieve(waiting.gateway_id).status == "canceled"
    paid = charge(gateway, customer_id, idempotency_key="attempt-2", payment_method="pm_card_visa")
    with pytest.raises(GatewayRequestError) as error:
        gateway.cancel(paid.gateway_id)
    assert error.value.code == "payment_intent_unexpected_state"
    assert fake_stripe.payment_intent(paid.gateway_id)["status"] == "succeeded"


def test_card_needing_authentication_off_session_fails(gateway: StripeGateway, customer_id: str) -> None:
    result = charge(gateway, customer_id, payment_method="pm_card_authenticationRequired", off_session=True)
    assert result.status == "failed"
    assert result.failure_code == "authentication_required"
    assert result.failure_message is not None and "approve" in result.failure_message


def test_retrieve_and_preview_of_unknown_ids_are_request_errors(gateway: StripeGateway) -> None:
    with pytest.raises(GatewayRequestError) as retrieve_error:
        gateway.retrieve("pi_does_not_exist")
    with pytest.raises(GatewayRequestError) as preview_error:
        gateway.preview_payment_method("ctoken_does_not_exist")
    assert retrieve_error.value.code == preview_error.value.code == "resource_missing"


def test_customer_is_created_once_and_reused(gateway: StripeGateway, fake_stripe: FakeStripe) -> None:
    created = gateway.ensure_customer(client_ref="client-7", name="Birch LLP", email=None, existing_id=None)
    # A second process racing for the same client sends the same key and gets the same customer.
    raced = gateway.ensure_customer(client_ref="client-7", name="Birch LLP", email=None, existing_id=None)
    reused = gateway.ensure_customer(client_ref="client-7", name="Birch LLP", email=None, existing_id=created)

    assert raced == reused == created
    assert fake_stripe.count("POST", "/v1/customers") == 1
    assert fake_stripe.customer(created)["metadata"] == {"portal_client_ref": "client-7"}


def test_deleted_customer_is_replaced(gateway: StripeGateway, fake_stripe: FakeStripe) -> None:
    old = gateway.ensure_customer(client_ref="client-8", name="Cedar", email="a@cedar.test", existing_id=None)
    fake_stripe.delete_customer(old)

    new = gateway.ensure_customer(client_ref="client-8", name="Cedar", email="a@cedar.test", existing_id=old)

    assert new != old
    assert fake_stripe.customer(new)["email"] == "a@cedar.test"


def test_unknown_existing_customer_is_replaced(gateway: StripeGateway, fake_stripe: FakeStripe) -> None:
    new = gateway.ensure_customer(client_ref="client-9", name="Dune", email=None, existing_id="cus_gone")
    assert new != "cus_gone"
    assert fake_stripe.customer(new)["name"] == "Dune"


def test_partial_then_full_refund(gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str) -> None:
    paid = charge(gateway, customer_id, payment_method="pm_card_visa", amount_cents=5_000)

    partial = gateway.refund(idempotency_key="refund-1", gateway_id=paid.gateway_id, amount_cents=1_250)
    replayed = gateway.refund(idempotency_key="refund-1", gateway_id=paid.gateway_id, amount_cents=1_250)
    rest = gateway.refund(idempotency_key="refund-2", gateway_id=paid.gateway_id, amount_cents=3_750)

    assert partial.status == rest.status == "succeeded"
    assert partial.amount_cents == 1_250 and rest.amount_cents == 3_750
    assert replayed == partial
    assert partial.refund_id.startswith("re_") and partial.refund_id != rest.refund_id
    charge_object = fake_stripe.charge(paid.gateway_id)
    assert charge_object["amount_refunded"] == 5_000 and charge_object["refunded"] is True

    with pytest.raises(GatewayRequestError) as again:
        gateway.refund(idempotency_key="refund-3", gateway_id=paid.gateway_id, amount_cents=1)
    assert again.value.code == "charge_already_refunded"


def test_refund_larger_than_the_payment_is_refused(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    paid = charge(gateway, customer_id, payment_method="pm_card_visa", amount_cents=5_000)
    with pytest.raises(GatewayRequestError) as error:
        gateway.refund(idempotency_key="refund-1", gateway_id=paid.gateway_id, amount_cents=5_001)
    assert error.value.code == "amount_too_large"
    assert fake_stripe.charge(paid.gateway_id)["amount_refunded"] == 0


def test_refund_of_a_processing_bank_debit_is_refused(gateway: StripeGateway, customer_id: str) -> None:
    pending = charge(gateway, customer_id, payment_method="pm_usBankAccount_success")
    with pytest.raises(GatewayRequestError):
        gateway.refund(idempotency_key="refund-1", gateway_id=pending.gateway_id, amount_cents=100)


@settings(max_examples=25, deadline=None)
@given(amount=st.integers(min_value=50, max_value=99_999_999))
def test_amounts_round_trip_exactly(fake_stripe_server: FakeStripe, amount: int) -> None:
    gateway = make_stripe_gateway(fake_stripe_server)
    try:
        customer = gateway.ensure_customer(client_ref="prop", name="Prop", email=None, existing_id=None)
        result = charge(
            gateway, customer, idempotency_key=f"roundtrip-{amount}", payment_method="pm_card_visa", amount_cents=amount
        )
    finally:
        gateway.close()
    assert result.amount_cents == amount
    assert fake_stripe_server.payment_intent(result.gateway_id)["amount"] == amount


def test_importing_the_package_does_not_load_the_stripe_sdk() -> None:
    # The services layer imports portal.gateways.payments; only the factory's Stripe branch may load
    # the SDK. A subprocess gives a clean sys.modules.
    code = "import sys, portal.gateways.payments; assert 'stripe' not in sys.modules, 'stripe loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
