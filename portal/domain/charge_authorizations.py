"""One-off charge authorizations: "charge $X to the card on file (or a new card) now for the overdue balance",
sent by the MSP when an on-hold client asks for urgent service and signed by the client before it is charged.

The document is a template the MSP may edit and publish as versions (kind ``charge_authorization``, registered in
portal.domain.terms); the per-authorization data below fills it. Pure standard library.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from .errors import DomainError

CHARGE_AUTHORIZATION = "charge_authorization"
KINDS = (CHARGE_AUTHORIZATION,)
TITLES = {CHARGE_AUTHORIZATION: "One-off charge authorization"}

#: How long a sent authorization can be signed; urgent service is urgent, and the balance changes.
DEFAULT_VALID_DAYS = 7
MAX_VALID_DAYS = 30


class ChargeAuthorizationStatus(StrEnum):
    SENT = "sent"  # waiting for the client's signature
    SIGNED = "signed"  # signed; the charge is on its way (or waits for a new card at the checkout)
    CHARGED = "charged"  # the charge succeeded
    FAILED = "failed"  # the charge was declined; the signed document stays
    CANCELED = "canceled"  # withdrawn by the MSP: before signing, or signed but never paid
    EXPIRED = "expired"  # not signed in time


S = ChargeAuthorizationStatus
FINAL = frozenset({S.CHARGED, S.FAILED, S.CANCELED, S.EXPIRED})
#: What the MSP may cancel: one waiting for a signature, or one signed whose charge has not gone through (the service
#: still refuses while money is on its way through its checkout).
CANCELABLE = frozenset({S.SENT, S.SIGNED, S.FAILED})
LABELS = {S.SENT: "Waiting for signature", S.SIGNED: "Signed, charging", S.CHARGED: "Charged",
          S.FAILED: "Signed, charge declined", S.CANCELED: "Canceled", S.EXPIRED: "Expired"}

VARIABLES: dict[str, str] = {
    "msp_legal_name": "Your legal name (Settings)",
    "msp_email": "Your billing email (Settings)",
    "client_legal_name": "The client's legal name",
    "amount": "The amount to charge, e.g. $1,250.00",
    "method_description": "The card on file, or that a new card is entered at checkout",
    "invoices": "The invoices the charge pays",
    "reason": "Why (the urgent service asked for)",
    "effective_date": "The date the client signs",
}


def expires_at(created: datetime, days: int = DEFAULT_VALID_DAYS) -> datetime:
    if not 1 <= days <= MAX_VALID_DAYS:
        raise DomainError(f"The authorization can stay open from 1 to {MAX_VALID_DAYS} days.")
    return created + timedelta(days=days)


def check_amount(amount_cents: int | None, open_cents: int, minimum_cents: int) -> int:
    if amount_cents is None or amount_cents <= 0:
        raise DomainError("Enter the amount to charge.")
    if amount_cents < minimum_cents:
        raise DomainError("The amount is below the smallest charge the payment processor accepts.")
    if amount_cents > open_cents:
        raise DomainError("The amount is more than the client owes. A charge authorization pays open invoices only.")
    return amount_cents


def check_signable(status: str, expires: datetime, at: datetime) -> None:
    """Only a sent, unexpired authorization may be signed; anything else is refused and nothing is charged."""
    if status in (S.SIGNED, S.CHARGED, S.FAILED):
        raise DomainError("This authorization was already signed. Nothing more was charged.")
    if status == S.CANCELED:
        raise DomainError("This authorization was canceled by your provider. Nothing was charged.")
    if status == S.EXPIRED or at >= expires:
        raise DomainError("This authorization has expired. Nothing was charged; ask your provider for a new one.")


def merge_variables(*, msp_legal_name: str, msp_email: str, client_legal_name: str, amount: str, method: str,
                    invoices: str, reason: str, effective_date: date) -> dict[str, str]:
    return {
        "msp_legal_name": msp_legal_name,
        "msp_email": msp_email or "our billing email address",
        "client_legal_name": client_legal_name,
        "amount": amount,
        "method_description": method,
        "invoices": invoices or "the Client's overdue invoices",
        "reason": reason or "urgent service requested by the Client",
        "effective_date": effective_date.strftime("%B %-d, %Y"),
    }


DEFAULT_TEXT = """\
# One-off charge authorization

**{{ client_legal_name }}** (the "Client") authorizes **{{ msp_legal_name }}** (the "Provider") to charge
**{{ amount }}** once, now, to **{{ method_description }}**, for the Client's overdue balance.

## What is paid
- The charge pays {{ invoices }}, oldest first.
- It is a single charge. It does not set up automatic payments and does not authorize any further charge.

## Why
{{ reason }}

## The Client confirms
- The Client is the cardholder, or is authorized to use the card on the cardholder's behalf.
- A receipt is emailed after the charge. Questions or disputes go to {{ msp_email }}.

Effective {{ effective_date }}.
"""

DEFAULT_TEXTS = {CHARGE_AUTHORIZATION: DEFAULT_TEXT}
