"""SetupIntents, saved PaymentMethods and mandates: saving a method for later off-session charges.

A mixin of :class:`tests.fake_stripe.ledger.Ledger` (it uses the ledger's payment methods, tokens and customers).
The rules it imitates, at API version 2026-10-28.endive:

- A SetupIntent confirmed with a card validates it: a dead card (lost, expired, declined) fails there with a 402
  ``card_error`` carrying the SetupIntent; a card that needs 3-D Secure (``pm_card_authenticationRequired``) waits
  in ``requires_action`` with ``next_action.type == "use_stripe_sdk"`` (Stripe.js runs the bank's challenge) until
  a test decides the challenge with the fake-only ``FakeStripe.authenticate_setup(intent_id, passed=...)``: passed,
  it succeeds with the card attached; failed or abandoned, it is back in ``requires_payment_method`` with
  ``last_setup_error.code == "setup_intent_authentication_failure"`` and nothing attached.
- A US bank account needs a mandate (the client's acceptance of the debit authorization), from ``mandate_data``
  or from the ConfirmationToken the Payment Element made. With ``verification_method=microdeposits`` the intent
  waits in ``requires_action`` (``next_action.verify_with_microdeposits``) until the client enters Stripe's test
  amounts 32 and 45 or the descriptor code SM11AA; three wrong tries end it. Otherwise (the test ids stand for an
  account linked instantly through Financial Connections) it succeeds at once.
- Success attaches the PaymentMethod to the customer and, for a bank account, makes the mandate active. Only an
  attached method with an active mandate can be debited off-session; a detached one can never be used again.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from .catalog import DECLINE_MESSAGES, OWN_CODE_DECLINES
from .errors import ApiError, invalid, missing, new_id

#: What the Payment Element records when the client accepts the mandate text it shows.
PAYMENT_ELEMENT_ACCEPTANCE: dict[str, Any] = {
    "type": "online",
    "online": {"ip_address": "127.0.0.1", "user_agent": "Mozilla/5.0 (fake Stripe.js)"},
}
TEST_MICRODEPOSIT_AMOUNTS = ["32", "45"]
TEST_DESCRIPTOR_CODE = "SM11AA"
MICRODEPOSIT_ATTEMPTS = 3
MICRODEPOSIT_ARRIVAL_SECONDS = 2 * 86400
_CONFIRMABLE = {"requires_payment_method", "requires_confirmation"}


class SetupIntents:
    """SetupIntent, PaymentMethod and Mandate endpoints. The caller holds the server's lock."""

    payment_methods: dict[str, dict[str, Any]]
    customers: dict[str, dict[str, Any]]
    tokens: dict[str, dict[str, Any]]
    token_methods: dict[str, str]
    used_tokens: set[str]
    setup_intents: dict[str, dict[str, Any]]
    mandates: dict[str, dict[str, Any]]
    detached: set[str]
    unverified: set[str]
    microdeposit_type: str
    base_url: str
    behaviors: dict[str, Any]

    # The ledger provides these.
    def _instantiate(self, source_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def _allowed_types(self, params: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    # --- setup intents ------------------------------------------------------------------------

    def create_setup_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer")
        if customer:
            self._live_customer(customer, param="customer")
        intent_id = new_id("seti")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "setup_intent",
            "allowed_payment_method_types": params.get("allowed_payment_method_types"),
            "application": None,
            "attach_to_self": None,
            "automatic_payment_methods": None,
            "cancellation_reason": None,
            "client_secret": f"{intent_id}_secret_{new_id('s')[2:18]}",
            "created": int(time.time()),
            "customer": customer,
            "customer_account": None,
            "description": params.get("description"),
            "excluded_payment_method_types": params.get("excluded_payment_method_types"),
            "flow_directions": None,
            "last_setup_error": None,
            "latest_attempt": None,
            "livemode": False,
            "managed_payments": None,
            "mandate": None,
            "metadata": dict(params.get("metadata") or {}),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": self._allowed_types(params),
            "single_use_mandate": None,
            "status": "requires_payment_method",
            "usage": params.get("usage") or "off_session",
        }
        self.setup_intents[intent_id] = intent
        if params.get("confirm") == "true":
            self._confirm_setup(intent, params)
        elif params.get("payment_method") or params.get("confirmation_token"):
            intent["status"] = "requires_confirmation"
            intent["_pending_params"] = {
                k: params[k] for k in ("payment_method", "confirmation_token") if k in params
            }
        return self._public(intent)

    def get_setup_intent(self, intent_id: str) -> dict[str, Any]:
        if intent_id not in self.setup_intents:
            raise missing("setup_intent", intent_id)
        return self._public(self.setup_intents[intent_id])

    def confirm_setup_intent(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if intent_id not in self.setup_intents:
            raise missing("setup_intent", intent_id)
        intent = self.setup_intents[intent_id]
        if intent["status"] not in _CONFIRMABLE:
            raise invalid(
                f"You cannot confirm this SetupIntent because it has a status of {intent['status']}.",
                code="setup_intent_unexpected_state",
            )
        merged = {**intent.pop("_pending_params", {}), **params}
        self._confirm_setup(intent, merged)
        return self._public(intent)

    def _confirm_setup(self, intent: dict[str, Any], params: dict[str, Any]) -> None:
        method, token = self._setup_method(intent, params)
        if method["type"] not in intent["payment_method_types"]:
            raise invalid(
                f"The PaymentMethod provided ({method['type']}) is not allowed for this SetupIntent.",
                param="payment_method",
            )
        intent["payment_method"] = method["id"]
        intent["last_setup_error"] = None
        options = params.get("payment_method_options") or {}
        if method["type"] == "us_bank_account":
            acceptance = (params.get("mandate_data") or (token or {}).get("mandate_data") or {}).get(
                "customer_acceptance"
            )
            if not acceptance:
                raise invalid(
                    "A mandate is required to set up a us_bank_account PaymentMethod: pass mandate_data with the "
                    "customer's acceptance.",
                    param="mandate_data",
                    code="parameter_missing",
                )
            verification = (options.get("us_bank_account") or {}).get("verification_method") or "automatic"
            intent["payment_method_options"] = {
                "us_bank_account": {"verification_method": verification, "mandate_options": {}}
            }
            intent["_acceptance"] = acceptance
            if verification == "microdeposits":
                self._await_microdeposits(intent, method)
                return
            self._setup_succeeded(intent, method)
            return
        behavior = self.behaviors[method["id"]]
        if not behavior.saves:
            self._setup_declined(intent, method, behavior.decline_code or "generic_decline")
        if behavior.behavior == "authenticate":
            url = f"{self.base_url}/fake/3ds/{intent['id']}"
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": url},
            }
            return
        self._setup_succeeded(intent, method)

    def _setup_method(
        self, intent: dict[str, Any], params: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        token_id, method_id = self._method_source(params)
        if token_id:
            token = self._unused_token(token_id)
            self.used_tokens.add(token_id)
            token["setup_intent"] = intent["id"]
            return self._instantiate(self.token_methods[token_id]), token
        if not method_id:
            raise invalid(
                "You cannot confirm this SetupIntent because it's missing a payment method.",
                code="setup_intent_unexpected_state",
            )
        method = self._instantiate(method_id)
        if method["id"] in self.detached:
            raise invalid(
                "The provided PaymentMethod was detached from a Customer. It may not be used again.",
                param="payment_method",
            )
        owner = method.get("customer")
        if owner is not None and owner != intent["customer"]:
            raise invalid("The provided PaymentMethod belongs to another customer.", param="payment_method")
        return method, None

    # --- shared with PaymentIntents ---------------------------------------------------------------

    @staticmethod
    def _method_source(params: dict[str, Any]) -> tuple[str | None, str | None]:
        """The ``confirmation_token`` and ``payment_method`` of a confirmation: at most one of them."""
        token_id, method_id = params.get("confirmation_token"), params.get("payment_method")
        if token_id and method_id:
            raise invalid("You cannot provide both confirmation_token and payment_method.")
        return token_id, method_id

    def _unused_token(self, token_id: str) -> dict[str, Any]:
        token = self.tokens.get(token_id)
        if token is None:
            raise missing("confirmation_token", token_id, param="confirmation_token")
        if token_id in self.used_tokens:
            raise invalid("This ConfirmationToken has already been used.", param="confirmation_token")
        return token

    def _setup_succeeded(self, intent: dict[str, Any], method: dict[str, Any]) -> None:
        intent.update(status="succeeded", next_action=None)
        self.unverified.discard(method["id"])
        if intent["customer"]:
            method["customer"] = intent["customer"]
        if method["type"] == "us_bank_account":
            acceptance = intent.pop("_acceptance", None) or PAYMENT_ELEMENT_ACCEPTANCE
            intent["mandate"] = self.create_mandate(method, {"customer_acceptance": acceptance})["id"]

    def _setup_declined(self, intent: dict[str, Any], method: dict[str, Any], decline_code: str) -> None:
        code = decline_code if decline_code in OWN_CODE_DECLINES else "card_declined"
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": DECLINE_MESSAGES.get(decline_code, DECLINE_MESSAGES["generic_decline"]),
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "payment_method": copy.deepcopy(method),
            "payment_method_type": "card",
        }
        intent.update(status="requires_payment_method", payment_method=None, last_setup_error=error)
        raise ApiError(402, {**error, "setup_intent": self._public(intent)})

    def _await_microdeposits(self, intent: dict[str, Any], method: dict[str, Any]) -> None:
        self.unverified.add(method["id"])
        intent["status"] = "requires_action"
        intent["next_action"] = {
            "type": "verify_with_microdeposits",
            "verify_with_microdeposits": {
                "arrival_date": int(time.time()) + MICRODEPOSIT_ARRIVAL_SECONDS,
                "hosted_verification_url": f"{self.base_url}/fake/microdeposits/{intent['id']}",
                "microdeposit_type": self.microdeposit_type,
            },
        }
        intent["_attempts_left"] = MICRODEPOSIT_ATTEMPTS

    def verify_microdeposits(self, intent_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if intent_id not in self.setup_intents:
            raise missing("setup_intent", intent_id)
        intent = self.setup_intents[intent_id]
        waiting = (intent.get("next_action") or {}).get("verify_with_microdeposits")
        if intent["status"] != "requires_action" or waiting is None:
            raise invalid(
                f"This SetupIntent is not awaiting microdeposit verification (status {intent['status']}).",
                code="setup_intent_unexpected_state",
            )
        amounts, code = params.get("amounts"), params.get("descriptor_code")
        if (amounts is None) == (code is None):
            raise invalid("Provide exactly one of amounts or descriptor_code.", param="amounts")
        if waiting["microdeposit_type"] == "descriptor_code":
            if code is None:
                raise invalid("This account was verified with a descriptor code, not amounts.", param="amounts")
            matched, mismatch = code == TEST_DESCRIPTOR_CODE, "descriptor_code_mismatch"
        else:
            if amounts is None:
                raise invalid("This account was verified with amounts, not a descriptor code.", param="amounts")
            if len(amounts) != 2:
                raise invalid(
                    "Two amounts are required.",
                    param="amounts",
                    code="payment_method_microdeposit_verification_amounts_invalid",
                )
            matched, mismatch = sorted(amounts, key=int) == TEST_MICRODEPOSIT_AMOUNTS, "amounts_mismatch"
        method = self.payment_methods[intent["payment_method"]]
        if matched:
            self._setup_succeeded(intent, method)
            return self._public(intent)
        intent["_attempts_left"] -= 1
        if intent["_attempts_left"] > 0:
            raise invalid(
                "The verification values provided do not match what was sent to the bank account. "
                f"You have {intent['_attempts_left']} verification attempts remaining.",
                code=f"payment_method_microdeposit_verification_{mismatch}",
            )
        error = {
            "type": "invalid_request_error",
            "code": "payment_method_microdeposit_verification_attempts_exceeded",
            "message": "You have exceeded the number of allowed verification attempts.",
        }
        intent.update(status="requires_payment_method", next_action=None, last_setup_error=error)
        raise ApiError(400, error)

    def authenticate_setup(self, intent_id: str, *, passed: bool = True) -> dict[str, Any]:
        """The client passes (or fails, or abandons) 3-D Secure while saving a card. Test-only: at Stripe the
        challenge runs between Stripe.js and the bank; here a test decides its outcome."""
        intent = self.setup_intents.get(intent_id)
        if intent is None:
            raise missing("setup_intent", intent_id)
        if intent["status"] != "requires_action" or intent["next_action"]["type"] != "use_stripe_sdk":
            raise invalid("SetupIntent does not require authentication.", code="setup_intent_unexpected_state")
        method = self.payment_methods[intent["payment_method"]]
        if passed:
            self._setup_succeeded(intent, method)
            return self._public(intent)
        # As Stripe answers a failed challenge: back to requires_payment_method, the card not attached, the reason
        # in last_setup_error (an invalid_request_error, not a card decline).
        intent.update(
            status="requires_payment_method",
            next_action=None,
            payment_method=None,
            last_setup_error={
                "type": "invalid_request_error",
                "code": "setup_intent_authentication_failure",
                "doc_url": "https://stripe.com/docs/error-codes/setup-intent-authentication-failure",
                "message": "The latest attempt to set up the payment method has failed because authentication "
                "failed.",
                "payment_method": copy.deepcopy(method),
                "payment_method_type": method["type"],
            },
        )
        return self._public(intent)

    @staticmethod
    def _public(intent: dict[str, Any]) -> dict[str, Any]:
        """The intent without the fake's private bookkeeping (keys starting with an underscore)."""
        return {k: v for k, v in intent.items() if not k.startswith("_")}

    # --- mandates -----------------------------------------------------------------------------

    def create_mandate(self, method: dict[str, Any], mandate_data: dict[str, Any]) -> dict[str, Any]:
        acceptance = copy.deepcopy(mandate_data["customer_acceptance"])
        accepted_at = acceptance.get("accepted_at")
        mandate = {
            "id": new_id("mandate"),
            "object": "mandate",
            "customer_acceptance": {
                "accepted_at": int(accepted_at) if accepted_at else int(time.time()),
                "offline": acceptance.get("offline"),
                "online": acceptance.get("online"),
                "type": acceptance.get("type", "online"),
            },
            "livemode": False,
            "multi_use": {},
            "on_behalf_of": None,
            "payment_method": method["id"],
            "payment_method_details": {"type": "us_bank_account", "us_bank_account": {"collection_method": None}},
            "single_use": None,
            "status": "active",
            "type": "multi_use",
        }
        self.mandates[mandate["id"]] = mandate
        return mandate

    def active_mandate(self, method_id: str) -> dict[str, Any] | None:
        return next(
            (m for m in self.mandates.values() if m["payment_method"] == method_id and m["status"] == "active"), None
        )

    def get_mandate(self, mandate_id: str) -> dict[str, Any]:
        if mandate_id not in self.mandates:
            raise missing("mandate", mandate_id)
        return self.mandates[mandate_id]

    # --- payment methods ----------------------------------------------------------------------

    def get_payment_method(self, method_id: str) -> dict[str, Any]:
        if method_id not in self.payment_methods:
            raise missing("PaymentMethod", method_id)
        return self.payment_methods[method_id]

    def attach_payment_method(self, method_id: str, params: dict[str, Any]) -> dict[str, Any]:
        method = self._instantiate(method_id) if method_id not in self.payment_methods else None
        method = method or self.get_payment_method(method_id)
        customer = params["customer"]
        self._live_customer(customer, param="customer")
        if method["type"] == "us_bank_account":
            raise invalid(
                "us_bank_account PaymentMethods must be verified and given a mandate through a SetupIntent "
                "before they can be attached.",
                param="payment_method",
            )
        if method["id"] in self.detached:
            raise invalid("This PaymentMethod was previously detached from a Customer. It may not be used again.")
        if method["customer"] not in (None, customer):
            raise invalid("The payment method you provided is already attached to another customer.")
        method["customer"] = customer
        return method

    def detach_payment_method(self, method_id: str) -> dict[str, Any]:
        method = self.get_payment_method(method_id)
        if method["customer"] is None:
            raise invalid(
                "The payment method you provided is not attached to a customer so detachment is impossible.",
                code="payment_method_unexpected_state",
            )
        method["customer"] = None
        self.detached.add(method_id)
        for mandate in self.mandates.values():
            if mandate["payment_method"] == method_id:
                mandate["status"] = "inactive"
        return method

    def customer_payment_method(self, customer_id: str, method_id: str) -> dict[str, Any]:
        self._live_customer(customer_id)
        method = self.payment_methods.get(method_id)
        if method is None or method["customer"] != customer_id:
            raise missing("PaymentMethod", method_id)  # another customer's method is "no such", as in Stripe
        return method

    def customer_payment_methods(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        self._live_customer(customer_id)
        kind = params.get("type")
        limit = int(params.get("limit") or 10)
        if not 1 <= limit <= 100:
            raise invalid("Limit must be between 1 and 100.", param="limit")
        found = [
            m for m in self.payment_methods.values() if m["customer"] == customer_id and kind in (None, m["type"])
        ]
        found.sort(key=lambda m: m["created"], reverse=True)
        return {
            "object": "list",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "url": f"/v1/customers/{customer_id}/payment_methods",
        }

    def _live_customer(self, customer_id: str, *, param: str = "id") -> None:
        if customer_id not in self.customers or self.customers[customer_id].get("deleted"):
            raise missing("customer", customer_id, param=param)
