"""In-memory Stripe objects and the rules the fake enforces on them.

Plain dicts shaped like Stripe's JSON. Every method expects the caller (the server) to hold its
lock. Errors are raised as :class:`ApiError` carrying Stripe's status code and error object.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from .catalog import (
    ACH_FAILURE_MESSAGES,
    ACH_RETURNS,
    DECLINE_MESSAGES,
    OWN_CODE_DECLINES,
    TEST_METHODS,
    TestMethod,
    method_details,
)
from .errors import ApiError, invalid, missing, new_id
from .setups import PAYMENT_ELEMENT_ACCEPTANCE, SetupIntents

__all__ = ["ApiError", "Ledger", "invalid", "missing", "new_id"]

MINIMUM_AMOUNT = 50  # Stripe's minimum charge for USD, in cents
CONFIRMATION_TOKEN_TTL = 12 * 3600
#: What the fake account's Dashboard enables, used when a request names no payment method types.
DASHBOARD_PAYMENT_METHOD_TYPES = ("card", "us_bank_account")
_EXCLUSIVE_WITH_ALLOWED = ("excluded_payment_method_types", "automatic_payment_methods", "payment_method_configuration")
_CURRENCIES = {"us_bank_account": {"usd"}}  # types limited to some currencies; the others take any
_CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"}


class Ledger(SetupIntents):
    """The fake's state. ``base_url`` is used for the fake 3-D Secure and microdeposit page addresses."""

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.behaviors: dict[str, TestMethod] = {}  # concrete pm id -> scripted behaviour
        self.tokens: dict[str, dict[str, Any]] = {}
        self.token_methods: dict[str, str] = {}  # ctoken id -> pm template or saved pm id
        self.used_tokens: set[str] = set()
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.setup_intents: dict[str, dict[str, Any]] = {}
        self.mandates: dict[str, dict[str, Any]] = {}
        self.detached: set[str] = set()  # detached methods can never be used again
        self.unverified: set[str] = set()  # bank accounts whose microdeposits are not verified yet
        self.microdeposit_type = "amounts"  # what the next microdeposit verification asks for

    # --- customers ----------------------------------------------------------------------------

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": new_id("cus"),
            "object": "customer",
            "created": int(time.time()),
            "livemode": False,
            "name": params.get("name"),
            "email": params.get("email"),
            "description": params.get("description"),
            "metadata": dict(params.get("metadata") or {}),
        }
        self.customers[customer["id"]] = customer
        return customer

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        if customer_id not in self.customers:
            raise missing("customer", customer_id)
        return self.customers[customer_id]

    def delete_customer(self, customer_id: str) -> dict[str, Any]:
        customer = self.get_customer(customer_id)
        self.customers[customer_id] = {"id": customer["id"], "object": "customer", "deleted": True}
        return self.customers[customer_id]

    # --- payment methods and confirmation tokens ----------------------------------------------

    def _instantiate(self, source_id: str) -> dict[str, Any]:
        """A fresh PaymentMethod from a test template, or the saved one itself."""
        if source_id in self.payment_methods:
            return self.payment_methods[source_id]
        template = TEST_METHODS.get(source_id)
        if template is None:
            raise missing("PaymentMethod", source_id, param="payment_method")
        method = {
            "id": new_id("pm"),
            "object": "payment_method",
            "created": int(time.time()),
            "livemode": False,
            "customer": None,
            "metadata": {},
            "billing_details": {"name": None, "email": None, "address": None, "phone": None},
            "allow_redisplay": "unspecified",
            **method_details(template),
        }
        self.payment_methods[method["id"]] = method
        self.behaviors[method["id"]] = template
        return method

    def create_confirmation_token(self, params: dict[str, Any]) -> dict[str, Any]:
        source = params.get("payment_method")
        if not source:
            raise invalid("Missing required param: payment_method.", param="payment_method")
        if source in TEST_METHODS:
            details = method_details(TEST_METHODS[source])
        elif source in self.payment_methods:
            details = {
                k: v for k, v in self.payment_methods[source].items() if k in {"type", "card", "us_bank_account"}
            }
        else:
            raise missing("PaymentMethod", source, param="payment_method")
        now = int(time.time())
        # The Payment Element shows the ACH mandate text and puts the client's acceptance in the token.
        mandate_data = (
            {"customer_acceptance": copy.deepcopy(PAYMENT_ELEMENT_ACCEPTANCE)}
            if details["type"] == "us_bank_account"
            else None
        )
        token = {
            "id": new_id("ctoken"),
            "object": "confirmation_token",
            "created": now,
            "expires_at": now + CONFIRMATION_TOKEN_TTL,
            "livemode": False,
            "mandate_data": mandate_data,
            "metadata": {},
            "payment_intent": None,
            "payment_method_options": None,
            "payment_method_preview": {
                "billing_details": {"name": None, "email": None, "address": None, "phone": None},
                "allow_redisplay": "unspecified",
                "customer": None,
                **details,
            },
            "return_url": params.get("return_url"),
            "setup_future_usage": params.get("setup_future_usage"),
            "setup_intent": None,
            "shipping": None,
            "use_stripe_sdk": True,
        }
        self.tokens[token["id"]] = token
        self.token_methods[token["id"]] = source
        return token

    def get_confirmation_token(self, token_id: str) -> dict[str, Any]:
        if token_id not in self.tokens:
            raise missing("confirmation_token", token_id)
        return self.tokens[token_id]

    # --- payment intents ----------------------------------------------------------------------

    def create_payment_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = _int_param(params, "amount")
        if amount < MINIMUM_AMOUNT:
            raise invalid("Amount must be at least $0.50 usd", param="amount", code="amount_too_small")
        currency = params.get("currency")
        if not currency:
            raise invalid("Missing required param: currency.", param="currency")
        customer = params.get("customer")
        if customer:
            self._live_customer(customer, param="customer")
        confirm = params.get("confirm") == "true"
        off_session = params.get("off_session") in {"true", "one_off", "recurring"}
        if off_session and not confirm:
            raise invalid("off_session can only be used when confirm=true.", param="off_session")
        future_usage = params.get("setup_future_usage") or None
        if future_usage and not customer:
            raise invalid("A customer is required to save a payment method.", param="customer")
        method = self._method_for_intent(params, customer, future_usage)
        bank = method is not None and method["type"] == "us_bank_account"
        if off_session and bank and method is not None and self.active_mandate(method["id"]) is None:
            raise invalid(
                "A mandate is required to debit this bank account off-session. Set it up with a SetupIntent "
                "and mandate_data first.",
                param="mandate",
                code="mandate_required",
            )
        allowed = _payment_method_types(params, currency.lower())
        if method is not None and method["type"] not in allowed:
            raise invalid(
                f"The PaymentMethod provided ({method['type']}) is not allowed for this PaymentIntent.",
                param="payment_method",
            )
        intent_id = new_id("pi")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "allowed_payment_method_types": params.get("allowed_payment_method_types"),
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency.lower(),
            "customer": customer,
            "description": params.get("description"),
            "excluded_payment_method_types": params.get("excluded_payment_method_types"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": dict(params.get("metadata") or {}),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": method["id"] if method else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": allowed,
            "processing": None,
            "receipt_email": params.get("receipt_email"),
            "review": None,
            "setup_future_usage": future_usage,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method" if method is None else "requires_confirmation",
            "transfer_data": None,
            "transfer_group": None,
        }
        self.payment_intents[intent_id] = intent
        if confirm:
            if method is None:
                raise invalid(
                    "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    code="payment_intent_unexpected_state",
                )
            self._confirm(intent, method, off_session=off_session, return_url=params.get("return_url"))
        return intent

    def _method_for_intent(
        self, params: dict[str, Any], customer: str | None, future_usage: str | None
    ) -> dict[str, Any] | None:
        token_id, method_id = self._method_source(params)
        if token_id:
            token = self._unused_token(token_id)
            if token["setup_future_usage"] != future_usage:
                raise invalid(
                    f"The provided setup_future_usage ({future_usage}) does not match the "
                    f"setup_future_usage of the ConfirmationToken ({token['setup_future_usage']}).",
                    param="setup_future_usage",
                )
            self.used_tokens.add(token_id)
            return self._instantiate(self.token_methods[token_id])
        if method_id:
            method = self._instantiate(method_id)
            owner = method.get("customer")
            if owner is not None and owner != customer:
                raise invalid("The provided PaymentMethod belongs to another customer.", param="payment_method")
            if method["id"] in self.unverified:
                raise invalid(
                    "The PaymentMethod cannot be used until its microdeposits are verified.",
                    param="payment_method",
                    code="payment_method_unactivated",
                )
            # "used" only asked about a method without a customer: it scans every PaymentIntent
            if owner is None and method_id not in TEST_METHODS and (
                self._was_used(method["id"]) or method["id"] in self.detached
            ):
                raise invalid(
                    "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
                    "attachment, or was detached from a Customer. It may not be used again.",
                    param="payment_method",
                )
            return method
        return None

    def _allowed_types(self, params: dict[str, Any]) -> list[str]:
        """A SetupIntent's ``payment_method_types``: it has no currency, so nothing is dropped for one."""
        return _payment_method_types(params, "usd")

    def _was_used(self, method_id: str) -> bool:
        return any(pi["payment_method"] == method_id for pi in self.payment_intents.values())

    def _confirm(
        self, intent: dict[str, Any], method: dict[str, Any], *, off_session: bool, return_url: str | None
    ) -> None:
        behavior = self.behaviors[method["id"]]
        if behavior.behavior in {"succeed", "ach_success", "ach_processing", "ach_fail"}:
            pending = behavior.type == "us_bank_account"
            self._new_charge(intent, "pending" if pending else "succeeded")
            intent["status"] = "processing" if pending else "succeeded"
            intent["amount_received"] = 0 if pending else intent["amount"]
            if intent["setup_future_usage"]:
                method["customer"] = intent["customer"]
                if pending:  # saved for later debits: the token carried the Payment Element's mandate
                    self.create_mandate(method, {"customer_acceptance": PAYMENT_ELEMENT_ACCEPTANCE})
        elif behavior.behavior == "decline" or (behavior.behavior == "authenticate" and off_session):
            code = "authentication_required" if behavior.behavior == "authenticate" else behavior.decline_code
            self._decline(intent, method, code or "generic_decline")
        elif behavior.behavior == "authenticate":
            intent["status"] = "requires_action"
            url = f"{self.base_url}/fake/3ds/{intent['id']}"
            if return_url:
                intent["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {"url": url, "return_url": return_url},
                }
            else:
                intent["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": url},
                }

    def _new_charge(self, intent: dict[str, Any], status: str) -> dict[str, Any]:
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if status == "succeeded" else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "balance_transaction": None,
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "captured": status == "succeeded",
            "created": int(time.time()),
            "currency": intent["currency"],
            "customer": intent["customer"],
            "description": intent["description"],
            "disputed": False,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "paid": status == "succeeded",
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "refunded": False,
            "status": status,
        }
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        return charge

    def _decline(self, intent: dict[str, Any], method: dict[str, Any], decline_code: str) -> None:
        charge = self._new_charge(intent, "failed")
        code = decline_code if decline_code in OWN_CODE_DECLINES else "card_declined"
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": DECLINE_MESSAGES.get(decline_code, DECLINE_MESSAGES["generic_decline"]),
            "charge": charge["id"],
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "payment_method": copy.deepcopy(method),
        }
        charge.update(failure_code=code, failure_message=error["message"])
        intent.update(status="requires_payment_method", last_payment_error=error)
        raise ApiError(402, {**error, "payment_intent": copy.deepcopy(intent)})

    def get_payment_intent(self, intent_id: str) -> dict[str, Any]:
        if intent_id not in self.payment_intents:
            raise missing("payment_intent", intent_id)
        return self.payment_intents[intent_id]

    def cancel_payment_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.get_payment_intent(intent_id)
        if intent["status"] not in _CANCELABLE:
            raise invalid(
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent.update(status="canceled", cancellation_reason=params.get("cancellation_reason"), next_action=None)
        return intent

    def settle(self, intent_id: str) -> dict[str, Any]:
        """Let the (fake) bank decide a processing debit: succeeds unless scripted to fail."""
        intent = self.get_payment_intent(intent_id)
        behavior = self.behaviors[intent["payment_method"]]
        if behavior.behavior == "ach_fail":
            return self.fail(intent_id, behavior.decline_code or "insufficient_funds")
        return self._succeed(intent)

    def fail(self, intent_id: str, code: str = "insufficient_funds") -> dict[str, Any]:
        """Fail a processing debit, as a bank return does days later.

        A return that makes the account unusable (R02 closed, R03 no account ...) also blocks the PaymentMethod
        with its NACHA code, which is the only place Stripe shows the R code.
        """
        intent = self.get_payment_intent(intent_id)
        self._require_processing(intent)
        method = self.payment_methods[intent["payment_method"]]
        network_code, blocked_reason = ACH_RETURNS.get(code, (None, None))
        if blocked_reason is not None:
            method["us_bank_account"]["status_details"] = {
                "blocked": {"network_code": network_code, "reason": blocked_reason}
            }
        message = ACH_FAILURE_MESSAGES.get(code, "The payment failed.")
        intent["last_payment_error"] = {
            "type": "card_error",  # Stripe reports bank debit failures in the same structure
            "code": code,
            "message": message,
            "payment_method": copy.deepcopy(method),
        }
        self.charges[intent["latest_charge"]].update(status="failed", failure_code=code, failure_message=message)
        intent["status"] = "requires_payment_method"
        return intent

    def authenticate(self, intent_id: str) -> dict[str, Any]:
        """The client completes 3-D Secure for a requires_action intent."""
        intent = self.get_payment_intent(intent_id)
        if intent["status"] != "requires_action":
            raise invalid("PaymentIntent does not require action.", code="payment_intent_unexpected_state")
        intent["next_action"] = None
        self._new_charge(intent, "succeeded")
        intent.update(status="succeeded", amount_received=intent["amount"])
        return intent

    def _succeed(self, intent: dict[str, Any]) -> dict[str, Any]:
        self._require_processing(intent)
        charge = self.charges[intent["latest_charge"]]
        charge.update(status="succeeded", paid=True, captured=True, amount_captured=intent["amount"])
        intent.update(status="succeeded", amount_received=intent["amount"])
        return intent

    @staticmethod
    def _require_processing(intent: dict[str, Any]) -> None:
        if intent["status"] != "processing":
            raise ValueError(f"{intent['id']} is {intent['status']}, not processing")

    # --- refunds and disputes -----------------------------------------------------------------

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise invalid("Missing required param: payment_intent.", param="payment_intent")
        if intent_id not in self.payment_intents:
            raise missing("payment_intent", intent_id, param="payment_intent")
        intent = self.payment_intents[intent_id]
        if intent["status"] != "succeeded":
            raise invalid("This PaymentIntent does not have a successful charge to refund.", param="payment_intent")
        charge = self.charges[intent["latest_charge"]]
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining == 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = _int_param(params, "amount") if "amount" in params else remaining
        if amount <= 0:
            raise invalid("Invalid positive integer", param="amount")
        if amount > remaining:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                param="amount",
                code="amount_too_large",
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        is_bank = self.payment_methods[intent["payment_method"]]["type"] == "us_bank_account"
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "description": None,
            "failure_reason": None,
            "metadata": dict(params.get("metadata") or {}),
            "payment_intent": intent_id,
            "reason": params.get("reason"),
            "status": "pending" if is_bank else "succeeded",  # bank refunds take days
        }
        self.refunds[refund["id"]] = refund
        return refund

    def create_dispute(self, intent_id: str, *, reason: str, amount: int | None) -> dict[str, Any]:
        intent = self.get_payment_intent(intent_id)
        charge = self.charges[intent["latest_charge"]]
        charge["disputed"] = True
        dispute = {
            "id": new_id("dp"),
            "object": "dispute",
            "amount": charge["amount"] if amount is None else amount,
            "balance_transactions": [],
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "enhanced_eligibility_types": [],
            "evidence": {"enhanced_evidence": {}},
            "evidence_details": {
                "due_by": int(time.time()) + 7 * 86400,
                "enhanced_eligibility": {},
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
                "submission_method": "not_submitted",
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": intent_id,
            "reason": reason,
            "status": "needs_response",
        }
        self.disputes[dispute["id"]] = dispute
        return dispute

    # --- expansion ----------------------------------------------------------------------------

    def expand(self, obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        """A copy of ``obj`` with the requested id fields replaced by their objects."""
        result = copy.deepcopy(obj)
        stores = {
            "payment_method": self.payment_methods,
            "latest_charge": self.charges,
            "customer": self.customers,
            "payment_intent": self.payment_intents,
            "mandate": self.mandates,
        }
        for field in fields:
            store = stores.get(field)
            if store is None or field not in result:
                raise invalid(f"This property cannot be expanded ({field}).", param="expand")
            if result[field] in store:
                result[field] = copy.deepcopy(store[result[field]])
        return result


def _payment_method_types(params: dict[str, Any], currency: str) -> list[str]:
    """The intent's ``payment_method_types`` as endive computes them.

    Without ``allowed_payment_method_types`` the account's Dashboard settings decide (dynamic payment methods),
    less any ``excluded_payment_method_types``. Either way Stripe silently drops types that cannot pay in the
    intent's currency (changelog 2026-07-29.dahlia, "allowed payment method types parameter").
    """
    allowed = params.get("allowed_payment_method_types")
    if allowed is not None:
        given = [name for name in _EXCLUSIVE_WITH_ALLOWED if name in params]
        if given:
            names = ", ".join(["allowed_payment_method_types", *given])
            raise invalid(f"You may only specify one of these parameters: {names}.", code="parameters_exclusive")
        candidates = list(allowed)
    else:
        excluded = set(params.get("excluded_payment_method_types") or [])
        candidates = [name for name in DASHBOARD_PAYMENT_METHOD_TYPES if name not in excluded]
    return [name for name in candidates if currency in _CURRENCIES.get(name, {currency})]


def _int_param(params: dict[str, Any], name: str) -> int:
    value = params.get(name)
    if value is None:
        raise invalid(f"Missing required param: {name}.", param=name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid("Invalid integer: " + str(value), param=name) from None
