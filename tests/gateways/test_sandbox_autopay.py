"""The sandbox's saved methods and off-session charges: Stripe's test ids and numbers, stateless ids, no network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal.domain import declines
from portal.gateways.payments import (
    GatewayRequestError,
    IdempotencyConflict,
    MandateAcceptance,
    SandboxGateway,
    SetupResult,
    sandbox_token,
)

from .conftest import FakeClock, charge_saved, classify

CUSTOMER = "sbx_cus_0123456789abcdef"
OTHER_CUSTOMER = "sbx_cus_fedcba9876543210"
ACCEPTANCE = MandateAcceptance(
    ip_address="203.0.113.7", user_agent="Mozilla/5.0 (test)", accepted_at=datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
)


def save(sandbox: SandboxGateway, token: str, **overrides: object) -> SetupResult:
    arguments: dict[str, object] = {
        "idempotency_key": "setup-1",
        "customer_id": CUSTOMER,
        "confirmation_token": token,
        "mandate": ACCEPTANCE,
        "metadata": {"client_id": "7"},
        **overrides,
    }
    return sandbox.save_method(**arguments)  # type: ignore[arg-type]


def save_passing_3ds(sandbox: SandboxGateway, token: str) -> SetupResult:
    """Save, passing the sandbox's 3-D Secure stand-in if the card asks for it."""
    result = save(sandbox, token)
    if result.status == "requires_action" and not result.awaiting_microdeposits and result.setup_id:
        result = sandbox.authenticate_setup(result.setup_id, passed=True)
    return result


def test_a_saved_card_shows_its_details_and_belongs_to_its_customer(sandbox: SandboxGateway) -> None:
    result = save(sandbox, sandbox_token("card", "5555 5555 5555 4444", exp_month=4, exp_year=2027))

    assert result.status == "succeeded" and result.saved and not result.awaiting_microdeposits
    assert result.setup_id is not None and result.setup_id.startswith("sbx_seti_")
    assert result.mandate_id is None  # cards carry no debit mandate
    method = result.method
    assert method is not None and method.method_id == result.payment_method_id
    assert (method.method_type, method.brand, method.last4, method.card_funding) == (
        "card",
        "mastercard",
        "4444",
        "credit",
    )
    assert (method.exp_month, method.exp_year, method.customer_id, method.usable) == (4, 2027, CUSTOMER, True)
    assert sandbox.saved_method(method.method_id, customer_id=CUSTOMER) == method
    # Another worker process reads the same from the ids alone.
    other_process = SandboxGateway(now=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    assert other_process.retrieve_setup(result.setup_id) == result


def test_stripe_test_ids_work_as_tokens_and_cards_default_to_a_far_expiry(sandbox: SandboxGateway) -> None:
    result = save(sandbox, "pm_card_visa")
    assert result.method is not None
    assert (result.method.brand, result.method.last4, result.method.exp_month, result.method.exp_year) == (
        "visa",
        "4242",
        12,
        2034,
    )


@pytest.mark.parametrize(
    ("token", "failure_code", "decline_code", "kind"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline", declines.SOFT),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card", declines.HARD),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card", declines.HARD),
    ],
)
def test_a_dead_card_fails_while_being_saved(
    sandbox: SandboxGateway, token: str, failure_code: str, decline_code: str, kind: declines.DeclineClass
) -> None:
    result = save(sandbox, token)

    assert result.status == "requires_payment_method" and not result.saved
    assert (result.failure_code, result.decline_code) == (failure_code, decline_code)
    assert result.failure_message is not None
    assert declines.classify(method_type="card", failure_code=failure_code, decline_code=decline_code).kind is kind
    assert result.payment_method_id is not None
    with pytest.raises(GatewayRequestError):
        sandbox.saved_method(result.payment_method_id, customer_id=CUSTOMER)


@pytest.mark.parametrize(
    ("token", "status", "failure_code", "decline_code", "kind"),
    [
        ("pm_card_visa", "succeeded", None, None, None),
        ("pm_card_chargeDeclinedInsufficientFunds", "failed", "card_declined", "insufficient_funds", declines.SOFT),
        ("pm_card_chargeCustomerFail", "failed", "card_declined", "generic_decline", declines.SOFT),
        (
            "pm_card_authenticationRequired",
            "failed",
            "authentication_required",
            "authentication_required",
            declines.AUTHENTICATION_REQUIRED,
        ),
    ],
)
def test_saved_cards_charged_off_session(
    sandbox: SandboxGateway,
    token: str,
    status: str,
    failure_code: str | None,
    decline_code: str | None,
    kind: declines.DeclineClass | None,
) -> None:
    saved = save_passing_3ds(sandbox, token)
    assert saved.saved and saved.payment_method_id is not None

    result = charge_saved(sandbox, CUSTOMER, saved.payment_method_id)

    assert result.status == status
    assert (result.failure_code, result.decline_code) == (failure_code, decline_code)
    assert result.payment_method_id == saved.payment_method_id
    assert (result.amount_cents, result.last4) == (25_000, saved.method.last4 if saved.method else None)
    assert sandbox.retrieve(result.gateway_id) == result
    if kind is not None:
        assert classify(result).kind is kind


def test_a_card_needing_authentication_passes_with_the_client_present(sandbox: SandboxGateway) -> None:
    saved = save_passing_3ds(sandbox, "pm_card_authenticationRequired")
    on_session = sandbox.charge(
        idempotency_key="pay-1",
        customer_id=CUSTOMER,
        amount_cents=1_000,
        currency="usd",
        payment_method=saved.payment_method_id,
        metadata={},
    )
    assert on_session.status == "succeeded"
    assert on_session.payment_method_id == saved.payment_method_id


@pytest.mark.parametrize(
    ("method", "failure_code", "decline_code"),
    [
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ],
)
def test_stripe_test_ids_charged_directly_off_session_give_hard_declines(
    sandbox: SandboxGateway, method: str, failure_code: str, decline_code: str
) -> None:
    result = charge_saved(sandbox, CUSTOMER, method)
    assert (result.status, result.failure_code, result.decline_code) == ("failed", failure_code, decline_code)
    assert classify(result).kind is declines.HARD


@pytest.mark.parametrize(
    ("token", "status", "failure_code", "return_code", "kind"),
    [
        ("pm_usBankAccount_success", "succeeded", None, None, None),
        ("pm_usBankAccount_processing", "succeeded", None, None, None),
        ("pm_usBankAccount_insufficientFunds", "failed", "insufficient_funds", "R01", declines.SOFT),
        ("pm_usBankAccount_accountClosed", "failed", "account_closed", "R02", declines.HARD),
    ],
)
def test_saved_bank_accounts_debit_off_session_then_settle_or_return(
    sandbox: SandboxGateway,
    clock: FakeClock,
    token: str,
    status: str,
    failure_code: str | None,
    return_code: str | None,
    kind: declines.DeclineClass | None,
) -> None:
    saved = save(sandbox, token)
    assert saved.saved and saved.mandate_id is not None and saved.mandate_id.startswith("sbx_mandate_")
    assert saved.method is not None and saved.method.bank_name == "SANDBOX TEST BANK" and saved.method.usable

    debit = charge_saved(sandbox, CUSTOMER, saved.payment_method_id)
    assert debit.status == "processing" and debit.failure_code is None

    clock.advance(60)
    settled = sandbox.retrieve(debit.gateway_id)

    assert settled.status == status
    assert (settled.failure_code, settled.decline_code) == (failure_code, return_code)
    assert settled.payment_method_id == saved.payment_method_id
    if kind is not None:
        decline = classify(settled)
        assert (decline.kind, decline.code) == (kind, return_code)


def test_microdeposits_pending_then_verified(sandbox: SandboxGateway, clock: FakeClock) -> None:
    pending = save(sandbox, sandbox_token("us_bank_account", "000123456789"), bank_verification="microdeposits")

    assert pending.status == "requires_action" and pending.awaiting_microdeposits and not pending.saved
    assert pending.microdeposit_type == "amounts" and pending.microdeposits_arrive is not None
    assert pending.method is not None and not pending.method.usable and pending.mandate_id is None
    assert pending.payment_method_id is not None and pending.setup_id is not None
    # Pending: not on the customer, and never charged.
    with pytest.raises(GatewayRequestError) as not_yet:
        sandbox.saved_method(pending.payment_method_id, customer_id=CUSTOMER)
    assert not_yet.value.code == "resource_missing"
    refused = charge_saved(sandbox, CUSTOMER, pending.payment_method_id)
    assert (refused.status, refused.gateway_id, refused.failure_code) == ("failed", None, "payment_method_unactivated")

    with pytest.raises(GatewayRequestError) as wrong:
        sandbox.verify_microdeposits(pending.setup_id, amounts=(10, 11))
    assert wrong.value.code == "payment_method_microdeposit_verification_amounts_mismatch"
    with pytest.raises(GatewayRequestError):
        sandbox.verify_microdeposits(pending.setup_id, descriptor_code="SM11AA")  # this one asked for amounts

    verified = sandbox.verify_microdeposits(pending.setup_id, amounts=(45, 32))

    assert verified.status == "succeeded" and verified.mandate_id is not None
    assert verified.method is not None and verified.method.usable
    assert verified.payment_method_id != pending.payment_method_id  # the stateless sandbox's new ids
    assert sandbox.retrieve_setup(verified.setup_id) == verified
    assert sandbox.saved_method(verified.payment_method_id, customer_id=CUSTOMER) == verified.method
    assert charge_saved(sandbox, CUSTOMER, verified.payment_method_id).status == "processing"
    with pytest.raises(GatewayRequestError) as again:
        sandbox.verify_microdeposits(verified.setup_id, amounts=(32, 45))
    assert again.value.code == "setup_intent_unexpected_state"


def test_microdeposits_by_descriptor_code(clock: FakeClock) -> None:
    sandbox = SandboxGateway(now=clock, microdeposit_type="descriptor_code")
    pending = save(sandbox, "pm_usBankAccount_success", bank_verification="microdeposits")
    assert pending.microdeposit_type == "descriptor_code"
    with pytest.raises(GatewayRequestError):
        sandbox.verify_microdeposits(pending.setup_id, descriptor_code="SM99ZZ")

    verified = sandbox.verify_microdeposits(pending.setup_id, descriptor_code="sm11aa")

    assert verified.saved


def test_instant_verification_saves_a_bank_account_at_once(sandbox: SandboxGateway) -> None:
    assert save(sandbox, "pm_usBankAccount_success", bank_verification="instant").saved


def test_another_customers_method_is_refused_everywhere(sandbox: SandboxGateway) -> None:
    saved = save(sandbox, "pm_card_visa")
    method_id = saved.payment_method_id

    with pytest.raises(GatewayRequestError) as lookup:
        sandbox.saved_method(method_id, customer_id=OTHER_CUSTOMER)
    with pytest.raises(GatewayRequestError) as detach:
        sandbox.detach_method(method_id, customer_id=OTHER_CUSTOMER)
    charged = charge_saved(sandbox, OTHER_CUSTOMER, method_id)

    assert lookup.value.code == detach.value.code == "resource_missing"
    assert (charged.status, charged.gateway_id, charged.failure_code) == ("failed", None, "resource_missing")
    sandbox.detach_method(method_id, customer_id=CUSTOMER)  # its owner may remove it


@pytest.mark.parametrize(
    "forged",
    [
        "sbx_pm_ok_credit_visa_4242_122034_v_" + "0" * 16,  # a made-up owner
        "sbx_pm_ok_credit_visa_4242_132034_v_" + "0" * 16,  # month 13
        "sbx_pm_ok_credit_visa_4242_122034_p_" + "0" * 16,  # cards are never pending
        "sbx_pm_achok_none_bank_6789_122034_v_" + "0" * 16,  # bank accounts have no expiry
    ],
)
def test_forged_method_ids_are_refused(sandbox: SandboxGateway, forged: str) -> None:
    with pytest.raises(GatewayRequestError):
        sandbox.saved_method(forged, customer_id=CUSTOMER)


def test_a_setup_id_naming_another_customer_is_refused(sandbox: SandboxGateway) -> None:
    setup_id = save(sandbox, "pm_card_visa").setup_id
    assert setup_id is not None
    with pytest.raises(GatewayRequestError):
        sandbox.retrieve_setup(setup_id.replace(CUSTOMER, OTHER_CUSTOMER))


def test_a_method_saved_during_a_payment_belongs_to_the_payer(sandbox: SandboxGateway) -> None:
    paid = sandbox.charge(
        idempotency_key="pay-1",
        customer_id=CUSTOMER,
        amount_cents=1_000,
        currency="usd",
        confirmation_token=sandbox_token("card", "4000056655665556"),
        metadata={},
        save_method=True,
    )
    assert paid.payment_method_id is not None
    assert sandbox.retrieve(paid.gateway_id) == paid
    details = sandbox.saved_method(paid.payment_method_id, customer_id=CUSTOMER)
    assert (details.card_funding, details.last4) == ("debit", "5556")
    with pytest.raises(GatewayRequestError):
        sandbox.saved_method(paid.payment_method_id, customer_id=OTHER_CUSTOMER)


def test_setup_replay_and_conflict(sandbox: SandboxGateway, clock: FakeClock) -> None:
    first = save(sandbox, "pm_card_visa")
    clock.advance(600)
    assert save(sandbox, "pm_card_visa") == first
    with pytest.raises(IdempotencyConflict):
        save(sandbox, "pm_card_mastercard")
    # A setup key and a charge key live apart: the same string may name one of each.
    assert charge_saved(sandbox, CUSTOMER, first.payment_method_id, idempotency_key="setup-1").status == "succeeded"


def test_off_session_charge_replay_and_conflict(sandbox: SandboxGateway) -> None:
    saved = save(sandbox, "pm_card_visa")
    first = charge_saved(sandbox, CUSTOMER, saved.payment_method_id)
    assert charge_saved(sandbox, CUSTOMER, saved.payment_method_id) == first
    with pytest.raises(IdempotencyConflict):
        charge_saved(sandbox, CUSTOMER, saved.payment_method_id, amount_cents=1)


@pytest.mark.parametrize(
    "arguments",
    [
        {"amounts": None, "descriptor_code": None},
        {"amounts": (32, 45), "descriptor_code": "SM11AA"},
        {"amounts": (32,)},
        {"amounts": (0, 45)},
        {"amounts": (32, 100)},
        {"amounts": (32, True)},
        {"descriptor_code": "SM11"},
        {"descriptor_code": "SM-1AA"},
    ],
)
def test_microdeposit_values_that_cannot_be_right_are_value_errors(
    sandbox: SandboxGateway, arguments: dict[str, object]
) -> None:
    pending = save(sandbox, "pm_usBankAccount_success", bank_verification="microdeposits")
    with pytest.raises(ValueError):
        sandbox.verify_microdeposits(pending.setup_id, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"bank_verification": "sometimes"},
        {"confirmation_token": ""},
        {"idempotency_key": ""},
        {"mandate": None},
    ],
)
def test_setup_programming_errors_are_value_errors(sandbox: SandboxGateway, overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        save(sandbox, "pm_card_visa", **overrides)


def test_mandate_acceptance_needs_who_and_an_aware_time() -> None:
    with pytest.raises(ValueError):
        MandateAcceptance(ip_address=" ", user_agent="x", accepted_at=datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError):
        MandateAcceptance(ip_address="203.0.113.7", user_agent="x", accepted_at=datetime(2025, 1, 1))


def test_sandbox_token_expiry_is_checked() -> None:
    with pytest.raises(ValueError):
        sandbox_token("card", "4242424242424242", exp_month=13, exp_year=2030)
    with pytest.raises(ValueError):
        sandbox_token("card", "4242424242424242", exp_month=1)
    with pytest.raises(ValueError):
        sandbox_token("us_bank_account", "000123456789", exp_month=1, exp_year=2030)


def test_saving_a_card_that_needs_3ds_waits_for_the_stand_in_challenge(sandbox: SandboxGateway) -> None:
    waiting = save(sandbox, sandbox_token("card", "4000 0027 6000 3184"))
    assert waiting.setup_id is not None and waiting.customer_id == CUSTOMER
    assert waiting.status == "requires_action" and not waiting.awaiting_microdeposits and not waiting.saved
    # Not on the customer yet: only a used-once id, which no saved-method lookup accepts.
    assert waiting.payment_method_id == "sbx_pm_auth_credit_visa_3184" and waiting.method is not None
    with pytest.raises(GatewayRequestError):
        sandbox.saved_method(waiting.payment_method_id, customer_id=CUSTOMER)
    assert SandboxGateway(now=lambda: datetime(2030, 1, 1, tzinfo=UTC)).retrieve_setup(waiting.setup_id) == waiting

    passed = sandbox.authenticate_setup(waiting.setup_id, passed=True)
    assert passed.saved and passed.setup_id != waiting.setup_id and passed.customer_id == CUSTOMER
    assert passed.method is not None and passed.method.customer_id == CUSTOMER
    assert sandbox.retrieve_setup(passed.setup_id or "") == passed
    assert sandbox.saved_method(passed.payment_method_id or "", customer_id=CUSTOMER) == passed.method

    failed = sandbox.authenticate_setup(waiting.setup_id, passed=False)
    assert failed.status == "requires_payment_method" and failed.failure_code == "setup_intent_authentication_failure"
    assert failed.failure_message is not None and "authentication failed" in failed.failure_message
    assert failed.method is not None and failed.method.customer_id is None
    for decided in (passed.setup_id, failed.setup_id):
        with pytest.raises(GatewayRequestError) as error:
            sandbox.authenticate_setup(decided or "", passed=True)
        assert error.value.code == "setup_intent_unexpected_state"


@pytest.mark.parametrize("token", ["pm_card_visa", "pm_usBankAccount_success"])
def test_only_a_card_that_asks_for_3ds_has_a_challenge(sandbox: SandboxGateway, token: str) -> None:
    setup_id = save(sandbox, token).setup_id or ""
    with pytest.raises(GatewayRequestError):
        sandbox.authenticate_setup(setup_id, passed=True)
    with pytest.raises(GatewayRequestError):  # a hand-made "passed" state on a card that never asks
        sandbox.retrieve_setup(setup_id.replace("sbx_seti_", "sbx_seti_3dspassed_"))
