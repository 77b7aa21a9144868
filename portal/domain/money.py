"""Money is an integer number of minor units (cents). Rates are Decimals. Rounding happens here and only here."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import InvalidAmount

CENT = Decimal("0.01")
# The largest amount anywhere ($999,999,999,999.99): beyond any real invoice, and far enough below the 64-bit cents
# columns that totals of many such amounts still fit. Typed amounts are held to it by their shape (12 digits).
MAX_CENTS = 10**14 - 1
_AMOUNT = re.compile(r"^(-?)(\d{1,12})(?:\.(\d{1,2}))?$")
SYMBOLS = {"USD": "$", "CAD": "CA$", "AUD": "A$", "EUR": "€", "GBP": "£", "NZD": "NZ$"}


def round_half_up(value: Decimal) -> int:
    """The one rounding step: a Decimal number of cents to whole cents, half away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_amount(text: str, *, allow_negative: bool = False) -> int:
    """'1,234.5' -> 123450. Rejects anything that is not a plain amount with at most two decimals."""
    cleaned = (text or "").strip().replace(",", "").lstrip("$").strip()
    match = _AMOUNT.match(cleaned)
    if not match:
        raise InvalidAmount(f"{text!r} is not an amount (use digits with up to two decimals, e.g. 1250.00)")
    sign, whole, fraction = match.groups()  # exact in integers: an import reads one amount or two per line
    cents = int(whole) * 100 + int((fraction or "0").ljust(2, "0"))
    if sign:
        cents = -cents
    if cents < 0 and not allow_negative:
        raise InvalidAmount("The amount cannot be negative.")
    return cents


def check_amount(cents: int, what: str = "The amount") -> int:
    """Refuses an amount (positive or negative) beyond MAX_CENTS, before it reaches a column that cannot hold it."""
    if abs(cents) > MAX_CENTS:
        raise InvalidAmount(f"{what} cannot be more than {format_money(MAX_CENTS)}.")
    return cents


def parse_decimal(text: str, *, field: str = "value") -> Decimal:
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        raise InvalidAmount(f"{field} {text!r} is not a number") from None
    if not value.is_finite():
        raise InvalidAmount(f"{field} {text!r} is not a number")
    return value


def to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def format_money(cents: int, currency: str = "USD") -> str:
    """-123456 -> '-$1,234.56'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    symbol = SYMBOLS.get(currency.upper())
    number = f"{whole:,}.{frac:02d}"
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency.upper()}"


def percent_of(cents: int, rate_percent: Decimal) -> int:
    """A percentage of an amount, rounded once."""
    return round_half_up(Decimal(cents) * rate_percent / 100)


def split_evenly(total_cents: int, parts: int) -> list[int]:
    """Split into ``parts`` amounts that differ by at most a cent and sum exactly; larger parts first."""
    if parts <= 0:
        raise InvalidAmount("Cannot split into zero parts.")
    base, extra = divmod(total_cents, parts)
    return [base + 1 if i < extra else base for i in range(parts)]
