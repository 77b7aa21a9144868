"""Invoice arithmetic and state rules: draft -> open -> paid / void, with 'partially paid' derived."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from . import dates
from .errors import InvalidAmount, InvalidTransition
from .money import check_amount, percent_of, round_half_up


class InvoiceStatus(StrEnum):
    """An invoice's stored status. 'Partially paid' and 'overdue' are derived for display (display_status)."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


DRAFT, OPEN, PAID, VOID = InvoiceStatus.DRAFT, InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID
#: An issued invoice that can be paid, sent and linked to: it is open, or it was paid and can still be looked at.
ISSUED = (OPEN, PAID)
MAX_TAX_RATE = Decimal("100")
# Quantities and rates are stored with four decimals; more would be silently rounded away by the database.
PLACES = Decimal("0.0001")
MAX_QUANTITY = Decimal(1_000_000)


@dataclass(frozen=True)
class LineInput:
    description: str
    quantity: Decimal
    unit_price_cents: int
    taxable: bool = True


@dataclass(frozen=True)
class Totals:
    line_amounts: tuple[int, ...]
    subtotal_cents: int
    tax_cents: int
    total_cents: int


def line_amount(quantity: Decimal, unit_price_cents: int) -> int:
    return round_half_up(quantity * unit_price_cents)


def check_quantity(quantity: Decimal) -> Decimal:
    if quantity <= 0:
        raise InvalidAmount("Quantities must be greater than zero.")
    if quantity > MAX_QUANTITY:
        raise InvalidAmount(f"A quantity cannot be more than {MAX_QUANTITY:,}.")
    if quantity != quantity.quantize(PLACES):
        raise InvalidAmount("A quantity can have at most four decimals.")
    return quantity


def check_tax_rate(tax_rate: Decimal) -> Decimal:
    if not Decimal(0) <= tax_rate <= MAX_TAX_RATE:
        raise InvalidAmount("The tax rate must be between 0 and 100 percent.")
    if tax_rate != tax_rate.quantize(PLACES):
        raise InvalidAmount("The tax rate can have at most four decimals.")
    return tax_rate


def compute_totals(lines: Iterable[LineInput], tax_rate: Decimal) -> Totals:
    """Each line rounds once; tax is computed once on the taxable subtotal. The total is the exact sum."""
    lines = list(lines)
    if not lines:
        raise InvalidAmount("An invoice needs at least one line.")
    check_tax_rate(tax_rate)
    amounts = []
    for line in lines:
        if not line.description.strip():
            raise InvalidAmount("Every line needs a description.")
        check_quantity(line.quantity)
        check_amount(line.unit_price_cents, "A unit price")
        amounts.append(check_amount(line_amount(line.quantity, line.unit_price_cents), "A line amount"))
    subtotal = check_amount(sum(amounts), "The invoice subtotal")
    taxable = sum(a for a, line in zip(amounts, lines, strict=True) if line.taxable)
    tax = percent_of(taxable, tax_rate)
    if subtotal + tax < 0:
        raise InvalidAmount("An invoice total cannot be negative; issue a credit instead.")
    return Totals(tuple(amounts), subtotal, tax, check_amount(subtotal + tax, "The invoice total"))


def default_due_date(issue_date: date, net_days: int) -> date:
    """The issue date plus the client's payment terms."""
    return dates.add_days(issue_date, net_days, "The due date")


def check_dates(issue_date: date, due_date: date) -> None:
    dates.check_supported(issue_date, "The issue date")
    dates.check_supported(due_date, "The due date")
    if due_date < issue_date:
        raise InvalidAmount("The due date cannot be before the issue date.")


def check_issue(status: str) -> None:
    if status != DRAFT:
        raise InvalidTransition("Only a draft invoice can be issued.")


def check_editable(status: str) -> None:
    if status != DRAFT:
        raise InvalidTransition("Only a draft invoice can be edited; void it and issue a new one.")


def check_void(status: str, paid_cents: int) -> None:
    """Money already applied must be refunded or moved off the invoice before it can be voided."""
    if status == VOID:
        raise InvalidTransition("The invoice is already void.")
    if paid_cents:
        raise InvalidTransition(
            "This invoice has payments applied. Refund or unapply them before voiding it."
        )


def status_for_balance(status: str, total_cents: int, paid_cents: int) -> str:
    """The stored status after the ledger changed: an open invoice with nothing owing is paid, and back."""
    if status in (DRAFT, VOID):
        return status
    return PAID if paid_cents >= total_cents else OPEN


def display_status(status: str, total_cents: int, paid_cents: int, due_date: date, today: date) -> str:
    """What a person sees: draft, open, partially paid, overdue, paid, void."""
    if status in (DRAFT, VOID, PAID):
        return status
    if due_date < today:
        return "overdue"
    if 0 < paid_cents < total_cents:
        return "partially paid"
    return OPEN
