"""Autopay authorizations: the documents a client signs to let the MSP charge a saved method by itself.

Two kinds, because the rules differ. A bank debit needs NACHA's recurring-entry authorization: what is debited and
from which account, when, that amounts vary with the invoices, that a notice goes before each debit, and how and
by when the authorization can be revoked. A card needs the card networks' stored-credential consent: how the card
will be used, that amounts vary, the schedule, how changes are notified, how to cancel. Both are templates the MSP
may edit and publish as versions (like the payment terms); the per-agreement data below fills them.

Pure standard library.
"""

from __future__ import annotations

from datetime import date

ACH_AUTHORIZATION = "ach_authorization"
CARD_AUTHORIZATION = "card_authorization"
KINDS = (ACH_AUTHORIZATION, CARD_AUTHORIZATION)
TITLES = {ACH_AUTHORIZATION: "Autopay authorization (bank account)",
          CARD_AUTHORIZATION: "Autopay authorization (card)"}
#: Revoking needs time for the MSP to stop a debit already scheduled (NACHA: "in such time and manner as to
#: afford the originator a reasonable opportunity to act").
REVOKE_DAYS = 3

VARIABLES: dict[str, str] = {
    "msp_legal_name": "Your legal name (Settings)",
    "msp_email": "Your billing email (Settings)",
    "client_legal_name": "The client's legal name",
    "method_description": "The card or bank account, e.g. 'Visa ending 4242'",
    "account_holder": "Whose card or account it is (the client)",
    "schedule": "When autopay charges (the client's rules)",
    "cap": "The per-invoice limit, or that there is none",
    "notice_days": "Days between the pre-charge notice and the charge",
    "revoke_days": "Days before a charge a revocation must arrive",
    "portal_url": "The address of the client portal",
    "effective_date": "The date the client signed",
}


def method_description(method_type: str, *, brand: str | None, last4: str | None, bank_name: str | None) -> str:
    """'Visa ending 4242', 'STRIPE TEST BANK account ending 6789': how every page and the document name it."""
    if method_type == "us_bank_account":
        bank = bank_name or "Bank"
        return f"{bank} account ending {last4 or '????'}"
    return f"{(brand or 'Card').title()} ending {last4 or '????'}"


def cap_wording(cap: str | None) -> str:
    if cap is None:
        return "There is no limit on the amount of a single charge."
    return (f"A single invoice over {cap} is not charged automatically: the Provider asks for approval first or "
            "leaves it for the Client to pay by hand.")


def merge_variables(*, msp_legal_name: str, msp_email: str, client_legal_name: str, method: str, schedule: str,
                    cap: str | None, notice_days: int, portal_url: str, effective_date: date) -> dict[str, str]:
    return {
        "msp_legal_name": msp_legal_name,
        "msp_email": msp_email or "our billing email address",
        "client_legal_name": client_legal_name,
        "method_description": method,
        "account_holder": client_legal_name,
        "schedule": schedule,
        "cap": cap_wording(cap),
        "notice_days": str(notice_days),
        "revoke_days": str(REVOKE_DAYS),
        "portal_url": portal_url,
        "effective_date": effective_date.strftime("%B %-d, %Y"),
    }


DEFAULT_ACH_TEXT = """\
# Autopay authorization: recurring bank debits (ACH)

**{{ client_legal_name }}** (the "Client") authorizes **{{ msp_legal_name }}** (the "Provider") and its payment
processor to initiate electronic debit entries from the Client's bank account **{{ method_description }}**
(the "Account"), and, if necessary, credit entries to correct an erroneous debit.

## What is debited
- The balance of each invoice the Provider issues to the Client for its services, as shown in the client portal.
- The amount varies with each invoice. No debit is larger than the invoice it pays.
- {{ cap }}

## When
- Debits are initiated {{ schedule }}.
- The Client is sent a notice {{ notice_days }} days before each debit, listing the invoices, the amount and the
  date. If a debit is returned for insufficient or uncollected funds, it may be presented again (at most twice,
  within 180 days), as NACHA rules allow; the Client is told each time.

## Revoking this authorization
This authorization stays in effect until the Client revokes it. The Client may revoke it at any time by switching
off autopay or removing the Account in the client portal ({{ portal_url }}), or by writing to {{ msp_email }}, at
least {{ revoke_days }} business days before the next scheduled debit so the Provider has a reasonable opportunity
to act on it. Revoking autopay does not cancel invoices already owed.

## The Client confirms
- The Client is the account holder, or is authorized to debit the Account on the account holder's behalf.
- This authorization is for debits from a business account, follows the NACHA Operating Rules and the laws of
  the United States, and is kept by the Provider for two years after it ends.

Effective {{ effective_date }}.
"""

DEFAULT_CARD_TEXT = """\
# Autopay authorization: stored card

**{{ client_legal_name }}** (the "Client") authorizes **{{ msp_legal_name }}** (the "Provider") to store the card
**{{ method_description }}** (the "Card") with its payment processor and to charge it, without the Client
being present, for the Client's invoices.

## How the Card will be used
- The Card is charged for the balance of each invoice the Provider issues to the Client, as shown in the client
  portal. The amount varies with each invoice. No charge is larger than the invoice it pays.
- {{ cap }}
- Charges are made {{ schedule }}. A declined charge may be retried on the Provider's retry schedule; the Client is
  told by email after a failed charge.

## Notice of charges and changes
- The Client is sent a notice {{ notice_days }} days before each charge, listing the invoices, the amount and the
  date, and a receipt after it.
- If the Provider changes how or when the Card is charged, it tells the Client by email before the change applies.

## Cancelling
The Client may cancel this authorization at any time by switching off autopay or removing the Card in the client
portal ({{ portal_url }}), or by writing to {{ msp_email }}, at least {{ revoke_days }} business days before the
next scheduled charge. Cancelling does not cancel invoices already owed.

Effective {{ effective_date }}.
"""

DEFAULT_TEXTS = {ACH_AUTHORIZATION: DEFAULT_ACH_TEXT, CARD_AUTHORIZATION: DEFAULT_CARD_TEXT}


def kind_for(method_type: str) -> str:
    return ACH_AUTHORIZATION if method_type == "us_bank_account" else CARD_AUTHORIZATION
