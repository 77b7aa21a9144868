"""Stripe's test payment-method ids and how the fake makes each one behave.

Real Stripe treats ``pm_card_visa`` and friends as templates: every use creates a fresh
``pm_...`` object. The fake does the same, so saving a method for later off-session charges and
reusing a detached method behave as they do against Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TestMethod:
    """One of Stripe's magic test payment methods."""

    __test__ = False  # not a pytest test class despite the name

    type: str  # "card" | "us_bank_account"
    behavior: str  # succeed | decline | authenticate | ach_success | ach_processing | ach_fail
    last4: str
    brand: str | None = None
    funding: str | None = None
    decline_code: str | None = None


TEST_METHODS: dict[str, TestMethod] = {
    "pm_card_visa": TestMethod("card", "succeed", "4242", "visa", "credit"),
    "pm_card_mastercard": TestMethod("card", "succeed", "4444", "mastercard", "credit"),
    "pm_card_visa_debit": TestMethod("card", "succeed", "5556", "visa", "debit"),
    "pm_card_mastercard_prepaid": TestMethod("card", "succeed", "5100", "mastercard", "prepaid"),
    "pm_card_chargeDeclined": TestMethod("card", "decline", "0002", "visa", "credit", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": TestMethod(
        "card", "decline", "9995", "visa", "credit", "insufficient_funds"
    ),
    # 3D Secure required: on-session -> requires_action; off-session -> authentication_required.
    "pm_card_authenticationRequired": TestMethod("card", "authenticate", "3184", "visa", "credit"),
    "pm_usBankAccount_success": TestMethod("us_bank_account", "ach_success", "6789"),
    "pm_usBankAccount_processing": TestMethod("us_bank_account", "ach_processing", "6789"),
    "pm_usBankAccount_insufficientFunds": TestMethod("us_bank_account", "ach_fail", "2227"),
}

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
}
ACH_FAILURE_MESSAGES = {
    "insufficient_funds": "The customer's account has insufficient funds to cover this payment.",
    "account_closed": "The customer's bank account has been closed.",
}


def method_details(method: TestMethod) -> dict[str, Any]:
    """The type-specific part of a PaymentMethod (and of a ConfirmationToken preview)."""
    if method.type == "card":
        return {
            "type": "card",
            "card": {
                "brand": method.brand,
                "funding": method.funding,
                "last4": method.last4,
                "exp_month": 12,
                "exp_year": 2034,
                "country": "US",
                "wallet": None,
            },
        }
    return {
        "type": "us_bank_account",
        "us_bank_account": {
            "bank_name": "STRIPE TEST BANK",
            "last4": method.last4,
            "routing_number": "110000000",
            "account_type": "checking",
            "account_holder_type": "company",
        },
    }
