"""The built-in sandbox gateway: Stripe's test numbers, a controllable clock, no network."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.gateways.payments import (
    GatewayRequestError,
    IdempotencyConflict,
    InvalidWebhook,
    SandboxGateway,
    sandbox_token,
)

from .conftest import FakeClock


def pay(sandbox: SandboxGateway, token: str, **overrides: object):
    arguments: dict[str, object] = {
        "idempotency_key": "attempt-1",
        "customer_id": "sbx_cus_1",
        "amount_cents": 12_345,
        "currency": "usd",
        "confirmation_token": token,
        "metadata": {"invoice_id": "42"},
        **overrides,
    }
    return sandbox.charge(**arguments)  # type: ignore[arg-type]


def test_sandbox_is_labelled_as_such(sandbox: SandboxGateway) -> None:
    assert sandbox.is_sandbox is True
    assert sandbox.name == "sandbox"
    assert sandbox.publishable_key is None


@pytest.mark.parametrize(
    ("number", "status", "failure_code", "decline_code", "funding"),
    [
        ("4242 4242 4242 4242", "succeeded", None, None, "credit"),
        ("4000-0566-5566-5556", "succeeded", None, None, "debit"),
        ("4000000000000002", "failed", "card_declined", "generic_decline", "credit"),
        ("4000000000009995", "failed", "card_declined", "insufficient_funds", "credit"),
        ("4111111111111111", "failed", "incorrect_number", None, "credit"),
    ],
)
def test_each_test_card_number_has_stripes_outcome(
    sandbox: SandboxGateway,
    number: str,
    status: str,
    failure_code: str | None,
    decline_code: str | None,
    funding: str,
) -> None:
    result = pay(sandbox, sandbox_token("card", number))

    assert result.status == status
    assert (result.failure_code, result.decline_code) == (failure_code, decline_code)
    assert (result.failure_message is None) == (status == "succeeded")
    assert (result.method_type, result.card_funding, result.brand) == ("card", funding, "visa")
    assert result.last4 == number[-4:]
    assert result.gateway_id is not None and result.gateway_id.startswith("sbx_pi_")
    assert (result.amount_cents, result.currency) == (12_345, "usd")
    # Stateless: what retrieve computes from the id alone matches what charge said.
    assert sandbox.retrieve(result.gateway_id) == result


def test_insufficient_funds_message_is_shown_to_the_client(sandbox: SandboxGateway) -> None:
    result = pay(sandbox, sandbox_token("card", "4000000000009995"))
    assert result.failure_message == "Your card has insufficient funds."


@pytest.mark.parametrize(
    ("number", "funding", "credit"),
    [
        ("4242424242424242", None, True),
        ("4000056655665556", None, False),
        ("4242424242424242", "prepaid", False),
    ],
)
def test_preview_tells_debit_from_credit(
    sandbox: SandboxGateway, number: str, funding: str | None, credit: bool
) -> None:
    preview = sandbox.preview_payment_method(sandbox_token("card", number, funding))
    assert preview.method_type == "card"
    assert preview.card_funding == (funding or ("credit" if credit else "debit"))
    assert preview.is_credit_card is credit
    assert (preview.brand, preview.last4) == ("visa", number[-4:])


def test_successful_bank_debit_settles_after_the_delay(sandbox: SandboxGateway, clock: FakeClock) -> None:
    token = sandbox_token("us_bank_account", "000123456789")
    preview = sandbox.preview_payment_method(token)
    result = pay(sandbox, token)

    assert (preview.method_type, preview.card_funding, preview.last4) == ("us_bank_account", None, "6789")
    assert result.status == "processing"
    assert (result.method_type, result.card_funding, result.brand) == ("us_bank_account", None, None)
    clock.advance(59)
    assert sandbox.retrieve(result.gateway_id).status == "processing"
    clock.advance(1)
    settled = sandbox.retrieve(result.gateway_id)
    assert settled.status == "succeeded"
    assert settled.gateway_id == result.gateway_id


def test_failing_bank_debit_fails_after_the_delay(sandbox: SandboxGateway, clock: FakeClock) -> None:
    result = pay(sandbox, sandbox_token("us_bank_account", "000222222227"))
    assert result.status == "processing" and result.failure_code is None

    clock.advance(60)

    failed = sandbox.retrieve(result.gateway_id)
    assert failed.status == "failed"
    assert failed.failure_code == "insufficient_funds"
    assert failed.failure_message is not None and failed.failure_message.startswith("ACH debit failed")


def test_unknown_bank_account_fails_at_once(sandbox: SandboxGateway) -> None:
    result = pay(sandbox, sandbox_token("us_bank_account", "000111111116"))
    assert result.status == "failed"
    assert result.failure_code == "invalid_account_number"


def test_settle_delay_is_configurable_and_measured_from_creation(clock: FakeClock) -> None:
    slow = SandboxGateway(now=clock, ach_settle_seconds=3_600)
    result = pay(slow, sandbox_token("us_bank_account", "000123456789"))
    clock.advance(3_599)
    assert slow.retrieve(result.gateway_id).status == "processing"
    # Another worker process (a fresh instance) reads the same state from the id alone.
    other_process = SandboxGateway(now=clock, ach_settle_seconds=3_600)
    clock.advance(1)
    assert other_process.retrieve(result.gateway_id).status == "succeeded"


def test_same_key_replays_the_same_result_even_later(sandbox: SandboxGateway, clock: FakeClock) -> None:
    token = sandbox_token("us_bank_account", "000123456789")
    first = pay(sandbox, token)
    clock.advance(3_600)
    replay = pay(sandbox, token)
    other = pay(sandbox, token, idempotency_key="attempt-2")

    assert replay == first  # the original answer, as Stripe replays it
    assert other.gateway_id != first.gateway_id


def test_same_key_with_other_parameters_is_a_conflict(sandbox: SandboxGateway) -> None:
    pay(sandbox, sandbox_token("card", "4242424242424242"))
    with pytest.raises(IdempotencyConflict):
        pay(sandbox, sandbox_token("card", "4242424242424242"), amount_cents=1)


def test_saved_method_can_be_charged_off_session(sandbox: SandboxGateway) -> None:
    first = pay(sandbox, sandbox_token("card", "4000056655665556"), save_method=True)
    assert first.payment_method_id is not None

    autopay = pay(
        sandbox,
        None,
        idempotency_key="autopay-1",
        payment_method=first.payment_method_id,
        off_session=True,
    )

    assert autopay.status == "succeeded"
    assert (autopay.card_funding, autopay.payment_method_id) == ("debit", first.payment_method_id)


def test_refund_of_a_settled_payment_succeeds(sandbox: SandboxGateway, clock: FakeClock) -> None:
    paid = pay(sandbox, sandbox_token("us_bank_account", "000123456789"), amount_cents=5_000)
    with pytest.raises(GatewayRequestError):
        sandbox.refund(idempotency_key="refund-1", gateway_id=paid.gateway_id, amount_cents=100)
    clock.advance(60)

    refund = sandbox.refund(idempotency_key="refund-1", gateway_id=paid.gateway_id, amount_cents=1_000)

    assert (refund.status, refund.amount_cents) == ("succeeded", 1_000)
    assert refund.refund_id.startswith("sbx_re_")
    assert sandbox.refund(idempotency_key="refund-1", gateway_id=paid.gateway_id, amount_cents=1_000) == refund


def test_refunds_of_failed_or_too_large_are_refused(sandbox: SandboxGateway) -> None:
    declined = pay(sandbox, sandbox_token("card", "4000000000000002"))
    paid = pay(sandbox, sandbox_token("card", "4242424242424242"), idempotency_key="ok", amount_cents=500)
    with pytest.raises(GatewayRequestError):
        sandbox.refund(idempotency_key="r1", gateway_id=declined.gateway_id, amount_cents=100)
    with pytest.raises(GatewayRequestError) as too_large:
        sandbox.refund(idempotency_key="r2", gateway_id=paid.gateway_id, amount_cents=501)
    assert too_large.value.code == "amount_too_large"


def test_sandbox_charges_cannot_be_canceled(sandbox: SandboxGateway) -> None:
    paid = pay(sandbox, sandbox_token("card", "4242424242424242"))
    with pytest.raises(GatewayRequestError) as error:
        sandbox.cancel(paid.gateway_id)
    assert error.value.code == "payment_intent_unexpected_state"


def test_sandbox_has_no_webhooks(sandbox: SandboxGateway) -> None:
    with pytest.raises(InvalidWebhook):
        sandbox.parse_webhook(b"{}", "t=1,v1=00")


@pytest.mark.parametrize(
    "bad_id",
    [
        "pi_123",
        "sbx_pi_",
        "sbx_pi_ok_credit_visa_4242_usd_100_1700000000",
        "sbx_pi_zzz_credit_visa_4242_usd_1_1_" + "a" * 16,
        "sbx_pi_ok_credit_visa_4242_usd_-100_1700000000_" + "a" * 16,
    ],
)
def test_unknown_ids_and_tokens_are_request_errors(sandbox: SandboxGateway, bad_id: str) -> None:
    with pytest.raises(GatewayRequestError):
        sandbox.retrieve(bad_id)
    with pytest.raises(GatewayRequestError):
        sandbox.preview_payment_method(bad_id)
    with pytest.raises(GatewayRequestError):
        pay(sandbox, bad_id)


@pytest.mark.parametrize(
    ("kind", "number", "funding"),
    [
        ("card", "4242 abcd", None),
        ("card", "42", None),
        ("card", "4242424242424242", "gold"),
        ("us_bank_account", "000123456789", "credit"),
        ("paypal", "4242424242424242", None),
    ],
)
def test_sandbox_token_rejects_input_that_is_not_a_test_number(kind: str, number: str, funding: str | None) -> None:
    with pytest.raises(ValueError):
        sandbox_token(kind, number, funding)


def test_customer_ids_are_deterministic_and_reused(sandbox: SandboxGateway) -> None:
    first = sandbox.ensure_customer(client_ref="client-1", name="A", email=None, existing_id=None)
    assert first.startswith("sbx_cus_")
    assert sandbox.ensure_customer(client_ref="client-1", name="A", email=None, existing_id=None) == first
    assert sandbox.ensure_customer(client_ref="client-2", name="B", email=None, existing_id=first) == first
    assert sandbox.ensure_customer(client_ref="client-2", name="B", email=None, existing_id=None) != first


def test_naive_clock_is_refused() -> None:
    sandbox = SandboxGateway(now=lambda: datetime(2025, 1, 1, 12, 0))  # naive on purpose
    with pytest.raises(ValueError, match="timezone-aware"):
        pay(sandbox, sandbox_token("card", "4242424242424242"))


def test_programming_errors_are_value_errors(sandbox: SandboxGateway) -> None:
    with pytest.raises(ValueError):
        pay(sandbox, sandbox_token("card", "4242424242424242"), amount_cents=-5)
    with pytest.raises(ValueError):
        pay(sandbox, sandbox_token("card", "4242424242424242"), off_session=True)


@given(
    amount=st.integers(min_value=1, max_value=10**12),
    currency=st.sampled_from(["usd", "USD", "cad"]),
    key=st.text(min_size=1, max_size=80),
)
def test_amount_currency_and_key_round_trip_through_the_id(amount: int, currency: str, key: str) -> None:
    clock = FakeClock(datetime.fromisoformat("2025-03-03T09:30:00+00:00"))
    sandbox = SandboxGateway(now=clock)
    result = pay(
        sandbox, sandbox_token("card", "4242424242424242"), idempotency_key=key, amount_cents=amount, currency=currency
    )
    assert result.amount_cents == amount
    assert result.currency == currency.lower()
    assert SandboxGateway(now=clock).retrieve(result.gateway_id) == result
