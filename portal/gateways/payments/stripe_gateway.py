"""Stripe adapter: the only module in the portal that imports the ``stripe`` SDK.

Stripe objects are turned into plain dicts (``to_dict()``) at the edge and then normalized by small
pure functions, so API responses, card-error payloads and webhook events share one code path.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, cast

import stripe

from .base import (
    CardFunding,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    DisputeUpdate,
    GatewayError,
    GatewayRequestError,
    GatewayUnavailable,
    IdempotencyConflict,
    InvalidWebhook,
    MethodPreview,
    PaymentGateway,
    RefundResult,
    RefundUpdate,
    SavedMethodDetails,
    SetupRequest,
    SetupResult,
    SetupStatus,
    WebhookEvent,
    client_failure_message,
)

if TYPE_CHECKING:
    from stripe.params import (
        CustomerCreateParams,
        PaymentIntentCreateParams,
        SetupIntentCreateParams,
        SetupIntentVerifyMicrodepositsParams,
    )

log = logging.getLogger(__name__)

#: The API version SDK 16.1.0 was generated against. Pinned so a Dashboard default change cannot
#: alter response shapes under us; bump it together with the SDK.
PINNED_API_VERSION = "2026-10-28.endive"

#: Stripe's own default (seconds). Older signatures are rejected to limit replayed webhooks.
WEBHOOK_TOLERANCE_SECONDS = 300

#: The methods we accept, sent as ``allowed_payment_method_types`` (endive removed the old
#: ``payment_method_types`` request parameter: Stripe now refuses it with a 400). Limiting the
#: types instead of leaving them to the Dashboard means confirming never needs a return_url for a
#: redirect-only method. The Payment Element (static/js/payment-element.js) is set up with the same
#: list as ``allowedPaymentMethodTypes``.
ALLOWED_PAYMENT_METHOD_TYPES = ("card", "us_bank_account")

_STATUS_MAP: dict[str, ChargeStatus] = {
    "succeeded": "succeeded",
    "processing": "processing",
    "requires_action": "requires_action",
    # We always create with confirm=true, so an intent back at requires_payment_method means the
    # attempt failed (decline, failed bank debit, abandoned authentication).
    "requires_payment_method": "failed",
    "canceled": "canceled",
    # Not expected with automatic capture and confirm=true; "processing" keeps the attempt pending
    # so reconciliation looks at it again instead of treating it as settled either way.
    "requires_confirmation": "processing",
    "requires_capture": "processing",
}
_FUNDING = frozenset({"credit", "debit", "prepaid", "unknown"})
_SETUP_STATUS_MAP: dict[str, SetupStatus] = {
    "succeeded": "succeeded",
    "processing": "processing",
    "requires_action": "requires_action",
    "requires_payment_method": "requires_payment_method",
    "canceled": "canceled",
    # Not expected: we create with confirm=true. Pending keeps the caller asking again rather than deciding.
    "requires_confirmation": "processing",
}
#: Too many wrong microdeposit answers end the setup: an outcome the client is shown, not a refused request.
_MICRODEPOSITS_EXHAUSTED = "payment_method_microdeposit_verification_attempts_exceeded"


class StripeGateway(PaymentGateway):
    """Charges through Stripe PaymentIntents, confirmed server-side with ConfirmationTokens."""

    name = "stripe"
    is_sandbox = False

    def __init__(
        self,
        *,
        secret_key: str,
        publishable_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 30.0,
    ) -> None:
        # Retries are safe because every POST carries our idempotency key; the SDK reuses it.
        self._http = stripe.RequestsClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            secret_key,
            stripe_version=PINNED_API_VERSION,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=self._http,
        )
        self._publishable_key = publishable_key
        self._webhook_secret = webhook_secret

    @property
    def publishable_key(self) -> str:
        return self._publishable_key

    def close(self) -> None:
        """Release this thread's pooled HTTP connection."""
        self._http.close()

    def ensure_customer(self, *, client_ref: str, name: str, email: str | None, existing_id: str | None) -> str:
        if existing_id:
            try:
                customer = self._client.v1.customers.retrieve(existing_id).to_dict()
            except stripe.InvalidRequestError as exc:
                if exc.code != "resource_missing":
                    raise _translate(exc) from exc
                log.warning("Stripe customer %s is gone; creating a new one", existing_id)
            except stripe.StripeError as exc:
                raise _translate(exc) from exc
            else:
                if not customer.get("deleted"):
                    return existing_id
        params: CustomerCreateParams = {"name": name, "metadata": {"portal_client_ref": client_ref}}
        if email:
            params["email"] = email
        # Two processes racing to create the same client's customer send the same key and get the
        # same customer back; a changed name/email or a replaced customer gets a fresh key.
        fingerprint = hashlib.sha256(json.dumps([client_ref, name, email, existing_id]).encode()).hexdigest()[:32]
        try:
            created = self._client.v1.customers.create(
                params, options={"idempotency_key": f"portal-customer-{fingerprint}"}
            )
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return created.id

    def preview_payment_method(self, token: str) -> MethodPreview:
        try:
            data = self._client.v1.confirmation_tokens.retrieve(token).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return method_preview_from_token(data)

    def _charge(self, request: ChargeRequest) -> ChargeResult:
        params: PaymentIntentCreateParams = {
            "amount": request.amount_cents,
            "currency": request.currency.lower(),
            "customer": request.customer_id,
            "confirm": True,
            "allowed_payment_method_types": list(ALLOWED_PAYMENT_METHOD_TYPES),
            "metadata": dict(request.metadata),
            # Expanded so the result carries funding/brand/last4 without a second request.
            "expand": ["payment_method"],
        }
        if request.confirmation_token is not None:
            params["confirmation_token"] = request.confirmation_token
        elif request.payment_method is not None:  # ChargeRequest guarantees exactly one of the two
            params["payment_method"] = request.payment_method
        if request.off_session:
            params["off_session"] = True
        if request.save_method:
            params["setup_future_usage"] = "off_session"
        if request.return_url:
            params["return_url"] = request.return_url
        try:
            intent = self._client.v1.payment_intents.create(
                params, options={"idempotency_key": request.idempotency_key}
            )
        except stripe.CardError as exc:
            # A decline is an answer, not an outage. The intent exists and is stored by Stripe
            # under our key, so a replay returns the same decline.
            return charge_result_from_error(_error_body(exc))
        except stripe.InvalidRequestError as exc:
            # Validation failed before anything was charged (expired token, amount too small...).
            log.warning("Stripe rejected a charge: %s (code=%s)", exc.user_message, exc.code)
            return charge_result_from_error(_error_body(exc))
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return charge_result_from_intent(intent.to_dict())

    # --- saved methods ---------------------------------------------------------------------------

    def _save_method(self, request: SetupRequest) -> SetupResult:
        acceptance = request.mandate
        params: SetupIntentCreateParams = {
            "customer": request.customer_id,
            "confirm": True,
            "confirmation_token": request.confirmation_token,
            "usage": "off_session",
            "allowed_payment_method_types": list(ALLOWED_PAYMENT_METHOD_TYPES),
            "payment_method_options": {"us_bank_account": {"verification_method": request.bank_verification}},
            # The acceptance the client gave when signing the portal's authorization, so Stripe's mandate and
            # our signed agreement describe the same event. Stripe only makes a mandate where one is needed.
            "mandate_data": {
                "customer_acceptance": {
                    "type": "online",
                    "accepted_at": int(acceptance.accepted_at.timestamp()),
                    "online": {"ip_address": acceptance.ip_address, "user_agent": acceptance.user_agent},
                }
            },
            "metadata": dict(request.metadata),
            "expand": ["payment_method"],
        }
        if request.return_url:
            params["return_url"] = request.return_url
        try:
            intent = self._client.v1.setup_intents.create(params, options={"idempotency_key": request.idempotency_key})
        except stripe.CardError as exc:
            # The card was declined while being validated: nothing saved, and a replay returns the same decline.
            return setup_result_from_error(_error_body(exc))
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return setup_result_from_intent(intent.to_dict())

    def retrieve_setup(self, setup_id: str) -> SetupResult:
        try:
            intent = self._client.v1.setup_intents.retrieve(setup_id, params={"expand": ["payment_method"]})
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return setup_result_from_intent(intent.to_dict())

    def _verify_microdeposits(
        self, setup_id: str, *, amounts: tuple[int, int] | None, descriptor_code: str | None
    ) -> SetupResult:
        params: SetupIntentVerifyMicrodepositsParams = {"expand": ["payment_method"]}
        if amounts is not None:
            params["amounts"] = list(amounts)
        if descriptor_code is not None:
            params["descriptor_code"] = descriptor_code
        try:
            intent = self._client.v1.setup_intents.verify_microdeposits(setup_id, params)
        except stripe.InvalidRequestError as exc:
            if exc.code == _MICRODEPOSITS_EXHAUSTED:
                return self.retrieve_setup(setup_id)
            raise _translate(exc) from exc
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return setup_result_from_intent(intent.to_dict())

    def saved_method(self, method_id: str, *, customer_id: str) -> SavedMethodDetails:
        # The customer-scoped lookup answers "no such method" for another customer's id, so ownership is checked
        # by Stripe itself rather than by comparing ids here.
        try:
            method = self._client.v1.customers.payment_methods.retrieve(customer_id, method_id)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return saved_method_from_dict(method.to_dict())

    def detach_method(self, method_id: str, *, customer_id: str) -> None:
        try:
            method = self._client.v1.payment_methods.retrieve(method_id).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        owner = _as_id(method.get("customer"))
        if owner is None:
            return  # already detached (a retried removal)
        if owner != customer_id:
            raise GatewayRequestError(f"No such PaymentMethod: '{method_id}'", code="resource_missing")
        try:
            self._client.v1.payment_methods.detach(method_id)
        except stripe.InvalidRequestError as exc:
            if exc.code != "payment_method_unexpected_state":  # detached meanwhile by a concurrent removal
                raise _translate(exc) from exc
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    # --- charges -----------------------------------------------------------------------------------

    def retrieve(self, gateway_id: str) -> ChargeResult:
        try:
            intent = self._client.v1.payment_intents.retrieve(gateway_id, params={"expand": ["payment_method"]})
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return charge_result_from_intent(intent.to_dict())

    def cancel(self, gateway_id: str) -> ChargeResult:
        try:
            intent = self._client.v1.payment_intents.cancel(gateway_id, params={"expand": ["payment_method"]})
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return charge_result_from_intent(intent.to_dict())

    def _refund(self, *, idempotency_key: str, gateway_id: str, amount_cents: int) -> RefundResult:
        try:
            refund = self._client.v1.refunds.create(
                {"payment_intent": gateway_id, "amount": amount_cents},
                options={"idempotency_key": idempotency_key},
            ).to_dict()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        status = refund.get("status")
        return RefundResult(
            status=status if status in _REFUND_STATUSES else "pending",
            refund_id=refund["id"],
            amount_cents=refund.get("amount"),
        )

    def parse_webhook(self, payload: bytes, signature_header: str) -> WebhookEvent:
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature_header, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(f"bad Stripe-Signature: {exc.user_message}") from exc
        except UnicodeDecodeError as exc:
            raise InvalidWebhook("webhook body is not UTF-8") from exc
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise InvalidWebhook("webhook body is not JSON") from exc
        return webhook_event_from_dict(data)


_REFUND_STATUSES = frozenset({"succeeded", "pending", "failed", "canceled", "requires_action"})


def _translate(exc: stripe.StripeError) -> GatewayError:
    """Map an SDK error to ours. Anything not known to be a clean refusal is 'unavailable'."""
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflict(exc.user_message or "idempotency key reused with other parameters")
    if isinstance(exc, stripe.InvalidRequestError):
        return GatewayRequestError(exc.user_message or "invalid request", code=exc.code)
    # Connection errors, 5xx, 401/403 (bad key) and 429: the request may or may not have run.
    return GatewayUnavailable(f"Stripe unavailable ({type(exc).__name__}, HTTP {exc.http_status})")


def _error_body(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, dict) else {"message": exc.user_message, "code": exc.code}


# --- normalization: plain dicts in, base dataclasses out (no SDK types below this line) -------


def method_preview_from_token(token: Mapping[str, Any]) -> MethodPreview:
    preview = token.get("payment_method_preview") or {}
    method_type = preview.get("type")
    if method_type == "card":
        card = preview.get("card") or {}
        return MethodPreview(
            token=token["id"],
            method_type="card",
            card_funding=_funding(card.get("funding")),
            brand=card.get("brand"),
            last4=card.get("last4"),
        )
    if method_type == "us_bank_account":
        bank = preview.get("us_bank_account") or {}
        return MethodPreview(
            token=token["id"],
            method_type="us_bank_account",
            bank_name=bank.get("bank_name"),
            last4=bank.get("last4"),
        )
    raise GatewayRequestError(f"unsupported payment method type {method_type!r}", code="unsupported_type")


def charge_result_from_intent(intent: Mapping[str, Any], *, error: Mapping[str, Any] | None = None) -> ChargeResult:
    """Normalize a PaymentIntent (from a response, a card error or a webhook)."""
    status = _STATUS_MAP.get(intent.get("status") or "", "processing")
    last_error = error or intent.get("last_payment_error") or {}
    method = _as_dict(intent.get("payment_method")) or _as_dict(last_error.get("payment_method")) or {}
    method_id = method.get("id") or _as_id(intent.get("payment_method"))
    method_type = method.get("type")
    card = method.get("card") or {}
    bank = method.get("us_bank_account") or {}
    failure_code = decline_code = failure_message = None
    if status == "failed":
        failure_code = last_error.get("code") or "payment_failed"
        decline_code = last_error.get("decline_code")
        if method_type == "us_bank_account":
            # Stripe names an ACH return (account_closed); its NACHA code shows only where the return blocked
            # the account. It is the bank's own word, so it is what the decline rules read first.
            decline_code = decline_code or _blocked_code(bank)
        failure_message = client_failure_message(
            method_type=method_type, failure_code=failure_code, decline_code=decline_code
        )
    next_action = intent.get("next_action") or {}
    redirect = next_action.get("redirect_to_url") or {}
    return ChargeResult(
        status=status,
        gateway_id=intent.get("id"),
        amount_cents=intent.get("amount"),
        currency=intent.get("currency"),
        failure_code=failure_code,
        decline_code=decline_code,
        failure_message=failure_message,
        payment_method_id=method_id,
        method_type=method_type,
        card_funding=_funding(card.get("funding")) if method_type == "card" else None,
        last4=card.get("last4") or bank.get("last4"),
        brand=card.get("brand"),
        next_action_url=redirect.get("url"),
        client_secret=intent.get("client_secret") if status == "requires_action" else None,
    )


def charge_result_from_error(error: Mapping[str, Any]) -> ChargeResult:
    """Normalize a refused charge. Stripe embeds the failed intent in card errors; when it did not
    get that far (a 400), there is no intent and so no gateway id."""
    intent = _as_dict(error.get("payment_intent"))
    if intent is not None:
        return charge_result_from_intent(intent, error=error)
    failure_code = error.get("code") or "invalid_request"
    method = _as_dict(error.get("payment_method")) or {}
    return ChargeResult(
        status="failed",
        gateway_id=None,
        failure_code=failure_code,
        decline_code=error.get("decline_code"),
        failure_message=client_failure_message(
            method_type=method.get("type"),
            failure_code=failure_code,
            decline_code=error.get("decline_code"),
        ),
        payment_method_id=method.get("id"),
        method_type=method.get("type"),
    )


def saved_method_from_dict(method: Mapping[str, Any]) -> SavedMethodDetails:
    """Normalize a PaymentMethod."""
    method_type = method.get("type")
    customer = _as_id(method.get("customer"))
    if method_type == "card":
        card = method.get("card") or {}
        return SavedMethodDetails(
            method_id=method["id"],
            method_type="card",
            customer_id=customer,
            brand=card.get("brand"),
            last4=card.get("last4"),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
            card_funding=_funding(card.get("funding")),
        )
    if method_type == "us_bank_account":
        bank = method.get("us_bank_account") or {}
        return SavedMethodDetails(
            method_id=method["id"],
            method_type="us_bank_account",
            customer_id=customer,
            last4=bank.get("last4"),
            bank_name=bank.get("bank_name"),
            blocked_code=_blocked_code(bank),
        )
    raise GatewayRequestError(f"unsupported payment method type {method_type!r}", code="unsupported_type")


def setup_result_from_intent(intent: Mapping[str, Any], *, error: Mapping[str, Any] | None = None) -> SetupResult:
    """Normalize a SetupIntent (from a response or a card error raised while saving)."""
    status = _SETUP_STATUS_MAP.get(intent.get("status") or "", "processing")
    last_error = error or intent.get("last_setup_error") or {}
    method = _as_dict(intent.get("payment_method")) or _as_dict(last_error.get("payment_method"))
    details = saved_method_from_dict(method) if method and method.get("type") in ALLOWED_PAYMENT_METHOD_TYPES else None
    failure_code = decline_code = failure_message = None
    if status == "requires_payment_method" and last_error:
        failure_code = last_error.get("code") or "setup_failed"
        decline_code = last_error.get("decline_code")
        failure_message = client_failure_message(
            method_type=details.method_type if details else None, failure_code=failure_code, decline_code=decline_code
        )
    next_action = intent.get("next_action") or {}
    microdeposits = next_action.get("verify_with_microdeposits") if status == "requires_action" else None
    arrival = (microdeposits or {}).get("arrival_date")
    kind = (microdeposits or {}).get("microdeposit_type")
    return SetupResult(
        status=status,
        setup_id=intent.get("id"),
        customer_id=_as_id(intent.get("customer")),
        payment_method_id=details.method_id if details else _as_id(intent.get("payment_method")),
        method=details,
        mandate_id=_as_id(intent.get("mandate")),
        microdeposit_type=(kind if kind in ("amounts", "descriptor_code") else "amounts") if microdeposits else None,
        microdeposits_arrive=datetime.fromtimestamp(int(arrival), UTC) if arrival else None,
        verification_url=(microdeposits or {}).get("hosted_verification_url"),
        failure_code=failure_code,
        decline_code=decline_code,
        failure_message=failure_message,
        client_secret=intent.get("client_secret") if status == "requires_action" and not microdeposits else None,
    )


def setup_result_from_error(error: Mapping[str, Any]) -> SetupResult:
    """Normalize a refused setup; Stripe embeds the SetupIntent in a card error raised while saving."""
    intent = _as_dict(error.get("setup_intent"))
    if intent is not None:
        return setup_result_from_intent(intent, error=error)
    failure_code = error.get("code") or "setup_failed"
    return SetupResult(
        status="requires_payment_method",
        setup_id=None,
        failure_code=failure_code,
        decline_code=error.get("decline_code"),
        failure_message=client_failure_message(
            method_type=None, failure_code=failure_code, decline_code=error.get("decline_code")
        ),
    )


def webhook_event_from_dict(data: Any) -> WebhookEvent:
    """Normalize a verified event. Unknown types keep only the envelope."""
    try:
        obj = data["data"]["object"]
        event_type = str(data["type"])
        envelope = {
            "id": str(data["id"]),
            "type": event_type,
            "created": datetime.fromtimestamp(int(data["created"]), UTC),
            "object_id": obj.get("id"),
        }
    except (TypeError, KeyError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidWebhook("webhook body is not a Stripe event") from exc
    try:
        if event_type.startswith("payment_intent."):
            return WebhookEvent(**envelope, charge=charge_result_from_intent(obj))
        if event_type == "charge.refunded":
            return WebhookEvent(**envelope, refund=_refund_update(obj))
        if event_type.startswith("charge.dispute."):
            return WebhookEvent(**envelope, dispute=_dispute_update(obj))
    except (TypeError, KeyError, AttributeError) as exc:
        _bad_object(event_type, exc)
    return WebhookEvent(**envelope)


def _refund_update(charge: Mapping[str, Any]) -> RefundUpdate:
    return RefundUpdate(
        payment_intent_id=_as_id(charge.get("payment_intent")),
        charge_id=charge["id"],
        amount_cents=int(charge["amount"]),
        amount_refunded_cents=int(charge["amount_refunded"]),
        currency=charge["currency"],
        fully_refunded=bool(charge.get("refunded")),
    )


def _dispute_update(dispute: Mapping[str, Any]) -> DisputeUpdate:
    return DisputeUpdate(
        dispute_id=dispute["id"],
        payment_intent_id=_as_id(dispute.get("payment_intent")),
        charge_id=_as_id(dispute.get("charge")),
        status=dispute["status"],
        amount_cents=int(dispute["amount"]),
        currency=dispute["currency"],
        reason=dispute.get("reason"),
    )


def _bad_object(event_type: str, exc: Exception) -> NoReturn:
    raise InvalidWebhook(f"{event_type} event has an unexpected object shape") from exc


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _as_id(value: Any) -> str | None:
    """An expandable field is either an id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def _blocked_code(bank: Mapping[str, Any]) -> str | None:
    """The NACHA code of the return that made Stripe block a bank account (``status_details.blocked``)."""
    blocked = (bank.get("status_details") or {}).get("blocked")
    if not blocked:
        return None
    return str(blocked.get("network_code") or blocked.get("reason") or "blocked")


def _funding(value: Any) -> CardFunding:
    return cast(CardFunding, value) if value in _FUNDING else "unknown"
