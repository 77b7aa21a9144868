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
    decline_code: str | None = None  # cards: the decline; bank accounts: the failure code of the return
    #: Whether a SetupIntent saves it. Stripe validates a card when it is set up, so a dead card (lost, expired,
    #: declined outright) fails there; a $0 check cannot see funds, and 4000000000000341 exists to attach and
    #: then fail, so those two save and decline only when charged.
    saves: bool = True


TEST_METHODS: dict[str, TestMethod] = {
    "pm_card_visa": TestMethod("card", "succeed", "4242", "visa", "credit"),
    "pm_card_mastercard": TestMethod("card", "succeed", "4444", "mastercard", "credit"),
    "pm_card_visa_debit": TestMethod("card", "succeed", "5556", "visa", "debit"),
    "pm_card_mastercard_prepaid": TestMethod("card", "succeed", "5100", "mastercard", "prepaid"),
    "pm_card_chargeDeclined": TestMethod("card", "decline", "0002", "visa", "credit", "generic_decline", saves=False),
    "pm_card_chargeDeclinedInsufficientFunds": TestMethod(
        "card", "decline", "9995", "visa", "credit", "insufficient_funds"
    ),
    "pm_card_chargeDeclinedLostCard": TestMethod("card", "decline", "9987", "visa", "credit", "lost_card", saves=False),
    "pm_card_chargeDeclinedExpiredCard": TestMethod(
        "card", "decline", "0069", "visa", "credit", "expired_card", saves=False
    ),
    "pm_card_chargeCustomerFail": TestMethod("card", "decline", "0341", "visa", "credit", "generic_decline"),
    # 3D Secure required: on-session -> requires_action; off-session -> authentication_required.
    "pm_card_authenticationRequired": TestMethod("card", "authenticate", "3184", "visa", "credit"),
    "pm_usBankAccount_success": TestMethod("us_bank_account", "ach_success", "6789"),
    "pm_usBankAccount_processing": TestMethod("us_bank_account", "ach_processing", "6789"),
    "pm_usBankAccount_insufficientFunds": TestMethod(
        "us_bank_account", "ach_fail", "2227", decline_code="insufficient_funds"
    ),
    "pm_usBankAccount_accountClosed": TestMethod("us_bank_account", "ach_fail", "1113", decline_code="account_closed"),
}

#: Card errors whose ``code`` is the decline itself; every other decline has ``code=card_declined``.
OWN_CODE_DECLINES = frozenset({"authentication_required", "expired_card", "incorrect_cvc", "processing_error"})

#: ACH failure codes and the NACHA return that causes them. Stripe reports a return by name; after a return that
#: makes the account unusable it also blocks the PaymentMethod with the network code
#: (``us_bank_account.status_details.blocked``). R01 (insufficient funds) may be presented again, so it blocks nothing.
ACH_RETURNS = {
    "insufficient_funds": ("R01", None),
    "account_closed": ("R02", "bank_account_closed"),
    "no_account": ("R03", "bank_account_invalid_details"),
    "invalid_account_number": ("R04", "bank_account_invalid_details"),
    "debit_not_authorized": ("R10", "debit_not_authorized"),
}

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
    "lost_card": "Your card was declined.",
    "expired_card": "Your card has expired.",
}
ACH_FAILURE_MESSAGES = {
    "insufficient_funds": "The customer's account has insufficient funds to cover this payment.",
    "account_closed": "The customer's bank account has been closed.",
    "no_account": "The customer's bank account could not be located.",
    "debit_not_authorized": "The customer has notified their bank that this payment was unauthorized.",
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
            "fingerprint": f"fp_fake_{method.last4}",
            "financial_connections_account": None,
            "networks": {"preferred": "ach", "supported": ["ach"]},
            "status_details": None,
        },
    }
