"""Installment schedules: the arithmetic of a plan, exact to the cent.

Money is integer cents and rates are Decimals; rounding happens in exactly two places, both through
money.round_half_up: the level payment (once per schedule) and each row's interest (once per row). Whatever those
roundings leave over is absorbed by the last row, so the principal parts always sum exactly to the principal and the
balance after the last row is exactly zero. Every other row of a schedule has the same amount.

Interest is simple per period on the remaining principal. Regular frequencies use the periodic rate APR/12, APR/26
or APR/52 for every period, the first included, whatever the distance from the start date to the first due date:
that is how lenders quote level payments, and it makes the payment independent of the day the client signs.
Custom dates have no "period", so each one uses its actual days / 365. Early payoff (``payoff``) always counts actual
days / 365, because it charges interest only up to the payoff day.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from . import dates
from .autopay import clamp_day
from .errors import DomainError
from .money import MAX_CENTS, format_money, percent_of, round_half_up

MAX_INSTALLMENTS = 120
DAYS_PER_YEAR = Decimal(365)
# Enough digits that (1 + r)^-120 and the sum of discount factors lose nothing before the one rounding to cents.
_PRECISION = decimal.Context(prec=40)


class Frequency(StrEnum):
    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    MONTHLY = "monthly"
    CUSTOM = "custom"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def periods_per_year(self) -> int | None:
        """None for custom dates: their periods are measured in actual days."""
        return _PERIODS_PER_YEAR.get(self)


_LABELS = {Frequency.WEEKLY: "every week", Frequency.BIWEEKLY: "every two weeks", Frequency.MONTHLY: "monthly",
           Frequency.CUSTOM: "on chosen dates"}
_PERIODS_PER_YEAR = {Frequency.WEEKLY: 52, Frequency.BIWEEKLY: 26, Frequency.MONTHLY: 12}


@dataclass(frozen=True)
class ScheduleRow:
    number: int  # 1-based; 0 is reserved for the down payment (see plans.DueRow)
    due_on: date
    amount_cents: int
    principal_cents: int
    interest_cents: int
    balance_after_cents: int  # principal still owed once this row is paid


@dataclass(frozen=True)
class PlanTerms:
    balance_cents: int  # what the covered invoices owe
    down_payment_cents: int
    installments: int
    frequency: Frequency
    first_due_on: date
    apr_percent: Decimal = Decimal(0)
    # CUSTOM only: `installments` strictly increasing dates, the first being first_due_on
    custom_dates: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        # Values as they come from a model row or a form (a str frequency, an int rate, a list of dates) are taken
        # in their domain types, so equality and the arithmetic below never depend on where the terms came from.
        if isinstance(self.apr_percent, int):
            object.__setattr__(self, "apr_percent", Decimal(self.apr_percent))
        if self.frequency in _LABELS:
            object.__setattr__(self, "frequency", Frequency(self.frequency))
        object.__setattr__(self, "custom_dates", tuple(self.custom_dates))

    @property
    def principal_cents(self) -> int:
        return self.balance_cents - self.down_payment_cents


@dataclass(frozen=True)
class Schedule:
    terms: PlanTerms
    rows: tuple[ScheduleRow, ...]

    @property
    def principal_cents(self) -> int:
        return self.terms.principal_cents

    @property
    def total_interest_cents(self) -> int:
        return sum(row.interest_cents for row in self.rows)

    @property
    def total_of_installments_cents(self) -> int:
        return sum(row.amount_cents for row in self.rows)

    @property
    def total_cost_cents(self) -> int:
        return self.terms.down_payment_cents + self.total_of_installments_cents


@dataclass(frozen=True)
class Payoff:
    principal_cents: int
    interest_cents: int
    total_cents: int


# --- checks ----------------------------------------------------------------------------------------------------------


def check_terms(terms: PlanTerms) -> tuple[date, ...]:
    """Refuses terms no schedule can be built from, whoever proposes them, and returns their due dates. Policy limits
    are in plans.check_offer."""
    if terms.balance_cents <= 0:
        raise DomainError("There is no balance to put on a plan.")
    if terms.balance_cents > MAX_CENTS:
        raise DomainError(f"The balance cannot be more than {format_money(MAX_CENTS)}.")
    if terms.down_payment_cents < 0:
        raise DomainError("The down payment cannot be negative.")
    if terms.down_payment_cents > terms.balance_cents:
        raise DomainError(f"The down payment cannot be more than the balance ({format_money(terms.balance_cents)}).")
    if terms.down_payment_cents == terms.balance_cents:
        raise DomainError("The down payment covers the whole balance; no plan is needed.")
    if not 1 <= terms.installments <= MAX_INSTALLMENTS:
        raise DomainError(f"The number of installments must be between 1 and {MAX_INSTALLMENTS}.")
    if not is_percent(terms.apr_percent):
        raise DomainError("The APR must be between 0% and 100%.")
    if terms.principal_cents < terms.installments:
        raise DomainError(_too_small(terms))
    return due_dates(terms.first_due_on, terms.frequency, terms.installments, terms.custom_dates)


def is_percent(value: Decimal) -> bool:
    """0 to 100. NaN and infinities are refused here because comparing them would raise or slip through."""
    value = Decimal(value) if isinstance(value, int) else value
    return isinstance(value, Decimal) and value.is_finite() and Decimal(0) <= value <= Decimal(100)


def _too_small(terms: PlanTerms) -> str:
    return (f"{format_money(terms.principal_cents)} is too little to split into {terms.installments} installments; "
            "choose fewer installments.")


def due_dates(first: date, frequency: Frequency, count: int, custom: tuple[date, ...] = ()) -> tuple[date, ...]:
    """The due dates of ``count`` installments. Monthly dates keep the first date's day of month, clamped to shorter
    months but always relative to that original day (Jan 31 -> Feb 28 -> Mar 31), so one short month does not drag
    every later date to the 28th."""
    try:
        frequency = Frequency(frequency)
    except ValueError:
        raise DomainError("Choose how often to pay: every week, every two weeks, monthly or on chosen dates.") from None
    dates.check_supported(first, "The first due date")
    if frequency is Frequency.CUSTOM:
        return _check_custom(first, count, tuple(custom))
    if custom:
        raise DomainError("Chosen dates are only used with the custom frequency.")
    if frequency is Frequency.MONTHLY:
        found = []
        for k in range(count):
            year, month = divmod(first.month - 1 + k, 12)
            found.append(clamp_day(first.year + year, month + 1, first.day))
    else:
        step = 7 if frequency is Frequency.WEEKLY else 14
        found = [first + timedelta(days=step * k) for k in range(count)]
    dates.check_supported(found[-1] if found else first, "The last due date")
    return tuple(found)


def _check_custom(first: date, count: int, custom: tuple[date, ...]) -> tuple[date, ...]:
    if len(custom) != count:
        raise DomainError(f"Choose exactly {count} dates, one for each installment.")
    if custom[0] != first:
        raise DomainError("The first chosen date must be the first due date.")
    if any(later <= earlier for earlier, later in zip(custom, custom[1:], strict=False)):
        raise DomainError("The chosen dates must be in order, each one after the one before.")
    dates.check_supported(custom[-1], "The last due date")
    return custom


# --- the schedule ----------------------------------------------------------------------------------------------------


def build_schedule(terms: PlanTerms, *, start_on: date) -> Schedule:
    """The rows of a plan accepted (or offered) on ``start_on``. Refuses, with a message fit for the client, terms
    that cannot make a schedule of positive installments."""
    due = check_terms(terms)
    dates.check_supported(start_on)
    if terms.first_due_on < start_on:
        raise DomainError(f"The first installment cannot be due before {start_on.strftime('%B %-d, %Y')}.")
    if terms.apr_percent == 0:
        return Schedule(terms, _without_interest(terms.principal_cents, due))
    return Schedule(terms, _amortized(terms, due, _period_rates(terms, due, start_on)))


def _without_interest(principal: int, due: tuple[date, ...]) -> tuple[ScheduleRow, ...]:
    """Equal installments; the last one also carries the remainder cents, so every other row shows the same amount
    (the client reads "6 payments of $100.00, the last $100.04")."""
    base, remainder = divmod(principal, len(due))
    rows, balance = [], principal
    for number, due_on in enumerate(due, start=1):
        amount = base + remainder if number == len(due) else base
        balance -= amount
        rows.append(ScheduleRow(number, due_on, amount, amount, 0, balance))
    return tuple(rows)


def _period_rates(terms: PlanTerms, due: tuple[date, ...], start_on: date) -> list[Decimal]:
    yearly = terms.apr_percent / 100
    per_year = Frequency(terms.frequency).periods_per_year
    if per_year is not None:
        return [_PRECISION.divide(yearly, Decimal(per_year))] * len(due)
    starts = (start_on, *due[:-1])
    return [_PRECISION.divide(yearly * (end - begin).days, DAYS_PER_YEAR)
            for begin, end in zip(starts, due, strict=True)]


def level_payment_cents(principal_cents: int, rates: list[Decimal]) -> int:
    """The payment that repays ``principal_cents`` over periods with these rates: the principal divided by the sum of
    the discount factors. With one rate r for every period this is the textbook P·r / (1 − (1 + r)^−n); the general
    form also solves irregular custom periods."""
    factor, discounts = Decimal(1), Decimal(0)
    for rate in rates:
        factor = _PRECISION.divide(factor, _PRECISION.add(1, rate))
        discounts = _PRECISION.add(discounts, factor)
    return round_half_up(_PRECISION.divide(Decimal(principal_cents), discounts))


def _amortized(terms: PlanTerms, due: tuple[date, ...], rates: list[Decimal]) -> tuple[ScheduleRow, ...]:
    payment = level_payment_cents(terms.principal_cents, rates)
    rows, balance = [], terms.principal_cents
    for number, (due_on, rate) in enumerate(zip(due, rates, strict=True), start=1):
        interest = round_half_up(balance * rate)
        last = number == len(due)
        principal = balance if last else payment - interest
        # A payment rounded to a whole cent can pay tiny principals off early (then a later row would be 0 or
        # negative); a long gap between custom dates can make a period's interest exceed the payment. Both are
        # refused rather than shown as a schedule that is not level or that grows the debt.
        if principal < 0:
            raise DomainError(f"The gap before payment {number} is too long: its interest would be more than the "
                              "payment. Space the dates more evenly.")
        if not last and principal >= balance:
            raise DomainError(_too_small(terms))
        balance -= principal
        rows.append(ScheduleRow(number, due_on, principal + interest, principal, interest, balance))
    return tuple(rows)


# --- helpers for the forms -------------------------------------------------------------------------------------------


def down_payment_for_percent(balance_cents: int, percent: Decimal) -> int:
    """A down payment typed as a percentage of the balance, rounded half-up once."""
    if not is_percent(percent):
        raise DomainError("The down payment percentage must be between 0% and 100%.")
    return percent_of(balance_cents, percent)


def installments_for_amount(principal_cents: int, amount_cents: int) -> int:
    """How many installments when the client types "I can pay this much" instead of a count: enough that none is
    more than that amount (before interest), i.e. the amount divided into the principal, rounded up."""
    if amount_cents <= 0:
        raise DomainError("The installment amount must be more than zero.")
    if principal_cents <= 0:
        raise DomainError("There is no balance to put on a plan.")
    count = -(-principal_cents // amount_cents)
    if count > MAX_INSTALLMENTS:
        raise DomainError(f"At {format_money(amount_cents)} a payment this would take more than {MAX_INSTALLMENTS} "
                          "installments; choose a larger amount.")
    return count


# --- early payoff ----------------------------------------------------------------------------------------------------


def payoff(schedule: Schedule, *, paid_cents: int, on: date, start_on: date) -> Payoff:
    """What pays the plan off on ``on``, when ``paid_cents`` has been paid toward the installments (the down payment
    not included). Payments are applied to the rows in order, each row's interest first. Interest is then charged
    only for the time that has actually run since the last fully paid row (or ``start_on``), on the principal owed
    at that point, actual days / 365, less interest already paid toward the row in progress; it never exceeds the
    interest the schedule still has to collect, so paying off early never costs more than paying as scheduled."""
    scheduled = schedule.total_of_installments_cents
    if not 0 <= paid_cents <= scheduled:
        raise DomainError(f"The payments toward the plan must be between $0.00 and {format_money(scheduled)}.")
    left, since, owed_at_since = paid_cents, start_on, schedule.principal_cents
    interest_paid = principal_paid = partial_interest = 0
    for row in schedule.rows:
        if left >= row.amount_cents:
            left -= row.amount_cents
            interest_paid += row.interest_cents
            principal_paid += row.principal_cents
            since, owed_at_since = row.due_on, row.balance_after_cents
            continue
        partial_interest = min(left, row.interest_cents)
        interest_paid += partial_interest
        principal_paid += left - partial_interest
        break
    principal = schedule.principal_cents - principal_paid
    days = max(0, (on - since).days)
    accrued = round_half_up(owed_at_since * schedule.terms.apr_percent / 100 * days / DAYS_PER_YEAR)
    interest = max(0, min(accrued - partial_interest, schedule.total_interest_cents - interest_paid))
    return Payoff(principal, interest, principal + interest)
