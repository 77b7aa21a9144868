"""Saved methods and off-session charges through the real SDK against the fake Stripe server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from portal.domain import declines
from portal.gateways.payments import (
    GatewayRequestError,
    GatewayUnavailable,
    IdempotencyConflict,
    MandateAcceptance,
    SetupResult,
)
from portal.gateways.payments.stripe_gateway import ALLOWED_PAYMENT_METHOD_TYPES, StripeGateway
from tests.fake_stripe import FakeStripe

from .conftest import charge_saved, classify

MakeToken = Callable[..., str]
ACCEPTANCE = MandateAcceptance(
    ip_address="203.0.113.7", user_agent="Mozilla/5.0 (test)", accepted_at=datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
)


@pytest.fixture
def save(gateway: StripeGateway, customer_id: str, make_token: MakeToken) -> Callable[..., SetupResult]:
    def run(method: str = "pm_card_visa", **overrides: object) -> SetupResult:
        arguments: dict[str, object] = {
            "idempotency_key": f"setup-{method}",
            "customer_id": customer_id,
            "mandate": ACCEPTANCE,
            "metadata": {"client_id": "7"},
            **overrides,
        }
        if "confirmation_token" not in arguments:
            arguments["confirmation_token"] = make_token(method)
        return gateway.save_method(**arguments)  # type: ignore[arg-type]

    return run


# --- saving ---------------------------------------------------------------------------------------------------------


def test_saving_a_card_sends_an_endive_setup_intent_and_attaches_the_card(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    result = save("pm_card_visa")

    assert result.status == "succeeded" and result.saved
    assert result.setup_id is not None and result.setup_id.startswith("seti_")
    method = result.method
    assert method is not None and method.method_id == result.payment_method_id
    assert (method.method_type, method.brand, method.last4, method.card_funding) == ("card", "visa", "4242", "credit")
    assert (method.exp_month, method.exp_year, method.customer_id, method.usable) == (12, 2034, customer_id, True)
    assert result.mandate_id is None
    [request] = [r for r in fake_stripe.requests if r.path == "/v1/setup_intents"]
    params = request.params
    assert (params["customer"], params["confirm"], params["usage"]) == (customer_id, "true", "off_session")
    assert params["allowed_payment_method_types"] == list(ALLOWED_PAYMENT_METHOD_TYPES)
    assert "payment_method_types" not in params  # endive refuses it (tests/gateways/test_fake_stripe.py)
    assert params["payment_method_options"] == {"us_bank_account": {"verification_method": "automatic"}}
    assert params["mandate_data"]["customer_acceptance"] == {
        "type": "online",
        "accepted_at": str(int(ACCEPTANCE.accepted_at.timestamp())),
        "online": {"ip_address": "203.0.113.7", "user_agent": "Mozilla/5.0 (test)"},
    }
    assert request.idempotency_key == "setup-pm_card_visa"
    assert fake_stripe.payment_method(method.method_id)["customer"] == customer_id
    assert gateway.saved_method(method.method_id, customer_id=customer_id) == method
    assert gateway.retrieve_setup(result.setup_id) == result


def test_saving_a_bank_account_makes_a_mandate_from_the_signed_acceptance(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    result = save("pm_usBankAccount_success")

    assert result.saved and result.method is not None and result.method.usable
    assert (result.method.method_type, result.method.bank_name, result.method.last4) == (
        "us_bank_account",
        "STRIPE TEST BANK",
        "6789",
    )
    mandate = fake_stripe.mandate_for(result.payment_method_id)
    assert mandate is not None and result.mandate_id == mandate["id"]
    acceptance = mandate["customer_acceptance"]
    assert acceptance["accepted_at"] == int(ACCEPTANCE.accepted_at.timestamp())
    assert acceptance["online"] == {"ip_address": "203.0.113.7", "user_agent": "Mozilla/5.0 (test)"}
    assert (mandate["type"], mandate["status"]) == ("multi_use", "active")


@pytest.mark.parametrize(
    ("method", "failure_code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ],
)
def test_a_dead_card_is_declined_while_being_saved(
    gateway: StripeGateway,
    fake_stripe: FakeStripe,
    customer_id: str,
    save: Callable[..., SetupResult],
    method: str,
    failure_code: str,
    decline_code: str,
) -> None:
    result = save(method)
    replay = save(method, confirmation_token=fake_stripe.requests[-1].params["confirmation_token"])

    assert result.status == "requires_payment_method" and not result.saved
    assert (result.failure_code, result.decline_code) == (failure_code, decline_code)
    assert result.failure_message is not None and "card" in result.failure_message.lower()
    assert result.setup_id is not None
    assert fake_stripe.setup_intent(result.setup_id)["status"] == "requires_payment_method"
    assert fake_stripe.requests[-1].status == 402 and fake_stripe.requests[-1].replayed
    assert replay == result  # the stored decline, not a second setup
    assert result.payment_method_id is not None
    with pytest.raises(GatewayRequestError) as error:
        gateway.saved_method(result.payment_method_id, customer_id=customer_id)
    assert error.value.code == "resource_missing"


def test_saving_a_card_that_needs_3ds_waits_for_the_client(
    gateway: StripeGateway, fake_stripe: FakeStripe, save: Callable[..., SetupResult]
) -> None:
    waiting = save("pm_card_authenticationRequired")
    assert waiting.status == "requires_action" and not waiting.awaiting_microdeposits
    assert waiting.client_secret is not None and waiting.client_secret.startswith(waiting.setup_id)

    fake_stripe.authenticate_setup(waiting.setup_id)

    done = gateway.retrieve_setup(waiting.setup_id)
    assert done.saved and done.client_secret is None and done.method is not None and done.method.usable
    assert done.customer_id == waiting.customer_id is not None


def test_a_failed_3ds_challenge_leaves_the_card_unsaved(
    gateway: StripeGateway, fake_stripe: FakeStripe, save: Callable[..., SetupResult]
) -> None:
    waiting = save("pm_card_authenticationRequired")
    assert waiting.setup_id is not None

    fake_stripe.authenticate_setup(waiting.setup_id, passed=False)

    failed = gateway.retrieve_setup(waiting.setup_id)
    assert failed.status == "requires_payment_method" and not failed.saved and failed.client_secret is None
    assert failed.failure_code == "setup_intent_authentication_failure"
    assert failed.failure_message == "Your bank did not confirm this card: the authentication failed or was cancelled."
    assert failed.customer_id == waiting.customer_id and failed.method is not None and failed.method.customer_id is None


def test_a_used_or_unknown_token_is_a_request_error(
    gateway: StripeGateway, customer_id: str, make_token: MakeToken, save: Callable[..., SetupResult]
) -> None:
    token = make_token("pm_card_visa")
    save(confirmation_token=token)
    with pytest.raises(GatewayRequestError):
        save(confirmation_token=token, idempotency_key="setup-again")
    with pytest.raises(GatewayRequestError) as unknown:
        save(confirmation_token="ctoken_forged", idempotency_key="setup-forged")
    assert unknown.value.code == "resource_missing"


def test_setup_replay_conflict_and_lost_response(
    fake_stripe: FakeStripe, make_token: MakeToken, save: Callable[..., SetupResult]
) -> None:
    token = make_token("pm_card_visa")
    fake_stripe.fail_next(None, after_processing=True)  # saved, but the answer is lost
    with pytest.raises(GatewayUnavailable):
        save(confirmation_token=token)

    retried = save(confirmation_token=token)

    assert retried.saved
    assert fake_stripe.requests[-1].replayed
    assert fake_stripe.count("POST", "/v1/setup_intents", include_replays=True) == 2
    assert fake_stripe.count("POST", "/v1/setup_intents") == 1
    assert len(fake_stripe.ledger.setup_intents) == 1  # one setup, saved once
    with pytest.raises(IdempotencyConflict):
        save(confirmation_token=make_token("pm_card_mastercard"))


# --- microdeposits --------------------------------------------------------------------------------------------------


def test_microdeposits_pending_then_verified_by_amounts(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    pending = save("pm_usBankAccount_success", bank_verification="microdeposits")

    assert pending.status == "requires_action" and pending.awaiting_microdeposits
    assert pending.microdeposit_type == "amounts" and pending.microdeposits_arrive is not None
    assert pending.verification_url is not None and pending.verification_url.startswith(fake_stripe.url)
    assert pending.method is not None and not pending.method.usable and pending.mandate_id is None
    assert fake_stripe.requests[-1].params["payment_method_options"] == {
        "us_bank_account": {"verification_method": "microdeposits"}
    }
    # Pending is not saved: not on the customer, and never charged.
    with pytest.raises(GatewayRequestError):
        gateway.saved_method(pending.payment_method_id, customer_id=customer_id)
    refused = charge_saved(gateway, customer_id, pending.payment_method_id)
    assert (refused.status, refused.gateway_id, refused.failure_code) == ("failed", None, "payment_method_unactivated")
    assert fake_stripe.payment_intent_count == 0

    with pytest.raises(GatewayRequestError) as wrong:
        gateway.verify_microdeposits(pending.setup_id, amounts=(10, 11))
    assert wrong.value.code == "payment_method_microdeposit_verification_amounts_mismatch"

    verified = gateway.verify_microdeposits(pending.setup_id, amounts=(32, 45))

    assert verified.saved and (verified.setup_id, verified.payment_method_id) == (
        pending.setup_id,
        pending.payment_method_id,
    )
    assert verified.method is not None and verified.method.usable and verified.mandate_id is not None
    assert gateway.retrieve_setup(pending.setup_id) == verified
    assert charge_saved(gateway, customer_id, verified.payment_method_id).status == "processing"


def test_microdeposits_by_descriptor_code(
    gateway: StripeGateway, fake_stripe: FakeStripe, save: Callable[..., SetupResult]
) -> None:
    fake_stripe.use_microdeposit_type("descriptor_code")
    pending = save("pm_usBankAccount_success", bank_verification="microdeposits")
    assert pending.microdeposit_type == "descriptor_code"

    verified = gateway.verify_microdeposits(pending.setup_id, descriptor_code="SM11AA")

    assert verified.saved
    [request] = [r for r in fake_stripe.requests if r.path.endswith("/verify_microdeposits")]
    assert request.params == {"descriptor_code": "SM11AA", "expand": ["payment_method"]}


def test_three_wrong_microdeposit_answers_end_the_setup(
    gateway: StripeGateway, save: Callable[..., SetupResult]
) -> None:
    pending = save("pm_usBankAccount_success", bank_verification="microdeposits")
    for _ in range(2):
        with pytest.raises(GatewayRequestError):
            gateway.verify_microdeposits(pending.setup_id, amounts=(1, 2))

    ended = gateway.verify_microdeposits(pending.setup_id, amounts=(1, 2))

    assert ended.status == "requires_payment_method" and not ended.saved
    assert ended.failure_code == "payment_method_microdeposit_verification_attempts_exceeded"
    assert ended.failure_message is not None and "add it again" in ended.failure_message
    with pytest.raises(GatewayRequestError) as late:
        gateway.verify_microdeposits(pending.setup_id, amounts=(32, 45))
    assert late.value.code == "setup_intent_unexpected_state"


# --- charging a saved method off-session ----------------------------------------------------------------------------


def test_off_session_charge_of_a_saved_card(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    saved = save("pm_card_visa")

    result = charge_saved(gateway, customer_id, saved.payment_method_id)
    replay = charge_saved(gateway, customer_id, saved.payment_method_id)

    assert result.status == "succeeded" and replay == result
    assert (result.payment_method_id, result.last4, result.amount_cents) == (saved.payment_method_id, "4242", 25_000)
    posts = [r for r in fake_stripe.requests if r.path == "/v1/payment_intents"]
    assert [(r.idempotency_key, r.replayed) for r in posts] == [("autopay-1", False), ("autopay-1", True)]
    params = posts[0].params
    assert (params["off_session"], params["confirm"], params["customer"], params["payment_method"]) == (
        "true",
        "true",
        customer_id,
        saved.payment_method_id,
    )
    assert fake_stripe.charges_by("invoice_id") == {"42": 1}
    with pytest.raises(IdempotencyConflict):
        charge_saved(gateway, customer_id, saved.payment_method_id, amount_cents=1)


@pytest.mark.parametrize(
    ("method", "failure_code", "decline_code", "kind"),
    [
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds", declines.SOFT),
        ("pm_card_chargeCustomerFail", "card_declined", "generic_decline", declines.SOFT),
    ],
)
def test_a_saved_card_declined_off_session(
    gateway: StripeGateway,
    fake_stripe: FakeStripe,
    customer_id: str,
    save: Callable[..., SetupResult],
    method: str,
    failure_code: str,
    decline_code: str,
    kind: declines.DeclineClass,
) -> None:
    saved = save(method)
    assert saved.saved  # a $0 check at setup cannot see funds; 0341 exists to save and then fail

    result = charge_saved(gateway, customer_id, saved.payment_method_id)

    assert (result.status, result.failure_code, result.decline_code) == ("failed", failure_code, decline_code)
    assert result.gateway_id is not None and classify(result).kind is kind
    assert fake_stripe.requests[-1].status == 402


@pytest.mark.parametrize(
    ("method", "failure_code", "decline_code"),
    [
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ],
)
def test_hard_declines_off_session(
    gateway: StripeGateway, customer_id: str, method: str, failure_code: str, decline_code: str
) -> None:
    result = charge_saved(gateway, customer_id, method)
    assert (result.status, result.failure_code, result.decline_code) == ("failed", failure_code, decline_code)
    assert classify(result).kind is declines.HARD


def test_a_card_that_always_needs_3ds_asks_for_the_client_off_session(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    setup = save("pm_card_authenticationRequired")
    fake_stripe.authenticate_setup(setup.setup_id)

    result = charge_saved(gateway, customer_id, setup.payment_method_id)

    assert (result.status, result.failure_code, result.decline_code) == (
        "failed",
        "authentication_required",
        "authentication_required",
    )
    assert classify(result).kind is declines.AUTHENTICATION_REQUIRED
    assert result.failure_message is not None and "approve" in result.failure_message


@pytest.mark.parametrize(
    ("method", "status", "failure_code", "return_code", "kind"),
    [
        ("pm_usBankAccount_success", "succeeded", None, None, None),
        ("pm_usBankAccount_processing", "succeeded", None, None, None),
        # Stripe names an R01 return and keeps the account usable: the domain reads the name.
        ("pm_usBankAccount_insufficientFunds", "failed", "insufficient_funds", None, declines.SOFT),
        # R02 blocks the account, and the block carries the NACHA code.
        ("pm_usBankAccount_accountClosed", "failed", "account_closed", "R02", declines.HARD),
    ],
)
def test_a_saved_bank_account_debits_off_session_then_settles_or_is_returned(
    gateway: StripeGateway,
    fake_stripe: FakeStripe,
    customer_id: str,
    save: Callable[..., SetupResult],
    method: str,
    status: str,
    failure_code: str | None,
    return_code: str | None,
    kind: declines.DeclineClass | None,
) -> None:
    saved = save(method)
    debit = charge_saved(gateway, customer_id, saved.payment_method_id)
    assert debit.status == "processing" and debit.method_type == "us_bank_account"

    fake_stripe.settle(debit.gateway_id)

    settled = gateway.retrieve(debit.gateway_id)
    assert settled.status == status
    assert (settled.failure_code, settled.decline_code) == (failure_code, return_code)
    if kind is None:
        return
    decline = classify(settled)
    assert decline.kind is kind and decline.code == (return_code or "R01")
    assert fake_stripe.charge(debit.gateway_id)["failure_code"] == failure_code
    details = gateway.saved_method(saved.payment_method_id, customer_id=customer_id)
    assert (details.blocked_code, details.usable) == (return_code, return_code is None)


def test_an_ach_return_arriving_by_webhook_carries_the_code(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    saved = save("pm_usBankAccount_accountClosed")
    debit = charge_saved(gateway, customer_id, saved.payment_method_id)
    fake_stripe.settle(debit.gateway_id)

    event = gateway.parse_webhook(*fake_stripe.payment_intent_event("payment_intent.payment_failed", debit.gateway_id))

    assert event.charge is not None
    assert (event.charge.status, event.charge.failure_code, event.charge.decline_code) == (
        "failed",
        "account_closed",
        "R02",
    )


def test_a_bank_account_without_a_mandate_cannot_be_debited_off_session(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    result = charge_saved(gateway, customer_id, "pm_usBankAccount_success")
    assert (result.status, result.gateway_id, result.failure_code) == ("failed", None, "mandate_required")
    assert fake_stripe.payment_intent_count == 0


# --- whose method is it ---------------------------------------------------------------------------------------------


def test_another_customers_method_is_no_such_method(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    saved = save("pm_card_visa")
    other = gateway.ensure_customer(client_ref="client-2", name="Birch LLP", email=None, existing_id=None)

    with pytest.raises(GatewayRequestError) as lookup:
        gateway.saved_method(saved.payment_method_id, customer_id=other)
    with pytest.raises(GatewayRequestError) as detach:
        gateway.detach_method(saved.payment_method_id, customer_id=other)
    charged = charge_saved(gateway, other, saved.payment_method_id)

    assert lookup.value.code == detach.value.code == "resource_missing"
    assert (charged.status, charged.gateway_id) == ("failed", None)
    assert fake_stripe.payment_intent_count == 0
    assert fake_stripe.payment_method(saved.payment_method_id)["customer"] == customer_id


def test_detaching_removes_the_method_for_good(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    saved = save("pm_usBankAccount_success")

    gateway.detach_method(saved.payment_method_id, customer_id=customer_id)
    gateway.detach_method(saved.payment_method_id, customer_id=customer_id)  # a retried removal is fine

    assert fake_stripe.payment_method(saved.payment_method_id)["customer"] is None
    assert fake_stripe.mandate_for(saved.payment_method_id) is None  # the mandate went with it
    assert fake_stripe.count("POST", f"/v1/payment_methods/{saved.payment_method_id}/detach") == 1
    with pytest.raises(GatewayRequestError):
        gateway.saved_method(saved.payment_method_id, customer_id=customer_id)
    refused = charge_saved(gateway, customer_id, saved.payment_method_id)
    assert (refused.status, refused.gateway_id) == ("failed", None)
    assert fake_stripe.payment_intent_count == 0


def test_unknown_method_and_setup_ids_are_request_errors(gateway: StripeGateway, customer_id: str) -> None:
    with pytest.raises(GatewayRequestError) as method:
        gateway.saved_method("pm_nope", customer_id=customer_id)
    with pytest.raises(GatewayRequestError) as detach:
        gateway.detach_method("pm_nope", customer_id=customer_id)
    with pytest.raises(GatewayRequestError) as setup:
        gateway.retrieve_setup("seti_nope")
    assert method.value.code == detach.value.code == setup.value.code == "resource_missing"


def test_outage_while_reading_a_method_is_unavailable(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, save: Callable[..., SetupResult]
) -> None:
    saved = save("pm_card_visa")
    fake_stripe.fail_next(503)
    with pytest.raises(GatewayUnavailable):
        gateway.saved_method(saved.payment_method_id, customer_id=customer_id)
