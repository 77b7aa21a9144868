"""The deposit agreement a client signs before the MSP orders equipment for it: the quote's items, the total, the
deposit and what happens to it. A template the MSP may edit and publish as versions (like the autopay
authorizations and plan agreements); the per-order data below fills it.

The items are written as list lines, not a table: the signed HTML is rebuilt from the text by evidence.to_html (a
small, frozen Markdown subset) when the record is verified, so what is signed must render the same way for years.

Pure standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from .money import format_money
from .orders import OrderItem

EQUIPMENT_DEPOSIT = "equipment_deposit"
KINDS = (EQUIPMENT_DEPOSIT,)
TITLES = {EQUIPMENT_DEPOSIT: "Equipment deposit agreement"}

VARIABLES: dict[str, str] = {
    "msp_legal_name": "Your legal name (Settings)",
    "msp_email": "Your billing email (Settings)",
    "client_legal_name": "The client's legal name",
    "order_reference": "The order's reference (ORD-000123)",
    "quote_reference": "Your quote's reference, or that there is none",
    "items": "The quoted items: one line each (quantity, description, unit price, amount)",
    "total": "The order's total",
    "deposit_percent": "The deposit as a percentage of the total",
    "deposit": "The deposit due before ordering",
    "balance": "The total less the deposit: invoiced on delivery",
    "portal_url": "The address of the client portal",
    "effective_date": "The date the client signed",
}


def _day(value: date) -> str:
    return value.strftime("%B %-d, %Y")


def items_wording(items: Sequence[OrderItem], currency: str) -> str:
    return "\n".join(
        f"- {i.quantity} × {i.description} at {format_money(i.unit_price_cents, currency)}: "
        f"{format_money(i.amount_cents, currency)}" for i in items)


def merge_variables(*, msp_legal_name: str, msp_email: str, client_legal_name: str, order_reference: str,
                    quote_reference: str, items: Sequence[OrderItem], currency: str, total_cents: int,
                    deposit_percent: Decimal, deposit_cents: int, portal_url: str, effective_date: date
                    ) -> dict[str, str]:
    return {
        "msp_legal_name": msp_legal_name,
        "msp_email": msp_email,
        "client_legal_name": client_legal_name,
        "order_reference": order_reference,
        "quote_reference": quote_reference or "none given",
        "items": items_wording(items, currency),
        "total": format_money(total_cents, currency),
        "deposit_percent": f"{deposit_percent.normalize():f}%",
        "deposit": format_money(deposit_cents, currency),
        "balance": format_money(total_cents - deposit_cents, currency),
        "portal_url": portal_url,
        "effective_date": _day(effective_date),
    }


DEFAULT_TEXT = """\
# Equipment deposit agreement

**{{ client_legal_name }}** (the "Client") asks **{{ msp_legal_name }}** (the "Provider") to order the equipment
below (order {{ order_reference }}, quote {{ quote_reference }}), and agrees to pay a deposit before it is ordered.

## The equipment
{{ items }}

Total: **{{ total }}**.

## The deposit
The Client pays a deposit of **{{ deposit }}** ({{ deposit_percent }} of the total) now, through the client portal.
The Provider orders the equipment only once the deposit has been received in full; a bank transfer counts once it
has cleared, not while it is pending.

## The balance
The remaining **{{ balance }}** is invoiced when the equipment is delivered, under the Client's payment terms.

## Ownership
The equipment remains the Provider's property until it has been paid for in full. Until then the Client keeps it
safe at its site and does not sell, lend or pledge it.

## If the order does not go ahead
If the Provider cannot supply the equipment, it refunds the deposit in full. If the Client cancels after the
equipment was ordered, the Provider may keep from the deposit what it cannot recover from its supplier, and refunds
the rest.

## Questions
Write to {{ msp_email }} or use the client portal ({{ portal_url }}).

Signed on {{ effective_date }}.
"""

DEFAULT_TEXTS = {EQUIPMENT_DEPOSIT: DEFAULT_TEXT}


def sample_variables(*, msp_legal_name: str, msp_email: str, portal_url: str, effective_date: date
                     ) -> dict[str, str]:
    """A believable order for the template editor's preview: a firewall and two switches ($1,500.00), 50% down."""
    items = [OrderItem("Firewall FG-60F", 1, 80_000), OrderItem("Switch, 24 ports", 2, 35_000)]
    return merge_variables(
        msp_legal_name=msp_legal_name, msp_email=msp_email, client_legal_name="Example Client LLC",
        order_reference="ORD-000001", quote_reference="Q-1001", items=items, currency="USD", total_cents=150_000,
        deposit_percent=Decimal(50), deposit_cents=75_000, portal_url=portal_url, effective_date=effective_date)
