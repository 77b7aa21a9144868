"""The built-in SANDBOX gateway: the demo's stand-in for Stripe. No network, no real money.

It is stateless so it works the same behind several gunicorn workers or nodes: everything a later
call needs is encoded in the ids it hands out. A charge id carries the scripted outcome, the method
details, the amount and the creation time, so :meth:`SandboxGateway.retrieve` can compute the
current state from the id and the injected clock alone (a bank debit is "processing" until
``ach_settle_seconds`` after creation, then succeeds or fails).

Ids look like ``sbx_pi_achok_none_bank_6789_usd_1250_1700000000_<sha256(key)[:16]>``.

Idempotency: a replay of the same key *within one process* returns the identical result (a small
in-process cache). Across processes the creation time differs, so the id would too; the services
layer prevents such replays with its unique charge-attempt rows.

Test numbers mirror Stripe's, so the demo teaches the same numbers production testing uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
    PaymentGateway,
    RefundResult,
    WebhookEvent,
    client_failure_message,
)

DEFAULT_ACH_SETTLE_SECONDS = 60
SANDBOX_BANK_NAME = "SANDBOX TEST BANK"


@dataclass(frozen=True)
class _Outcome:
    method_type: str  # "card" or "us_bank_account"
    settled_status: ChargeStatus  # the state once the (simulated) network has decided
    failure_code: str | None = None
    decline_code: str | None = None
    settles_later: bool = False  # bank debits sit in "processing" first


_OUTCOMES: dict[str, _Outcome] = {
    "ok": _Outcome("card", "succeeded"),
    "declined": _Outcome("card", "failed", "card_declined", "generic_decline"),
    "nsf": _Outcome("card", "failed", "card_declined", "insufficient_funds"),
    "badnumber": _Outcome("card", "failed", "incorrect_number"),
    "achok": _Outcome("us_bank_account", "succeeded", settles_later=True),
    "achnsf": _Outcome("us_bank_account", "failed", "insufficient_funds", settles_later=True),
    # A real bank would return this days later; the demo says so at once.
    "achinvalid": _Outcome("us_bank_account", "failed", "invalid_account_number"),
}

#: Stripe's test card numbers: number -> (outcome, funding).
TEST_CARDS: dict[str, tuple[str, CardFunding]] = {
    "4242424242424242": ("ok", "credit"),
    "4000056655665556": ("ok", "debit"),
    "4000000000000002": ("declined", "credit"),
    "4000000000009995": ("nsf", "credit"),
}
#: Stripe's test US bank account numbers: number -> outcome.
TEST_BANK_ACCOUNTS: dict[str, str] = {
    "000123456789": "achok",
    "000222222227": "achnsf",
}
_FUNDINGS = frozenset({"credit", "debit", "prepaid", "unknown"})
_NO_FUNDING = "none"  # placeholder field for bank accounts, keeps ids a fixed shape


@dataclass(frozen=True)
class SandboxMethod:
    """A sandbox payment method, as encoded in tokens, method ids and charge ids."""

    outcome: str
    funding: str
    brand: str
    last4: str

    @property
    def method_type(self) -> str:
        return _OUTCOMES[self.outcome].method_type

    def fields(self) -> str:
        return f"{self.outcome}_{self.funding}_{self.brand}_{self.last4}"

    @classmethod
    def from_fields(cls, parts: list[str]) -> SandboxMethod:
        outcome, funding, brand, last4 = parts
        method = cls(outcome, funding, brand, last4)  # method_type raises KeyError on a bad outcome
        allowed = {_NO_FUNDING} if method.method_type == "us_bank_account" else _FUNDINGS
        if funding not in allowed:
            raise ValueError(funding)
        if len(last4) != 4 or not last4.isdigit() or not brand.isalpha():
            raise ValueError(last4)
        return method


def sandbox_token(kind: str, number: str, funding: str | None = None) -> str:
    """Build the sandbox "confirmation token" for what a client typed into the sandbox form.

    ``kind`` is "card" or "us_bank_account". Unknown card numbers decline as ``incorrect_number``;
    unknown account numbers fail as ``invalid_account_number``. ``funding`` overrides a card's
    funding so the demo can show prepaid or unknown cards. Raises ValueError for input that is not a
    number at all (the form shows it as a field error).
    """
    digits = "".join(ch for ch in number if ch not in " -")
    if not digits.isdigit() or len(digits) < 4:
        raise ValueError("enter the number using digits only")
    if kind == "card":
        outcome, default_funding = TEST_CARDS.get(digits, ("badnumber", "credit"))
        if funding is not None and funding not in _FUNDINGS:
            raise ValueError(f"unknown card funding {funding!r}")
        method = SandboxMethod(outcome, funding or default_funding, _card_brand(digits), digits[-4:])
    elif kind == "us_bank_account":
        if funding is not None:
            raise ValueError("funding applies to cards only")
        outcome = TEST_BANK_ACCOUNTS.get(digits, "achinvalid")
        method = SandboxMethod(outcome, _NO_FUNDING, "bank", digits[-4:])
    else:
        raise ValueError(f"unknown payment method kind {kind!r}")
    return f"sbx_ctok_{method.fields()}"


def parse_sandbox_method(value: str, *, prefix: str) -> SandboxMethod:
    """Parse a sandbox token (prefix ``sbx_ctok_``) or method id (``sbx_pm_``)."""
    if value.startswith(prefix):
        try:
            return SandboxMethod.from_fields(value.removeprefix(prefix).split("_"))
        except (KeyError, ValueError):
            pass
    raise GatewayRequestError("Unknown sandbox payment details; please enter them again.", code="resource_missing")


def _card_brand(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or digits[:2] == "22":
        return "mastercard"
    if digits[:2] in {"34", "37"}:
        return "amex"
    if digits.startswith("6"):
        return "discover"
    return "unknown"


@dataclass(frozen=True)
class _SandboxCharge:
    method: SandboxMethod
    currency: str
    amount_cents: int
    created: int

    def gateway_id(self, key_hash: str) -> str:
        return f"sbx_pi_{self.method.fields()}_{self.currency}_{self.amount_cents}_{self.created}_{key_hash}"

    @classmethod
    def parse(cls, gateway_id: str) -> _SandboxCharge:
        parts = gateway_id.removeprefix("sbx_pi_").split("_") if gateway_id.startswith("sbx_pi_") else []
        try:
            method = SandboxMethod.from_fields(parts[:4])
            currency, amount, created, key_hash = parts[4:]
            if not (currency.isalpha() and amount.isdigit() and created.isdigit() and len(key_hash) == 16):
                raise ValueError(gateway_id)
            return cls(method, currency, int(amount), int(created))
        except (KeyError, ValueError):
            raise GatewayRequestError(f"No such sandbox payment: {gateway_id!r}", code="resource_missing") from None


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
    ) -> None:
        self._now = now
        self._ach_settle_seconds = ach_settle_seconds
        self._replays: OrderedDict[str, tuple[str, ChargeResult]] = OrderedDict()
        self._replay_cache_size = replay_cache_size
        self._lock = threading.Lock()

    @property
    def publishable_key(self) -> None:
        return None

    def ensure_customer(self, *, client_ref: str, name: str, email: str | None, existing_id: str | None) -> str:
        if existing_id:
            return existing_id
        return "sbx_cus_" + _hash(client_ref)

    def preview_payment_method(self, token: str) -> MethodPreview:
        method = parse_sandbox_method(token, prefix="sbx_ctok_")
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
        if request.confirmation_token is not None:
            method = parse_sandbox_method(request.confirmation_token, prefix="sbx_ctok_")
        else:
            method = parse_sandbox_method(request.payment_method or "", prefix="sbx_pm_")
        idempotency_key = request.idempotency_key
        fingerprint = json.dumps(dataclasses.asdict(request), sort_keys=True)
        with self._lock:
            replay = self._replays.get(idempotency_key)
            if replay is not None:
                if replay[0] != fingerprint:
                    raise IdempotencyConflict(
                        f"Sandbox idempotency key reused with different parameters: {idempotency_key!r}"
                    )
                return replay[1]
            created = int(self._clock().timestamp())
            charge = _SandboxCharge(method, request.currency.lower(), request.amount_cents, created)
            result = self._result(charge, charge.gateway_id(_hash(idempotency_key)))
            self._replays[idempotency_key] = (fingerprint, result)
            while len(self._replays) > self._replay_cache_size:
                self._replays.popitem(last=False)
            return result

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
        return RefundResult(status="succeeded", refund_id="sbx_re_" + _hash(idempotency_key), amount_cents=amount_cents)

    def parse_webhook(self, payload: bytes, signature_header: str) -> WebhookEvent:
        raise InvalidWebhook("The sandbox gateway sends no webhooks; its state comes from retrieve().")

    def _clock(self) -> datetime:
        now = self._now()
        if now.tzinfo is None:
            # A naive datetime would be read as local time and shift every settlement.
            raise ValueError("the sandbox clock must return timezone-aware datetimes")
        return now

    def _status(self, charge: _SandboxCharge) -> ChargeStatus:
        outcome = _OUTCOMES[charge.method.outcome]
        if outcome.settles_later and self._clock().timestamp() < charge.created + self._ach_settle_seconds:
            return "processing"
        return outcome.settled_status

    def _result(self, charge: _SandboxCharge, gateway_id: str) -> ChargeResult:
        method = charge.method
        outcome = _OUTCOMES[method.outcome]
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
            payment_method_id=f"sbx_pm_{method.fields()}",
            method_type=method.method_type,
            card_funding=method.funding if is_card else None,
            last4=method.last4,
            brand=method.brand if is_card else None,
        )


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]
