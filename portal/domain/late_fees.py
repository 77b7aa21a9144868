"""Late fees exactly as the client's signed payment terms say. Pure standard library; ``today`` is an argument.

What the shipped terms define (portal.domain.terms): a percentage per month on the overdue balance
(``late_fee_percent``, 0 = no late fee) after ``grace_days``. They define no flat fee and no compounding, so
neither exists here: a fee is always a percentage of the late invoice's own overdue balance, never of earlier fees.

Periods: period 1 starts the day after ``due_date + grace_days``; period k starts k-1 calendar months later
(counted from period 1's start, so a 31st does not drift to the 28th for good after February). Only the current
period is charged: a period that went by while the invoice was exempt (on a plan, promised) is not charged later,
and a fee is never charged in advance.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from .money import format_money, round_half_up

#: Invoice.source of a late-fee invoice: it is never itself charged a late fee (that would compound).
FEE_SOURCE = "late_fee"
MAX_PERCENT = Decimal("100")
MAX_GRACE_DAYS = 3650


@dataclass(frozen=True)
class FeeTerms:
    """The late-fee parameters of one signed agreement."""

    percent: Decimal  # per month, of the overdue balance
    grace_days: int
    compounding: bool = False  # no shipped terms say so; kept explicit so the rule is visible and tested

    @property
    def charges_fees(self) -> bool:
        return self.percent > 0


def terms_from_variables(variables: Mapping[str, object]) -> FeeTerms | None:
    """The late-fee terms in a signed agreement's merged variables; None when they set no (valid) late fee."""
    try:
        percent = Decimal(str(variables.get("late_fee_percent", "")).strip())
        grace = int(str(variables.get("grace_days", "0")).strip() or "0")
    except (InvalidOperation, ValueError):
        return None
    if not percent.is_finite() or not Decimal(0) <= percent <= MAX_PERCENT or not 0 <= grace <= MAX_GRACE_DAYS:
        return None
    terms = FeeTerms(percent=percent, grace_days=grace)
    return terms if terms.charges_fees else None


def add_months(start: date, months: int) -> date:
    """``start`` plus whole calendar months; the day is clamped to the month's length (Jan 31 + 1 = Feb 28)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def first_period_start(due_date: date, grace_days: int) -> date:
    return due_date + timedelta(days=grace_days + 1)


def period_start(due_date: date, grace_days: int, period: int) -> date:
    if period < 1:
        raise ValueError("periods count from 1")
    return add_months(first_period_start(due_date, grace_days), period - 1)


def current_period(due_date: date, grace_days: int, today: date) -> int | None:
    """The period ``today`` falls in, or None while the invoice is not yet late beyond the grace days."""
    first = first_period_start(due_date, grace_days)
    if today < first:
        return None
    months = (today.year - first.year) * 12 + today.month - first.month
    if add_months(first, months) > today:  # the same day of the month has not come yet
        months -= 1
    return months + 1


def fee_basis(overdue_cents: int, unpaid_fee_cents: int, *, compounding: bool) -> int:
    """What the percentage is taken of: the late invoice's overdue balance alone, unless the terms compound."""
    basis = overdue_cents + (unpaid_fee_cents if compounding else 0)
    return max(0, basis)


def fee_cents(basis_cents: int, percent: Decimal) -> int:
    """The fee: ``percent`` of the basis, rounded half-up to the cent once. Never negative."""
    if basis_cents <= 0 or percent <= 0:
        return 0
    return round_half_up(Decimal(basis_cents) * percent / 100)


def period_label(due_date: date, grace_days: int, period: int) -> str:
    start = period_start(due_date, grace_days, period)
    end = period_start(due_date, grace_days, period + 1) - timedelta(days=1)
    return f"month {period} late ({_day(start)} to {_day(end)})"


def line_text(percent: Decimal, basis_cents: int, currency: str, invoice_number: str, label: str) -> str:
    return (f"Late fee: {format(percent.normalize(), 'f')}% of {format_money(basis_cents, currency)} overdue on "
            f"invoice {invoice_number} for {label}")


def _day(value: date) -> str:
    return value.strftime("%b %-d, %Y")


# --- the clause the fee cites ----------------------------------------------------------------------------------

_HEADING = re.compile(r"^#{1,6}\s+(.*)$")


def late_fee_clause(document_text: str) -> str:
    """The section of the signed document that provides for late fees, as one paragraph of plain text: its heading
    then its text (``**bold**`` marks removed). Empty when the document has no such section: then the signed terms
    do not provide for a late fee and none is charged."""
    title, body, sections = "", [], []
    for line in document_text.splitlines():
        heading = _HEADING.match(line.strip())
        if heading:
            sections.append((title, body))
            title, body = heading.group(1).strip(), []
        else:
            body.append(line.strip())
    sections.append((title, body))
    for title, lines in sections:
        text = " ".join(part for part in lines if part)
        if "late fee" in title.lower() or (title and "late fee" in text.lower() and not _is_preamble(title)):
            clean = re.sub(r"\s+", " ", text.replace("**", "")).strip()
            return f"{title.replace('**', '')}: {clean}" if clean else ""
    return ""


def _is_preamble(title: str) -> bool:
    return title.lower().startswith("payment terms")
