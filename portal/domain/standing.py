"""A client's standing with the MSP: good, warning or on hold, as the help desk and the client see it.

Pure standard library; `today` is an argument. The thresholds are contract terms: they come from the payment terms
version the client signed (section 5, "Service hold while past due": on hold once any invoice is MORE than
``hold_days`` days past due). A client that has signed nothing is measured against the MSP defaults of the terms
template (``terms.DEFAULT_PARAMETERS``), and every answer says which applied.

What counts as past due: the unpaid balance of an open invoice after its due date, minus
- invoices on a current installment plan (the client is keeping to a signed schedule: a current plan counts as good);
- amounts the client promised to pay while the promise is open (its date has not passed). A kept promise counts
  through the money it brought, which is already off the balance (counting it again would cover the rest twice).
A bank (ACH) payment still processing has not moved money: it is not allocated to the invoice until it settles, so
the balance it will pay still counts, and the hold lifts when the debit settles, not when it starts.

Warning: from ``WARNING_LEAD_DAYS`` days before the hold (and never before 1 day past due), so the help desk can warn
a client while a call still helps. With the default 15-day hold that is from 8 days past due.

An admin override (a standing, a reason and an end date) wins until the end of its end date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from .errors import DomainError
from .terms import DEFAULT_PARAMETERS

WARNING_LEAD_DAYS = 7
MAX_OVERRIDE_DAYS = 90  # an override is a temporary decision; a longer one is a policy, not an exception
DEFAULT_HOLD_DAYS = int(DEFAULT_PARAMETERS["hold_days"])


class Standing(StrEnum):
    GOOD = "good"
    WARNING = "warning"
    ON_HOLD = "on_hold"


class StandingBasis(StrEnum):
    """Why the standing is what it is: the signed terms, the MSP defaults (nothing signed), or an override."""

    SIGNED_TERMS = "signed_terms"
    DEFAULT_TERMS = "default_terms"
    OVERRIDE = "override"


LABELS = {Standing.GOOD: "Good standing", Standing.WARNING: "Warning", Standing.ON_HOLD: "On hold"}


@dataclass(frozen=True)
class PastDueItem:
    """One open invoice with money owing (due or not yet due: the rule decides)."""

    invoice_id: int
    number: str
    due_date: date
    balance_cents: int
    on_current_plan: bool = False


@dataclass(frozen=True)
class Promise:
    """A promise to pay that still protects the client: ``invoice_id`` None means "my past-due balance"."""

    invoice_id: int | None
    amount_cents: int


@dataclass(frozen=True)
class Thresholds:
    hold_days: int
    basis: StandingBasis  # SIGNED_TERMS or DEFAULT_TERMS
    terms_reference: str = ""  # the signed agreement's reference, when there is one

    @property
    def warning_days(self) -> int:
        return max(1, self.hold_days - WARNING_LEAD_DAYS)


@dataclass(frozen=True)
class Override:
    standing: Standing
    reason: str
    ends_on: date


@dataclass(frozen=True)
class StandingResult:
    standing: Standing
    basis: StandingBasis
    reason: str  # one sentence a person reads
    days_past_due: int  # of the oldest uncovered past-due amount (0: none)
    past_due_cents: int  # uncovered past-due balance
    to_lift_cents: int  # what must be paid to leave the current standing (0 when good)
    to_good_cents: int  # what must be paid to be in good standing (>= to_lift_cents)
    hold_days: int
    warning_days: int
    hold_from: date | None  # the day the oldest uncovered amount puts the client on hold (None: nothing past due)
    override_ends_on: date | None = None
    terms_reference: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.standing]


def thresholds_from(signed_variables: Mapping[str, str] | None, reference: str = "") -> Thresholds:
    """The hold threshold of the signed version (its merged variables), else the template's default."""
    if signed_variables is not None:
        try:
            days = int(str(signed_variables.get("hold_days", "")).strip())
        except ValueError:
            days = 0
        if days >= 1:
            return Thresholds(days, StandingBasis.SIGNED_TERMS, reference)
    return Thresholds(DEFAULT_HOLD_DAYS, StandingBasis.DEFAULT_TERMS)


def _uncovered(items: Iterable[PastDueItem], promises: Sequence[Promise], today: date) -> list[tuple[PastDueItem, int]]:
    """Past-due items with what is still uncovered of each, oldest first. Promises for an invoice cover it; a
    promise of an amount without an invoice covers the oldest past-due amounts first."""
    past_due = sorted((i for i in items if i.due_date < today and i.balance_cents > 0 and not i.on_current_plan),
                      key=lambda i: (i.due_date, i.invoice_id))
    by_invoice: dict[int, int] = {}
    loose = 0
    for p in promises:
        if p.invoice_id is None:
            loose += p.amount_cents
        else:
            by_invoice[p.invoice_id] = by_invoice.get(p.invoice_id, 0) + p.amount_cents
    left: list[tuple[PastDueItem, int]] = []
    for item in past_due:
        owed = max(0, item.balance_cents - by_invoice.get(item.invoice_id, 0))
        taken = min(owed, loose)
        loose -= taken
        owed -= taken
        if owed > 0:
            left.append((item, owed))
    return left


def compute(items: Iterable[PastDueItem], promises: Sequence[Promise], thresholds: Thresholds, today: date,
            override: Override | None = None) -> StandingResult:
    left = _uncovered(items, promises, today)
    hold, warn = thresholds.hold_days, thresholds.warning_days

    def days(item: PastDueItem) -> int:
        return (today - item.due_date).days

    oldest = days(left[0][0]) if left else 0
    past_due = sum(owed for _, owed in left)
    on_hold_cents = sum(owed for item, owed in left if days(item) > hold)
    warning_cents = sum(owed for item, owed in left if days(item) >= warn)
    hold_from = date.fromordinal(left[0][0].due_date.toordinal() + hold + 1) if left else None
    source = ("the signed payment terms" if thresholds.basis == StandingBasis.SIGNED_TERMS
              else "the MSP's default terms (no signed terms)")
    if on_hold_cents:
        standing = Standing.ON_HOLD
        reason = (f"An invoice is {oldest} days past due; {source} allow a service hold after {hold} days.")
        to_lift = on_hold_cents
    elif warning_cents:
        standing = Standing.WARNING
        reason = (f"An invoice is {oldest} days past due; service goes on hold after {hold} days past due "
                  f"under {source}.")
        to_lift = warning_cents
    else:
        standing = Standing.GOOD
        reason = ("Nothing past due." if not left else
                  f"{oldest} day{'s' if oldest != 1 else ''} past due, within the {warn - 1}-day allowance.")
        to_lift = 0
    result = StandingResult(standing, thresholds.basis, reason, oldest, past_due, to_lift, warning_cents, hold, warn,
                            hold_from, None, thresholds.terms_reference)
    if override is not None and today <= override.ends_on:
        return StandingResult(override.standing, StandingBasis.OVERRIDE,
                              f"Set by staff until {override.ends_on.isoformat()}: {override.reason}",
                              oldest, past_due, result.to_lift_cents if override.standing != Standing.GOOD else 0,
                              warning_cents, hold, warn, hold_from, override.ends_on, thresholds.terms_reference)
    return result


def check_override(standing: str, reason: str, ends_on: date | None, today: date) -> tuple[Standing, str, date]:
    """The admin's override, validated: a known standing, a reason, an end date from today to 90 days ahead."""
    try:
        chosen = Standing(standing)
    except ValueError:
        raise DomainError("Choose good, warning or on hold.") from None
    reason = " ".join((reason or "").split())
    if not reason:
        raise DomainError("Give a reason for the override: it is recorded.")
    if len(reason) > 500:
        raise DomainError("The reason is limited to 500 characters.")
    if ends_on is None:
        raise DomainError("Give an end date: an override ends on its own.")
    if ends_on < today:
        raise DomainError("The end date is in the past.")
    if (ends_on - today).days > MAX_OVERRIDE_DAYS:
        raise DomainError(f"An override lasts at most {MAX_OVERRIDE_DAYS} days.")
    return chosen, reason, ends_on
