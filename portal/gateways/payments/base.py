"""The payment gateway interface the services layer programs against.

Services never import ``stripe``: they call a :class:`PaymentGateway` and get back small frozen
dataclasses. Two implementations exist: the Stripe adapter (``stripe_gateway.py``) and the built-in
sandbox (``sandbox.py``) used by the demo when no Stripe key is configured.

Error contract (the part callers must get right to avoid double charges):

* A card decline or a failed bank debit is a *result*, not an exception: ``charge`` returns a
  :class:`ChargeResult` with ``status="failed"`` and the codes.
* :class:`GatewayUnavailable` means "we do not know what happened" (network error, 5xx, bad
  credentials, rate limit). The caller keeps its charge attempt as *unknown* and reconciles later,
  either by retrying with the same idempotency key or via :meth:`PaymentGateway.retrieve`.
* :class:`IdempotencyConflict` means the same key was reused with different parameters: a bug in the
  caller's key derivation. It is never mapped to "failed", because the first request with that key
  may well have moved money.
* :class:`GatewayRequestError` means the gateway refused the request as invalid (unknown id, expired
  payment details, refund larger than what is left). Nothing happened.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

ChargeStatus = Literal["succeeded", "processing", "requires_action", "failed", "canceled"]
MethodType = Literal["card", "us_bank_account"]
CardFunding = Literal["credit", "debit", "prepaid", "unknown"]
RefundStatus = Literal["succeeded", "pending", "failed", "canceled", "requires_action"]
#: A saved-method setup, in Stripe's SetupIntent words: ``requires_action`` is 3-D Secure or microdeposits still to
#: verify, ``requires_payment_method`` means it failed (the codes say why) and nothing was saved.
SetupStatus = Literal["succeeded", "processing", "requires_action", "requires_payment_method", "canceled"]
#: How a bank account is verified: ``instant`` only through the client's online banking (Financial Connections),
#: ``microdeposits`` only by two small deposits the client reads back, ``automatic`` instant with microdeposits as
#: the fallback.
BankVerification = Literal["automatic", "instant", "microdeposits"]
MicrodepositType = Literal["amounts", "descriptor_code"]
BANK_VERIFICATIONS: frozenset[str] = frozenset({"automatic", "instant", "microdeposits"})

#: Charge statuses after which the gateway will not change its mind on its own (a refund or a
#: dispute is a separate event, not a status change of the charge).
FINAL_CHARGE_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})


class GatewayError(Exception):
    """Base class of every error a payment gateway raises."""


class GatewayUnavailable(GatewayError):
    """The outcome is unknown: the gateway could not be reached or answered with a server error.

    Treat the attempt as *unknown*, never as failed: the charge may have gone through.
    """


class GatewayRequestError(GatewayError):
    """The gateway refused the request as invalid; nothing was charged or refunded.

    ``code`` is the gateway's machine-readable code when it gave one (e.g. ``resource_missing``).
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class IdempotencyConflict(GatewayError):
    """The idempotency key was already used with different parameters (a caller bug)."""


class InvalidWebhook(GatewayError):
    """A webhook failed signature verification, was too old, or was not valid JSON."""


@dataclass(frozen=True, kw_only=True)
class MethodPreview:
    """What the server learns from a confirmation token before charging (e.g. to add a surcharge)."""

    token: str
    method_type: MethodType
    card_funding: CardFunding | None = None  # None for bank accounts
    brand: str | None = None
    last4: str | None = None
    bank_name: str | None = None

    @property
    def is_credit_card(self) -> bool:
        """Surcharges are only ever allowed on credit cards, so this is the question callers ask."""
        return self.method_type == "card" and self.card_funding == "credit"


@dataclass(frozen=True, kw_only=True)
class SavedMethodDetails:
    """A payment method saved on a gateway customer, as the portal shows it and decides whether to charge it."""

    method_id: str
    method_type: MethodType
    customer_id: str | None  # None: not (or no longer) attached to any customer
    brand: str | None = None
    last4: str | None = None  # the card's, or the bank account's
    exp_month: int | None = None
    exp_year: int | None = None
    card_funding: CardFunding | None = None
    bank_name: str | None = None
    #: The NACHA return code that made the gateway block this bank account (R02 account closed ...).
    blocked_code: str | None = None

    @property
    def usable(self) -> bool:
        """Attached, so verified (a bank account is attached only once its verification succeeded), and not
        blocked by a bank return. Autopay never charges a method for which this is False."""
        return self.customer_id is not None and self.blocked_code is None


@dataclass(frozen=True, kw_only=True)
class MandateAcceptance:
    """The client accepting the debit authorization online: who, from where, when.

    Sent with every setup so the gateway's mandate records the same acceptance as the authorization the client
    signed in the portal (NACHA requires a recurring-debit authorization to be kept and provable).
    """

    ip_address: str
    user_agent: str
    accepted_at: datetime

    def __post_init__(self) -> None:
        if not self.ip_address.strip() or not self.user_agent.strip():
            raise ValueError("a mandate acceptance needs the client's IP address and user agent")
        if self.accepted_at.tzinfo is None:
            raise ValueError("accepted_at must be timezone-aware")


@dataclass(frozen=True, kw_only=True)
class SetupResult:
    """The normalized state of one saved-method setup (a Stripe SetupIntent or a sandbox setup)."""

    status: SetupStatus
    setup_id: str | None  # None: refused before the gateway created anything
    #: The gateway customer the setup saves to: the portal checks it before acting on a setup id it was handed.
    customer_id: str | None = None
    payment_method_id: str | None = None
    method: SavedMethodDetails | None = None
    mandate_id: str | None = None
    #: Set while the client still has to read back microdeposits (status ``requires_action``).
    microdeposit_type: MicrodepositType | None = None
    microdeposits_arrive: datetime | None = None
    verification_url: str | None = None  # the gateway's own page for entering the microdeposits
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = None  # written for the client, never a raw gateway dump
    # Lets the browser finish 3-D Secure on the card being saved (stripe.handleNextAction).
    client_secret: str | None = None

    @property
    def saved(self) -> bool:
        return self.status == "succeeded"

    @property
    def awaiting_microdeposits(self) -> bool:
        """Saved but not yet verified: shown as pending and never charged until the client verifies it."""
        return self.status == "requires_action" and self.microdeposit_type is not None


@dataclass(frozen=True, kw_only=True)
class ChargeResult:
    """The normalized state of one charge (a Stripe PaymentIntent or a sandbox charge)."""

    status: ChargeStatus
    gateway_id: str | None
    amount_cents: int | None = None
    currency: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = None  # written for the paying client, never a raw gateway dump
    payment_method_id: str | None = None
    method_type: str | None = None
    card_funding: str | None = None
    last4: str | None = None
    brand: str | None = None
    next_action_url: str | None = None
    # Lets the browser finish an authentication step (stripe.handleNextAction) when no redirect
    # URL exists. Only ever hand it to the client who is paying.
    client_secret: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CHARGE_STATUSES


@dataclass(frozen=True, kw_only=True)
class RefundResult:
    status: RefundStatus
    refund_id: str
    amount_cents: int | None = None


@dataclass(frozen=True, kw_only=True)
class RefundUpdate:
    """From ``charge.refunded``: the cumulative amount refunded on a charge so far."""

    payment_intent_id: str | None
    charge_id: str
    amount_cents: int
    amount_refunded_cents: int
    currency: str
    fully_refunded: bool


@dataclass(frozen=True, kw_only=True)
class DisputeUpdate:
    """From ``charge.dispute.*``: a client's bank is clawing the money back (or gave up)."""

    dispute_id: str
    payment_intent_id: str | None
    charge_id: str | None
    status: str
    amount_cents: int
    currency: str
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class WebhookEvent:
    """A verified webhook. Exactly one of ``charge``/``refund``/``dispute`` is set for the event types
    we act on; other types carry only the envelope so callers can store and ignore them."""

    id: str
    type: str
    created: datetime
    object_id: str | None
    charge: ChargeResult | None = None
    refund: RefundUpdate | None = None
    dispute: DisputeUpdate | None = None


class PaymentGateway(abc.ABC):
    """What the services layer needs from a payment processor. Amounts are integer cents."""

    name: str
    is_sandbox: bool

    @property
    @abc.abstractmethod
    def publishable_key(self) -> str | None:
        """The browser-side key (None for the sandbox, which has no browser SDK)."""

    @abc.abstractmethod
    def ensure_customer(self, *, client_ref: str, name: str, email: str | None, existing_id: str | None) -> str:
        """Return the gateway customer id for a client, creating it only when none exists yet."""

    @abc.abstractmethod
    def preview_payment_method(self, token: str) -> MethodPreview:
        """Describe the payment method behind a confirmation token without charging it."""

    # --- saved methods (autopay) -----------------------------------------------------------------

    def save_method(
        self,
        *,
        idempotency_key: str,
        customer_id: str,
        confirmation_token: str,
        mandate: MandateAcceptance,
        bank_verification: BankVerification = "automatic",
        metadata: dict[str, str],
        return_url: str | None = None,
    ) -> SetupResult:
        """Save the method behind a Payment Element confirmation token (setup mode) for off-session charges.

        A declined card or an unverifiable account is a result (``requires_payment_method`` with codes); a token
        that is unknown, used or expired raises GatewayRequestError. A bank account may come back
        ``requires_action`` awaiting microdeposits (see :meth:`verify_microdeposits`). Replaying the key with the
        same arguments returns the same setup. Arguments that make no sense raise ValueError before any request.
        """
        return self._save_method(
            SetupRequest(
                idempotency_key=idempotency_key,
                customer_id=customer_id,
                confirmation_token=confirmation_token,
                mandate=mandate,
                bank_verification=bank_verification,
                metadata=dict(metadata),
                return_url=return_url,
            )
        )

    @abc.abstractmethod
    def _save_method(self, request: SetupRequest) -> SetupResult:
        """Send an already validated setup to the processor (see :meth:`save_method`)."""

    @abc.abstractmethod
    def retrieve_setup(self, setup_id: str) -> SetupResult:
        """Current state of a setup (after 3-D Secure, or to see whether microdeposits were verified)."""

    def verify_microdeposits(
        self, setup_id: str, *, amounts: tuple[int, int] | None = None, descriptor_code: str | None = None
    ) -> SetupResult:
        """The client reads back the two deposit amounts (in cents) or the 6-character descriptor code.

        A wrong answer raises GatewayRequestError (code ``payment_method_microdeposit_verification_*``); too many
        wrong answers end the setup. Keep the ids of the result: Stripe keeps the same ones, but the stateless
        sandbox records the verification in new ones.
        """
        if (amounts is None) == (descriptor_code is None):
            raise ValueError("pass exactly one of amounts or descriptor_code")
        if amounts is not None:
            if len(amounts) != 2 or not all(_is_cents(a) and 0 < a < 100 for a in amounts):
                raise ValueError("microdeposits are two amounts between 1 and 99 cents")
            return self._verify_microdeposits(setup_id, amounts=(amounts[0], amounts[1]), descriptor_code=None)
        code = (descriptor_code or "").strip().upper()
        if len(code) != 6 or not code.isalnum():
            raise ValueError("the descriptor code has 6 letters and digits")
        return self._verify_microdeposits(setup_id, amounts=None, descriptor_code=code)

    @abc.abstractmethod
    def _verify_microdeposits(
        self, setup_id: str, *, amounts: tuple[int, int] | None, descriptor_code: str | None
    ) -> SetupResult:
        """Send checked microdeposit values (see :meth:`verify_microdeposits`)."""

    @abc.abstractmethod
    def saved_method(self, method_id: str, *, customer_id: str) -> SavedMethodDetails:
        """A method saved on ``customer_id``. A method of another customer, a detached one or an unknown id all
        raise GatewayRequestError with code ``resource_missing``: a client must never reach another's method."""

    @abc.abstractmethod
    def detach_method(self, method_id: str, *, customer_id: str) -> None:
        """Remove a saved method from ``customer_id`` (it can never be charged again). Detaching one that is no
        longer attached does nothing; another customer's method raises GatewayRequestError (``resource_missing``)."""

    def charge_saved_method(
        self,
        *,
        idempotency_key: str,
        customer_id: str,
        payment_method: str,
        amount_cents: int,
        currency: str,
        metadata: dict[str, str],
    ) -> ChargeResult:
        """Charge a saved method with the client away (autopay, installments): :meth:`charge` off-session.

        ``failed`` with ``failure_code``/``decline_code`` for declines (``authentication_required`` when the bank
        wants the client present: no unattended retry can succeed), ``processing`` for a bank debit, which may
        later fail with the bank's return (its NACHA code in ``decline_code`` when the gateway reports it).
        """
        return self.charge(
            idempotency_key=idempotency_key,
            customer_id=customer_id,
            amount_cents=amount_cents,
            currency=currency,
            payment_method=payment_method,
            off_session=True,
            metadata=metadata,
        )

    # --- charges -----------------------------------------------------------------------------------

    def charge(
        self,
        *,
        idempotency_key: str,
        customer_id: str,
        amount_cents: int,
        currency: str,
        confirmation_token: str | None = None,
        payment_method: str | None = None,
        off_session: bool = False,
        metadata: dict[str, str],
        save_method: bool = False,
        return_url: str | None = None,
    ) -> ChargeResult:
        """Create and confirm a charge in one call.

        Pass exactly one of ``confirmation_token`` (client present, Payment Element) or
        ``payment_method`` (a saved method, usually with ``off_session=True`` for autopay and
        installments). ``save_method`` keeps the method on the customer for later off-session use.
        ``return_url`` is where a redirect-based authentication step sends the client back to.
        Replaying the same ``idempotency_key`` with the same arguments returns the same charge.
        Arguments that make no sense raise ValueError before anything leaves the process.
        """
        return self._charge(
            ChargeRequest(
                idempotency_key=idempotency_key,
                customer_id=customer_id,
                amount_cents=amount_cents,
                currency=currency,
                confirmation_token=confirmation_token,
                payment_method=payment_method,
                off_session=off_session,
                metadata=dict(metadata),
                save_method=save_method,
                return_url=return_url,
            )
        )

    @abc.abstractmethod
    def _charge(self, request: ChargeRequest) -> ChargeResult:
        """Send an already validated charge to the processor (see :meth:`charge`)."""

    @abc.abstractmethod
    def retrieve(self, gateway_id: str) -> ChargeResult:
        """Current state of a charge, for reconciling after a missed webhook or an unknown outcome."""

    @abc.abstractmethod
    def cancel(self, gateway_id: str) -> ChargeResult:
        """Cancel a charge that has not completed (e.g. an abandoned authentication step), so an old
        browser tab cannot finish it after the client has paid another way. Final or processing
        charges cannot be canceled: that raises GatewayRequestError."""

    def refund(self, *, idempotency_key: str, gateway_id: str, amount_cents: int) -> RefundResult:
        """Refund part or all of a succeeded charge."""
        _require_positive_cents(amount_cents)
        return self._refund(idempotency_key=idempotency_key, gateway_id=gateway_id, amount_cents=amount_cents)

    @abc.abstractmethod
    def _refund(self, *, idempotency_key: str, gateway_id: str, amount_cents: int) -> RefundResult:
        """Send a refund whose amount is already checked (see :meth:`refund`)."""

    @abc.abstractmethod
    def parse_webhook(self, payload: bytes, signature_header: str) -> WebhookEvent:
        """Verify a webhook's signature on the raw request body and normalize it."""


@dataclass(frozen=True, kw_only=True)
class ChargeRequest:
    """The arguments of :meth:`PaymentGateway.charge`, checked once here for every gateway.

    Building one raises ValueError for a programming error (the caller is wrong, not the payment), so
    no gateway ever sends such a charge.
    """

    idempotency_key: str
    customer_id: str
    amount_cents: int
    currency: str
    confirmation_token: str | None
    payment_method: str | None
    off_session: bool
    metadata: dict[str, str]
    save_method: bool
    return_url: str | None

    def __post_init__(self) -> None:
        _require_positive_cents(self.amount_cents)
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(f"currency must be a three-letter ISO code, got {self.currency!r}")
        if (self.confirmation_token is None) == (self.payment_method is None):
            raise ValueError("pass exactly one of confirmation_token or payment_method")
        if self.off_session and self.payment_method is None:
            raise ValueError("off-session charges need a saved payment_method")
        if self.off_session and self.save_method:
            raise ValueError("a method can only be saved while the client is present (on-session)")


@dataclass(frozen=True, kw_only=True)
class SetupRequest:
    """The arguments of :meth:`PaymentGateway.save_method`, checked once here for every gateway."""

    idempotency_key: str
    customer_id: str
    confirmation_token: str
    mandate: MandateAcceptance
    bank_verification: BankVerification
    metadata: dict[str, str]
    return_url: str | None

    def __post_init__(self) -> None:
        for name in ("idempotency_key", "customer_id", "confirmation_token"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")
        if not isinstance(self.mandate, MandateAcceptance):
            raise ValueError("mandate must be a MandateAcceptance")
        if self.bank_verification not in BANK_VERIFICATIONS:
            raise ValueError(f"bank_verification must be one of {sorted(BANK_VERIFICATIONS)}")


def _is_cents(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_positive_cents(amount_cents: int) -> None:
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise ValueError(f"amount_cents must be a positive integer, got {amount_cents!r}")


# Messages shown to the paying client. Deliberately vague for fraud-related declines: telling a
# fraudster *why* a card was declined helps them (Stripe gives the same advice).
_CARD_DECLINE_MESSAGES: dict[str, str] = {
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "incorrect_number": "Your card number is incorrect.",
    "invalid_number": "Your card number is incorrect.",
    "processing_error": "An error occurred while processing your card. Please try again.",
    "authentication_required": (
        "Your bank asks you to approve this payment. Please sign in and pay the invoice to approve it."
    ),
    "setup_intent_authentication_failure": (
        "Your bank did not confirm this card: the authentication failed or was cancelled."
    ),
}
_BANK_FAILURE_MESSAGES: dict[str, str] = {
    "insufficient_funds": "ACH debit failed: the bank account has insufficient funds.",
    "account_closed": "ACH debit failed: the bank account is closed.",
    "no_account": "ACH debit failed: the bank account could not be found.",
    "invalid_account_number": "The bank account details are invalid. Please check the account number.",
    "debit_not_authorized": "ACH debit failed: the bank reported this debit as not authorized.",
    "payment_method_microdeposit_verification_attempts_exceeded": (
        "The bank account could not be verified: too many incorrect deposit amounts. Please add it again."
    ),
    "payment_method_microdeposit_verification_timeout": (
        "The bank account was not verified in time. Please add it again."
    ),
}
_GENERIC_CARD_DECLINE = "Your card was declined. Please use a different card or contact your bank."
_GENERIC_BANK_FAILURE = "ACH debit failed. Please try a different payment method."
_GENERIC_FAILURE = "The payment could not be completed. Please try a different payment method."


def client_failure_message(*, method_type: str | None, failure_code: str | None, decline_code: str | None) -> str:
    """A failure message that is safe and useful to show the paying client.

    Both gateways use this so the sandbox demo shows exactly what production would show.
    """
    if method_type == "us_bank_account":
        return _BANK_FAILURE_MESSAGES.get(failure_code or "", _GENERIC_BANK_FAILURE)
    for code in (decline_code, failure_code):
        if code in _CARD_DECLINE_MESSAGES:
            return _CARD_DECLINE_MESSAGES[code]
    if method_type == "card" or failure_code == "card_declined":
        return _GENERIC_CARD_DECLINE
    return _GENERIC_FAILURE
