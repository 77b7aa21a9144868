"""The built-in SANDBOX gateway: the demo's stand-in for Stripe. No network, no real money.

It is stateless so it works the same behind several gunicorn workers or nodes: everything a later
call needs is encoded in the ids it hands out. A charge id carries the scripted outcome, the method
details, the amount and the creation time, so :meth:`SandboxGateway.retrieve` can compute the
current state from the id and the injected clock alone (a bank debit is "processing" until
``ach_settle_seconds`` after creation, then succeeds or fails).

Ids look like ``sbx_pi_achok_none_bank_6789_usd_1250_1700000000_<sha256(key)[:16]>``; saved methods and
setups carry their state the same way (see sandbox_methods.py). One consequence: a verification is recorded in
the new ids :meth:`SandboxGateway.verify_microdeposits` returns, not in the old ones, and a detached method is
forgotten only by the portal, which removes its record.

Idempotency: a replay of the same key *within one process* returns the identical result (a small
in-process cache). Across processes the creation time differs, so the id would too; the services
layer prevents such replays with its unique charge-attempt rows.

Test numbers mirror Stripe's, so the demo teaches the same numbers production testing uses.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import cast

from .base import (
    CardFunding,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    GatewayRequestError,
    IdempotencyConflict,
    InvalidWebhook,
    MethodPreview,
    MicrodepositType,
    PaymentGateway,
    RefundResult,
    SavedMethodDetails,
    SetupRequest,
    SetupResult,
    WebhookEvent,
    client_failure_message,
)
from .sandbox_methods import (
    OUTCOMES,
    SANDBOX_BANK_NAME,
    SandboxMethod,
    SavedMethod,
    owner_hash,
    parse_method,
    parse_token,
    sandbox_token,
    short_hash,
)

__all__ = ["DEFAULT_ACH_SETTLE_SECONDS", "SandboxGateway", "sandbox_token"]

DEFAULT_ACH_SETTLE_SECONDS = 60
#: Stripe's test microdeposits: the amounts 32 and 45 cents, or the descriptor code SM11AA.
TEST_MICRODEPOSIT_AMOUNTS = (32, 45)
TEST_DESCRIPTOR_CODE = "SM11AA"


@dataclass(frozen=True)
class _SandboxCharge:
    method: SandboxMethod
    saved: str | None  # the saved method's id suffix (expiry, state, owner), when a saved method was charged
    currency: str
    amount_cents: int
    created: int

    def gateway_id(self, key_hash: str) -> str:
        saved = f"_{self.saved}" if self.saved else ""
        return f"sbx_pi_{self.method.fields()}{saved}_{self.currency}_{self.amount_cents}_{self.created}_{key_hash}"

    @property
    def payment_method_id(self) -> str:
        saved = f"_{self.saved}" if self.saved else ""
        return f"sbx_pm_{self.method.own_fields()}{saved}"

    @classmethod
    def parse(cls, gateway_id: str) -> _SandboxCharge:
        parts = gateway_id.removeprefix("sbx_pi_").split("_") if gateway_id.startswith("sbx_pi_") else []
        try:
            method = SandboxMethod.from_fields(parts[:4])
            saved = None
            if len(parts) == 11:
                saved = SavedMethod.from_parts(parts[:7]).suffix
            elif len(parts) != 8:
                raise ValueError(gateway_id)
            currency, amount, created, key_hash = parts[-4:]
            if not (currency.isalpha() and amount.isdigit() and created.isdigit() and len(key_hash) == 16):
                raise ValueError(gateway_id)
            return cls(method, saved, currency, int(amount), int(created))
        except (KeyError, ValueError):
            raise GatewayRequestError(f"No such sandbox payment: {gateway_id!r}", code="resource_missing") from None


#: Where a setup stands with 3-D Secure, for a card that asks for it when saved (``authenticates_on_save``). The
#: sandbox keeps no state, so the state is in the setup id: the challenge page's answer gives a new id (waiting ->
#: passed or failed), the way a microdeposit verification does. A row in the portal's database would also work,
#: but the gateway would then stop being a drop-in for Stripe that several workers can share without a database.
#: Anyone can write a "passed" id by hand, as anyone can type 4242 4242 4242 4242: the sandbox moves no money.
AUTH_WAITING, AUTH_PASSED, AUTH_FAILED = "3dswait", "3dspassed", "3dsfailed"
_AUTH_STATES = frozenset({AUTH_WAITING, AUTH_PASSED, AUTH_FAILED})
#: Stripe's code for a setup whose 3-D Secure challenge failed or was abandoned.
AUTHENTICATION_FAILURE = "setup_intent_authentication_failure"


@dataclass(frozen=True)
class _SandboxSetup:
    """``sbx_seti_[<3-D Secure state>_]<saved method>_<created>_<key hash>_<customer id>``: its status follows from
    the method and the 3-D Secure state alone."""

    saved: SavedMethod
    created: int
    key_hash: str
    customer_id: str
    authentication: str | None = None  # one of _AUTH_STATES, for a card that authenticates when saved

    @property
    def id(self) -> str:
        auth = f"{self.authentication}_" if self.authentication else ""
        fields = f"{self.saved.method.fields()}_{self.saved.suffix}"
        return f"sbx_seti_{auth}{fields}_{self.created}_{self.key_hash}_{self.customer_id}"

    @classmethod
    def parse(cls, setup_id: str) -> _SandboxSetup:
        parts = setup_id.removeprefix("sbx_seti_").split("_") if setup_id.startswith("sbx_seti_") else []
        # An outcome name never starts with a digit, so a leading 3-D Secure state cannot be read as one.
        authentication = parts.pop(0) if parts and parts[0] in _AUTH_STATES else None
        try:
            if len(parts) < 10 or not parts[7].isdigit() or len(parts[8]) != 16:
                raise ValueError(setup_id)
            setup = cls(
                SavedMethod.from_parts(parts[:7]), int(parts[7]), parts[8], "_".join(parts[9:]), authentication
            )
            if owner_hash(setup.customer_id) != setup.saved.owner:
                raise ValueError(setup_id)
            if authentication is not None and not OUTCOMES[setup.saved.method.outcome].authenticates_on_save:
                raise ValueError(setup_id)
            return setup
        except (KeyError, ValueError):
            raise GatewayRequestError(f"No such sandbox setup: {setup_id!r}", code="resource_missing") from None


class SandboxGateway(PaymentGateway):
    """SANDBOX: simulates Stripe's outcomes for its test numbers. Never moves real money."""

    name = "sandbox"
    is_sandbox = True

    def __init__(
        self,
        *,
        now: Callable[[], datetime],
        ach_settle_seconds: int = DEFAULT_ACH_SETTLE_SECONDS,
        replay_cache_size: int = 10_000,
        microdeposit_type: MicrodepositType = "amounts",
    ) -> None:
        self._now = now
        self._ach_settle_seconds = ach_settle_seconds
        self._replays: OrderedDict[str, tuple[str, ChargeResult | SetupResult]] = OrderedDict()
        self._replay_cache_size = replay_cache_size
        self._microdeposit_type: MicrodepositType = microdeposit_type
        self._lock = threading.Lock()

    @property
    def publishable_key(self) -> None:
        return None

    def ensure_customer(self, *, client_ref: str, name: str, email: str | None, existing_id: str | None) -> str:
        if existing_id:
            return existing_id
        return "sbx_cus_" + short_hash(client_ref)

    def preview_payment_method(self, token: str) -> MethodPreview:
        method, _ = parse_token(token)
        if method.method_type == "card":
            return MethodPreview(
                token=token,
                method_type="card",
                card_funding=cast(CardFunding, method.funding),
                brand=method.brand,
                last4=method.last4,
            )
        return MethodPreview(
            token=token, method_type="us_bank_account", bank_name=SANDBOX_BANK_NAME, last4=method.last4
        )

    def _charge(self, request: ChargeRequest) -> ChargeResult:
        saved: SavedMethod | None
        if request.confirmation_token is not None:
            method, expiry = parse_token(request.confirmation_token)
            outcome = OUTCOMES[method.outcome]
            # As at Stripe, only a payment that went through (or a bank debit on its way) leaves the method saved.
            kept = request.save_method and (outcome.settles_later or outcome.settled_status == "succeeded")
            saved = SavedMethod(method, expiry, True, owner_hash(request.customer_id)) if kept else None
        else:
            method, saved = parse_method(request.payment_method or "")
            refusal = _refuse_saved(saved, request.customer_id)
            if refusal is not None:
                return refusal
        if request.off_session:
            method = method.off_session()
        fingerprint = json.dumps(dataclasses.asdict(request), sort_keys=True)

        def create(created: int) -> ChargeResult:
            suffix = saved.suffix if saved is not None else None
            charge = _SandboxCharge(method, suffix, request.currency.lower(), request.amount_cents, created)
            return self._result(charge, charge.gateway_id(short_hash(request.idempotency_key)))

        return cast(ChargeResult, self._once("charge:" + request.idempotency_key, fingerprint, create))

    def retrieve(self, gateway_id: str) -> ChargeResult:
        return self._result(_SandboxCharge.parse(gateway_id), gateway_id)

    def cancel(self, gateway_id: str) -> ChargeResult:
        charge = _SandboxCharge.parse(gateway_id)
        # Sandbox charges never wait on the client (no authentication step), and a stateless
        # gateway could not remember a cancellation anyway.
        raise GatewayRequestError(
            f"You cannot cancel this payment because it has a status of {self._status(charge)}.",
            code="payment_intent_unexpected_state",
        )

    def _refund(self, *, idempotency_key: str, gateway_id: str, amount_cents: int) -> RefundResult:
        charge = _SandboxCharge.parse(gateway_id)
        if self._status(charge) != "succeeded":
            raise GatewayRequestError("Only a succeeded sandbox payment can be refunded.", code="charge_not_refundable")
        if amount_cents > charge.amount_cents:
            # Stateless, so only the original amount is known; the ledger guards cumulative refunds.
            raise GatewayRequestError("Refund amount is greater than the payment.", code="amount_too_large")
        return RefundResult(
            status="succeeded", refund_id="sbx_re_" + short_hash(idempotency_key), amount_cents=amount_cents
        )

    def parse_webhook(self, payload: bytes, signature_header: str) -> WebhookEvent:
        raise InvalidWebhook("The sandbox gateway sends no webhooks; its state comes from retrieve().")

    # --- saved methods ---------------------------------------------------------------------------

    def _save_method(self, request: SetupRequest) -> SetupResult:
        method, expiry = parse_token(request.confirmation_token)
        # No online banking to link in the sandbox: "automatic" and "instant" verify at once, as Stripe's test
        # accounts do; "microdeposits" waits for the client to read back Stripe's test amounts.
        pending = method.method_type == "us_bank_account" and request.bank_verification == "microdeposits"
        saved = SavedMethod(method, expiry, not pending, owner_hash(request.customer_id))
        authentication = AUTH_WAITING if OUTCOMES[method.outcome].authenticates_on_save else None
        fingerprint = json.dumps(dataclasses.asdict(request), sort_keys=True, default=str)

        def create(created: int) -> SetupResult:
            key_hash = short_hash(request.idempotency_key)
            return self._setup_result(_SandboxSetup(saved, created, key_hash, request.customer_id, authentication))

        return cast(SetupResult, self._once("setup:" + request.idempotency_key, fingerprint, create))

    def retrieve_setup(self, setup_id: str) -> SetupResult:
        return self._setup_result(_SandboxSetup.parse(setup_id))

    def authenticate_setup(self, setup_id: str, *, passed: bool) -> SetupResult:
        """SANDBOX only: the answer of the sandbox's stand-in for the bank's 3-D Secure challenge on a card being
        saved (Stripe runs the real one in Stripe.js). Returns the setup under its new id (see AUTH_WAITING)."""
        setup = _SandboxSetup.parse(setup_id)
        if setup.authentication != AUTH_WAITING:
            raise GatewayRequestError(
                "This setup is not waiting for authentication.", code="setup_intent_unexpected_state"
            )
        return self._setup_result(replace(setup, authentication=AUTH_PASSED if passed else AUTH_FAILED))

    def _verify_microdeposits(
        self, setup_id: str, *, amounts: tuple[int, int] | None, descriptor_code: str | None
    ) -> SetupResult:
        setup = _SandboxSetup.parse(setup_id)
        if setup.saved.verified or not OUTCOMES[setup.saved.method.outcome].saves:
            raise GatewayRequestError(
                "This setup is not awaiting microdeposit verification.", code="setup_intent_unexpected_state"
            )
        if self._microdeposit_type == "amounts":
            if amounts is None:
                raise GatewayRequestError("Enter the two deposit amounts.", code="parameter_missing")
            matched, mismatch = tuple(sorted(amounts)) == TEST_MICRODEPOSIT_AMOUNTS, "amounts_mismatch"
        else:
            if descriptor_code is None:
                raise GatewayRequestError("Enter the code from the deposit's description.", code="parameter_missing")
            matched, mismatch = descriptor_code == TEST_DESCRIPTOR_CODE, "descriptor_code_mismatch"
        if not matched:
            # Stateless: the sandbox cannot count wrong tries, so it never locks the account out.
            raise GatewayRequestError(
                "The verification values do not match what was sent to the bank account.",
                code=f"payment_method_microdeposit_verification_{mismatch}",
            )
        return self._setup_result(replace(setup, saved=replace(setup.saved, verified=True)))

    def saved_method(self, method_id: str, *, customer_id: str) -> SavedMethodDetails:
        _, saved = parse_method(method_id)
        if saved is None or _refuse_saved(saved, customer_id) is not None:
            # Another customer's method, one used once, a card that failed to save or an account still
            # unverified: none is on this customer.
            raise GatewayRequestError(f"No such PaymentMethod: '{method_id}'", code="resource_missing")
        return _details(saved, customer_id)

    def detach_method(self, method_id: str, *, customer_id: str) -> None:
        # Stateless: nothing to forget here. The portal stops using the method because it removes its own record.
        self.saved_method(method_id, customer_id=customer_id)

    # --- internals -------------------------------------------------------------------------------

    def _once(
        self, key: str, fingerprint: str, create: Callable[[int], ChargeResult | SetupResult]
    ) -> ChargeResult | SetupResult:
        """Idempotency: a replay of the same key *within one process* returns the identical result."""
        with self._lock:
            replay = self._replays.get(key)
            if replay is not None:
                if replay[0] != fingerprint:
                    raise IdempotencyConflict(f"Sandbox idempotency key reused with different parameters: {key!r}")
                return replay[1]
            result = create(int(self._clock().timestamp()))
            self._replays[key] = (fingerprint, result)
            while len(self._replays) > self._replay_cache_size:
                self._replays.popitem(last=False)
            return result

    def _clock(self) -> datetime:
        now = self._now()
        if now.tzinfo is None:
            # A naive datetime would be read as local time and shift every settlement.
            raise ValueError("the sandbox clock must return timezone-aware datetimes")
        return now

    def _status(self, charge: _SandboxCharge) -> ChargeStatus:
        outcome = OUTCOMES[charge.method.outcome]
        if outcome.settles_later and self._clock().timestamp() < charge.created + self._ach_settle_seconds:
            return "processing"
        return outcome.settled_status

    def _result(self, charge: _SandboxCharge, gateway_id: str) -> ChargeResult:
        method = charge.method
        outcome = OUTCOMES[method.outcome]
        status = self._status(charge)
        failed = status == "failed"
        is_card = method.method_type == "card"
        return ChargeResult(
            status=status,
            gateway_id=gateway_id,
            amount_cents=charge.amount_cents,
            currency=charge.currency,
            failure_code=outcome.failure_code if failed else None,
            decline_code=outcome.decline_code if failed else None,
            failure_message=client_failure_message(
                method_type=method.method_type,
                failure_code=outcome.failure_code,
                decline_code=outcome.decline_code,
            )
            if failed
            else None,
            payment_method_id=charge.payment_method_id,
            method_type=method.method_type,
            card_funding=method.funding if is_card else None,
            last4=method.last4,
            brand=method.brand if is_card else None,
        )

    def _setup_result(self, setup: _SandboxSetup) -> SetupResult:
        saved = setup.saved
        outcome = OUTCOMES[saved.method.outcome]
        if not outcome.saves:
            return SetupResult(
                status="requires_payment_method",
                setup_id=setup.id,
                customer_id=setup.customer_id,
                method=_details(saved, None),
                payment_method_id=saved.id,
                failure_code=outcome.failure_code,
                decline_code=outcome.decline_code,
                failure_message=client_failure_message(
                    method_type=saved.method.method_type,
                    failure_code=outcome.failure_code,
                    decline_code=outcome.decline_code,
                ),
            )
        if setup.authentication in (AUTH_WAITING, AUTH_FAILED):
            # As at Stripe, the card is on no customer until the challenge is passed: the result names it by its
            # used-once id, never by the saved one that a charge for the customer would accept.
            unattached = "sbx_pm_" + saved.method.own_fields()
            details = replace(_details(saved, None), method_id=unattached)
            if setup.authentication == AUTH_WAITING:
                return SetupResult(
                    status="requires_action",
                    setup_id=setup.id,
                    customer_id=setup.customer_id,
                    payment_method_id=unattached,
                    method=details,
                )
            return SetupResult(
                status="requires_payment_method",
                setup_id=setup.id,
                customer_id=setup.customer_id,
                payment_method_id=unattached,
                method=details,
                failure_code=AUTHENTICATION_FAILURE,
                failure_message=client_failure_message(
                    method_type="card", failure_code=AUTHENTICATION_FAILURE, decline_code=None
                ),
            )
        is_bank = saved.method.method_type == "us_bank_account"
        if not saved.verified:
            return SetupResult(
                status="requires_action",
                setup_id=setup.id,
                customer_id=setup.customer_id,
                payment_method_id=saved.id,
                method=_details(saved, None),
                microdeposit_type=self._microdeposit_type,
                microdeposits_arrive=datetime.fromtimestamp(setup.created, UTC),  # the sandbox's arrive at once
            )
        return SetupResult(
            status="succeeded",
            setup_id=setup.id,
            customer_id=setup.customer_id,
            payment_method_id=saved.id,
            method=_details(saved, setup.customer_id),
            mandate_id="sbx_mandate_" + short_hash(setup.id) if is_bank else None,
        )


def _refuse_saved(saved: SavedMethod | None, customer_id: str) -> ChargeResult | None:
    """A saved method charged for another customer, or before its bank account is verified, is refused the way
    Stripe refuses it: before any charge exists (a failed result without a gateway id)."""
    if saved is None:
        return None
    if saved.owner != owner_hash(customer_id) or not OUTCOMES[saved.method.outcome].saves:
        code, message = "resource_missing", "The payment method does not belong to this customer."
    elif not saved.verified:
        code, message = "payment_method_unactivated", "The bank account has not been verified yet."
    else:
        return None
    return ChargeResult(
        status="failed",
        gateway_id=None,
        failure_code=code,
        failure_message=message,
        method_type=saved.method.method_type,
    )


def _details(saved: SavedMethod, customer_id: str | None) -> SavedMethodDetails:
    method = saved.method
    if method.method_type == "card":
        return SavedMethodDetails(
            method_id=saved.id,
            method_type="card",
            customer_id=customer_id,
            brand=method.brand,
            last4=method.last4,
            exp_month=saved.exp_month,
            exp_year=saved.exp_year,
            card_funding=cast(CardFunding, method.funding),
        )
    return SavedMethodDetails(
        method_id=saved.id,
        method_type="us_bank_account",
        customer_id=customer_id,
        last4=method.last4,
        bank_name=SANDBOX_BANK_NAME,
    )
