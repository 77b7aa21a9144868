"""Equipment orders and their deposits, credit limits, and the equipment register's CSV lines.

An MSP does not buy hardware for a client who may not pay for it: the client signs a deposit agreement and pays a
share of the quote first, and the MSP orders only once that money has *settled* (a bank debit still processing is
not money yet). A credit limit caps what a client may owe: a new order is refused while the open receivables plus
the order would go over it.

Pure standard library: amounts are integer cents, rates Decimal, rounding once (money.percent_of).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from .errors import DomainError, InvalidAmount
from .imports import HeaderError, RowError
from .money import MAX_CENTS, check_amount, format_money, parse_amount, percent_of


class OrderStatus(StrEnum):
    """requested → accepted (deposit agreement signed, deposit invoice issued) → cleared (the deposit settled)
    | canceled."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    CLEARED = "cleared"
    CANCELED = "canceled"


STATUS_LABELS = {
    OrderStatus.REQUESTED: "Waiting for the client to accept",
    OrderStatus.ACCEPTED: "Accepted: deposit not settled yet",
    OrderStatus.CLEARED: "Cleared to order",
    OrderStatus.CANCELED: "Canceled",
}

#: Invoice.source of a deposit invoice (so lists can tell it from a service invoice).
DEPOSIT_SOURCE = "deposit"
#: The smallest deposit a card network will take.
MIN_DEPOSIT_CENTS = 50
MAX_ITEMS = 50
MAX_QUANTITY = 10_000


# --- the quote ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderItem:
    description: str
    quantity: int
    unit_price_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_price_cents

    def as_dict(self) -> dict:
        return {"description": self.description, "quantity": self.quantity, "unit_price_cents": self.unit_price_cents}


def check_items(items: Sequence[OrderItem]) -> list[OrderItem]:
    """The quote's lines: at least one, each with a description, a positive quantity and a price not negative."""
    items = [OrderItem(i.description.strip(), i.quantity, i.unit_price_cents) for i in items]
    if not items:
        raise DomainError("Add at least one item to the order.")
    if len(items) > MAX_ITEMS:
        raise DomainError(f"An order has at most {MAX_ITEMS} items.")
    for n, item in enumerate(items, 1):
        if not item.description:
            raise DomainError(f"Item {n}: describe the item.")
        if len(item.description) > 200:
            raise DomainError(f"Item {n}: the description is too long (200 characters at most).")
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise DomainError(f"Item {n}: the quantity must be between 1 and {MAX_QUANTITY:,}.")
        if item.unit_price_cents < 0:
            raise DomainError(f"Item {n}: the price cannot be negative.")
        check_amount(item.amount_cents, f"Item {n}")
    total = order_total(items)
    if total <= 0:
        raise DomainError("The order's total must be more than zero.")
    check_amount(total, "The order's total")
    return items


def order_total(items: Sequence[OrderItem]) -> int:
    return sum(i.amount_cents for i in items)


def items_from_dicts(rows: Sequence[dict]) -> list[OrderItem]:
    return [OrderItem(str(r["description"]), int(r["quantity"]), int(r["unit_price_cents"])) for r in rows]


# --- the deposit ----------------------------------------------------------------------------------------------------

def deposit_cents(total_cents: int, percent: Decimal, *, minimum_cents: int | None = None,
                  maximum_cents: int | None = None) -> int:
    """The deposit: ``percent`` of the total, rounded half-up once, then held between the optional minimum and
    maximum, and never more than the total itself."""
    if not isinstance(percent, Decimal) or not percent.is_finite():
        raise DomainError("The deposit percentage must be a number.")
    if not Decimal(0) < percent <= Decimal(100):
        raise DomainError("The deposit percentage must be more than 0% and at most 100%.")
    if percent != percent.quantize(Decimal("0.01")):
        raise DomainError("The deposit percentage has at most two decimals (e.g. 12.5).")
    if minimum_cents is not None and maximum_cents is not None and minimum_cents > maximum_cents:
        raise DomainError("The minimum deposit cannot be more than the maximum.")
    cents = percent_of(total_cents, percent)
    if minimum_cents is not None:
        cents = max(cents, minimum_cents)
    if maximum_cents is not None:
        cents = min(cents, maximum_cents)
    cents = min(cents, total_cents)
    if cents < MIN_DEPOSIT_CENTS:
        raise DomainError(f"The deposit would be {format_money(cents)}; it must be at least "
                          f"{format_money(MIN_DEPOSIT_CENTS)}.")
    return cents


def parse_percent(text: str) -> Decimal:
    try:
        value = Decimal((text or "").strip().rstrip("%").strip())
    except InvalidOperation:
        raise DomainError(f"{text!r} is not a percentage (e.g. 50 or 12.5).") from None
    if not value.is_finite():
        raise DomainError(f"{text!r} is not a percentage (e.g. 50 or 12.5).")
    return value


# --- the credit limit -----------------------------------------------------------------------------------------------

class CreditLimitExceeded(DomainError):
    """A new order would take the client's receivables over its credit limit."""


def check_credit(open_ar_cents: int, order_cents: int, limit_cents: int | None, currency: str = "USD") -> None:
    """Blocked while open A/R plus the new order exceeds the limit; exactly at the limit is allowed; no limit set,
    no block. The message names every figure, so the admin knows what to collect or raise."""
    if limit_cents is None:
        return
    after = open_ar_cents + order_cents
    if after > limit_cents:
        raise CreditLimitExceeded(
            f"Blocked by the credit limit: open A/R {format_money(open_ar_cents, currency)} plus this order "
            f"{format_money(order_cents, currency)} is {format_money(after, currency)}, over the limit of "
            f"{format_money(limit_cents, currency)} by {format_money(after - limit_cents, currency)}.")


def check_limit(limit_cents: int) -> int:
    if limit_cents < 0:
        raise DomainError("The credit limit cannot be negative.")
    return check_amount(limit_cents, "The credit limit")


# --- the equipment register -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EquipmentFacts:
    item: str
    serial_number: str
    value_cents: int
    installed_on: date | None
    location: str
    owned_until_paid: bool


def check_equipment(facts: EquipmentFacts) -> EquipmentFacts:
    """One register entry, cleaned; a DomainError names the first thing wrong."""
    problems = equipment_problems(facts)
    if problems:
        raise DomainError(problems[0][0].upper() + problems[0][1:] + ".")
    return EquipmentFacts(facts.item.strip(), facts.serial_number.strip(), facts.value_cents, facts.installed_on,
                          facts.location.strip(), facts.owned_until_paid)


def equipment_problems(facts: EquipmentFacts) -> list[str]:
    problems = []
    if not facts.item.strip():
        problems.append("item is missing")
    elif len(facts.item.strip()) > 200:
        problems.append("item is too long (200 characters at most)")
    if not facts.serial_number.strip():
        problems.append("serial_number is missing")
    elif len(facts.serial_number.strip()) > 100:
        problems.append("serial_number is too long (100 characters at most)")
    if facts.value_cents < 0:
        problems.append("value cannot be negative")
    elif facts.value_cents > MAX_CENTS:
        problems.append(f"value cannot be more than {format_money(MAX_CENTS)}")
    if len(facts.location.strip()) > 200:
        problems.append("location is too long (200 characters at most)")
    for name, text in (("item", facts.item), ("serial_number", facts.serial_number), ("location", facts.location)):
        if "\x00" in text:  # a NUL byte (from a file) cannot be stored in a PostgreSQL text column
            problems.append(f"{name} contains a NUL character, which cannot be saved")
    return problems


EQUIPMENT_REQUIRED = ("item", "serial_number", "value")
EQUIPMENT_OPTIONAL = ("installed_on", "location", "owned_until_paid")
EQUIPMENT_ALIASES = {"serial": "serial_number", "serial_no": "serial_number", "install_date": "installed_on",
                     "installed": "installed_on", "owned_by_msp_until_paid": "owned_until_paid"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


@dataclass(frozen=True)
class EquipmentHeader:
    positions: dict[str, int]
    width: int
    ignored: tuple[str, ...] = ()


def equipment_header(cells: Sequence[str]) -> EquipmentHeader:
    positions: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        key = re.sub(r"[\s\-]+", "_", cell.strip().lower())
        key = EQUIPMENT_ALIASES.get(key, key)
        if key not in EQUIPMENT_REQUIRED and key not in EQUIPMENT_OPTIONAL:
            ignored.append(cell.strip() or f"(blank, column {index + 1})")
        elif key in positions:
            raise HeaderError(f"The column {key} appears twice in the header.")
        else:
            positions[key] = index
    missing = [c for c in EQUIPMENT_REQUIRED if c not in positions]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise HeaderError(f"The header is missing the required column{plural} {', '.join(missing)}. "
                          f"Required: {', '.join(EQUIPMENT_REQUIRED)}; optional: {', '.join(EQUIPMENT_OPTIONAL)}.")
    return EquipmentHeader(positions, len(cells), tuple(ignored))


def equipment_row(line: int, cells: Sequence[str], header: EquipmentHeader) -> EquipmentFacts | list[RowError]:
    """One data line of an equipment CSV, or what is wrong with it (all of it, named by column)."""
    if len(cells) != header.width:
        return [RowError(line, f"the line has {len(cells)} values but the header has {header.width} columns")]

    def cell(name: str) -> str:
        index = header.positions.get(name)
        return cells[index].strip() if index is not None else ""

    errors: list[str] = []
    value_cents = 0
    raw_value = cell("value")
    if not raw_value:
        errors.append("value is missing")
    else:
        try:
            value_cents = parse_amount(raw_value, allow_negative=True)
        except InvalidAmount as e:
            errors.append(f"value: {e}")
    installed_on = None
    raw_date = cell("installed_on")
    if raw_date:
        try:
            if not _ISO_DATE.match(raw_date):
                raise ValueError
            installed_on = date.fromisoformat(raw_date)
        except ValueError:
            errors.append(f"installed_on {raw_date!r} is not a date (use YYYY-MM-DD, e.g. 2026-03-16)")
    owned = True
    raw_owned = cell("owned_until_paid").lower()
    if raw_owned in _NO:
        owned = False
    elif raw_owned and raw_owned not in _YES:
        errors.append(f"owned_until_paid {cell('owned_until_paid')!r} is not yes or no")
    facts = EquipmentFacts(cell("item"), cell("serial_number"), value_cents, installed_on, cell("location"), owned)
    errors = equipment_problems(facts) + errors
    if errors:
        return [RowError(line, message) for message in errors]
    return check_equipment(facts)


@dataclass
class SerialChecks:
    """Across lines: the same serial number twice in one file."""

    seen: dict[str, int] = field(default_factory=dict)

    def check(self, line: int, facts: EquipmentFacts) -> list[RowError]:
        key = facts.serial_number.casefold()
        first = self.seen.setdefault(key, line)
        if first != line:
            return [RowError(line, f"serial_number {facts.serial_number} is already on line {first}")]
        return []
