"""Installment plans: the rules (pure). Statuses of offers, plans and installments; whether an offer fits the MSP's
policy; when a missed installment defaults the plan; how a payment is spread over the covered invoices.

The schedule arithmetic itself is in portal.domain.schedules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from .errors import AllocationError, DomainError
from .money import MAX_CENTS, format_money
from .payments import GATEWAY_MINIMUM_CENTS
from .schedules import (
    MAX_INSTALLMENTS,
    Frequency,
    PlanTerms,
    Schedule,
    check_terms,
    down_payment_for_percent,
    is_percent,
)


class OfferStatus(StrEnum):
    OPEN = "open"  # waiting for the other side
    ACCEPTED = "accepted"  # signed: a PaymentPlan exists
    REJECTED = "rejected"
    COUNTERED = "countered"  # a newer offer in the same thread replaced it
    WITHDRAWN = "withdrawn"  # taken back by whoever made it
    SUPERSEDED = "superseded"  # another offer was accepted, or the plan it renegotiates changed


class PlanStatus(StrEnum):
    CURRENT = "current"
    COMPLETED = "completed"
    DEFAULTED = "defaulted"
    CANCELED = "canceled"
    SUPERSEDED = "superseded"  # renegotiated: a newer signed plan replaced it


class InstallmentStatus(StrEnum):
    """Where one row of a plan (the down payment or an installment) stands on a given day. Once a row is due, its
    timing is what matters, so a partly paid row that is due shows as due / late / missed (its paid_cents tell the
    rest); PARTLY_PAID is only for a row paid into ahead of its date."""

    PAID = "paid"
    PARTLY_PAID = "partly_paid"  # some paid, due later
    UPCOMING = "upcoming"  # nothing paid, due later
    DUE = "due"  # due today
    LATE = "late"  # past its date, still within the grace days (or owing less than a charge can take, carried to
    # the next row's charge): the plan stands
    MISSED = "missed"  # past the grace days: the plan is in default


@dataclass(frozen=True)
class DueRow:
    """One amount the plan expects on a date: number 0 is the down payment (due at acceptance), 1.. the installments,
    so both go through the same waterfall."""

    number: int
    due_on: date
    amount_cents: int


@dataclass(frozen=True)
class RowState:
    number: int
    due_on: date
    amount_cents: int
    paid_cents: int
    owing_cents: int
    status: InstallmentStatus


@dataclass(frozen=True)
class Progress:
    rows: tuple[RowState, ...]
    paid_cents: int
    remaining_cents: int
    next_due: RowState | None  # the first row still owing
    first_missed: RowState | None

    @property
    def completed(self) -> bool:
        return self.remaining_cents == 0

    @property
    def down_payment_owing(self) -> bool:
        """Row 0 (the down payment) still has money owing: its checkout is still asked for."""
        return any(row.number == 0 and row.owing_cents > 0 for row in self.rows)

    @property
    def in_default(self) -> bool:
        return self.first_missed is not None

    @property
    def due_now_cents(self) -> int:
        """What the client must pay today to be up to date (rows due today, late or missed)."""
        return sum(row.owing_cents for row in self.rows if row.status in _DUE_NOW)


_DUE_NOW = frozenset({InstallmentStatus.DUE, InstallmentStatus.LATE, InstallmentStatus.MISSED})


def due_rows(schedule: Schedule, *, accepted_on: date) -> tuple[DueRow, ...]:
    """The down payment (when there is one, due on acceptance) followed by the schedule's installments."""
    down = schedule.terms.down_payment_cents
    first = (DueRow(0, accepted_on, down),) if down else ()
    return first + tuple(DueRow(row.number, row.due_on, row.amount_cents) for row in schedule.rows)


def progress(rows: Sequence[DueRow], paid_cents: int, *, today: date, grace_days: int) -> Progress:
    """Where a plan stands, given everything paid toward it. Payments fill the rows in order, oldest first, whatever
    installment the client meant to pay: that is how paying ahead works, and it keeps a payment from ever leaving an
    older row open behind a newer one."""
    if paid_cents < 0:
        raise DomainError("The amount paid cannot be negative.")
    if grace_days < 0:
        raise DomainError("Grace days cannot be negative.")
    left, states = paid_cents, []
    ordered = sorted(rows, key=lambda row: row.number)
    for row in ordered:
        paid = min(left, row.amount_cents)
        left -= paid
        owing = row.amount_cents - paid
        status = _status(row.due_on, paid, owing, today, grace_days)
        if status is InstallmentStatus.MISSED and owing < GATEWAY_MINIMUM_CENTS:
            # less than a card processor will charge on its own (a check a little short): it is charged with the
            # next row; on the last row the MSP writes it off or records it. A plan never defaults over it.
            status = InstallmentStatus.LATE
        states.append(RowState(row.number, row.due_on, row.amount_cents, paid, owing, status))
    total = sum(row.amount_cents for row in rows)
    return Progress(
        rows=tuple(states), paid_cents=paid_cents, remaining_cents=max(0, total - paid_cents),
        next_due=next((s for s in states if s.owing_cents), None),
        first_missed=next((s for s in states if s.status is InstallmentStatus.MISSED), None),
    )


class NextCharge(NamedTuple):
    first: int  # index of the first row not yet covered
    last: int  # index of the last row the charge reaches (a later one when rows were brought along)
    cents: int


def next_charge(amounts: Sequence[int], covered_cents: int) -> NextCharge | None:
    """What the next charge toward a plan takes, its rows in order: what is left of the first row not covered; when
    that is less than a card can be charged (a check a little short of it), the following rows come along until it
    is not (the same rule that keeps such a row from being missed, ``progress``). Less than the minimum only when it
    reaches the last row. None when every row is covered."""
    through = 0
    first = None
    for n, amount in enumerate(amounts):
        through += amount
        if through <= covered_cents:
            continue
        first = n if first is None else first
        if through - covered_cents >= GATEWAY_MINIMUM_CENTS or n == len(amounts) - 1:
            return NextCharge(first, n, through - covered_cents)
    return None


def _status(due_on: date, paid: int, owing: int, today: date, grace_days: int) -> InstallmentStatus:
    if owing == 0:
        return InstallmentStatus.PAID
    if today < due_on:
        return InstallmentStatus.PARTLY_PAID if paid else InstallmentStatus.UPCOMING
    if today == due_on:
        return InstallmentStatus.DUE
    if (today - due_on).days <= grace_days:
        return InstallmentStatus.LATE
    return InstallmentStatus.MISSED


# --- policy ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The MSP's limits for plans a client picks or proposes on their own. The MSP's own offers need only respect
    max_apr_percent (usury limits differ by state) and the sanity of the schedule."""

    max_balance_cents: int
    max_installments: int
    min_down_percent: Decimal
    frequencies: frozenset[Frequency]
    apr_percent: Decimal  # the rate self-service plans carry
    max_apr_percent: Decimal
    grace_days: int


MAX_GRACE_DAYS = 60


def check_policy(policy: Policy) -> None:
    """The admin's settings form: refuses limits that make no sense, naming the field."""
    if not 0 < policy.max_balance_cents <= MAX_CENTS:
        raise DomainError(f"The maximum balance must be between $0.01 and {format_money(MAX_CENTS)}.")
    if not 1 <= policy.max_installments <= MAX_INSTALLMENTS:
        raise DomainError(f"The maximum number of installments must be between 1 and {MAX_INSTALLMENTS}.")
    if not is_percent(policy.min_down_percent):
        raise DomainError("The minimum down payment must be between 0% and 100%.")
    if not is_percent(policy.apr_percent):
        raise DomainError("The APR must be between 0% and 100%.")
    if not is_percent(policy.max_apr_percent):
        raise DomainError("The maximum APR must be between 0% and 100%.")
    if policy.apr_percent > policy.max_apr_percent:
        raise DomainError(f"The APR cannot be more than the maximum APR ({_pct(policy.max_apr_percent)}).")
    if not 0 <= policy.grace_days <= MAX_GRACE_DAYS:
        raise DomainError(f"Grace days must be between 0 and {MAX_GRACE_DAYS}.")
    if not policy.frequencies:
        raise DomainError("Allow at least one payment frequency.")


def check_offer(terms: PlanTerms, policy: Policy, *, by_client: bool) -> None:
    """Refuses an offer outside the MSP's policy, with a message naming the limit. A client's own pick or proposal
    must fit every self-service limit and carry the policy's APR; the MSP may offer beyond those limits (that is
    negotiation), but never above its maximum APR."""
    check_terms(terms)
    if terms.apr_percent > policy.max_apr_percent:
        raise DomainError(f"The APR may not exceed {_pct(policy.max_apr_percent)}.")
    if not by_client:
        return
    if terms.balance_cents > policy.max_balance_cents:
        raise DomainError(f"Plans are available for balances up to {format_money(policy.max_balance_cents)}.")
    if terms.installments > policy.max_installments:
        raise DomainError(f"At most {policy.max_installments} payments are allowed.")
    minimum = down_payment_for_percent(terms.balance_cents, policy.min_down_percent)
    if terms.down_payment_cents < minimum:
        raise DomainError(f"The down payment must be at least {_pct(policy.min_down_percent)} "
                          f"({format_money(minimum)}).")
    if terms.frequency not in policy.frequencies:
        offered = [f.label for f in Frequency if f in policy.frequencies]
        raise DomainError(f"Payments {Frequency(terms.frequency).label} are not offered; choose "
                          f"{' or '.join(offered)}.")
    if terms.apr_percent != policy.apr_percent:
        raise DomainError(f"Plans chosen here carry an APR of {_pct(policy.apr_percent)}.")


def _pct(value: Decimal) -> str:
    """7.50 -> '7.5%', 18.000 -> '18%'."""
    return f"{value.normalize():f}%"


# --- spreading a payment over the covered invoices -------------------------------------------------------------------


@dataclass(frozen=True)
class Owed:
    invoice_id: int
    due_date: date
    balance_cents: int


def allocate(amount_cents: int, owed: Sequence[Owed], *, first: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Spreads a payment over invoices: those named in ``first`` in that order ("pay invoice X now", interest
    invoices), then the oldest first (due date, then id) so the invoice that has been late longest is cleared
    first. Returns (invoice_id, cents) pairs that sum exactly to the amount, none more than the invoice owes."""
    if amount_cents <= 0:
        raise AllocationError("The amount must be more than zero.")
    by_id = {line.invoice_id: line for line in owed}
    unknown = [invoice_id for invoice_id in first if invoice_id not in by_id]
    if unknown:
        raise AllocationError(f"Invoice {unknown[0]} is not among the invoices this payment covers.")
    total = sum(max(0, line.balance_cents) for line in by_id.values())
    if amount_cents > total:
        raise AllocationError(f"The amount is more than the {format_money(total)} owed.")
    named = list(dict.fromkeys(first))  # a repeated id is taken once, at its first place
    rest = sorted((line for line in by_id.values() if line.invoice_id not in named),
                  key=lambda line: (line.due_date, line.invoice_id))
    left, shares = amount_cents, []
    for line in [by_id[i] for i in named] + rest:
        share = min(left, max(0, line.balance_cents))
        if share:
            shares.append((line.invoice_id, share))
            left -= share
    return shares
