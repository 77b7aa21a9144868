"""Receivables figures: DSO, what lending clients money costs, the 12-month trend and the cash forecast's arithmetic.

Pure: standard library only, ``today`` is always an argument. Amounts are integer cents, rates Decimal percentages;
each figure is rounded once, half-up, where it is produced (portal.domain.money). The services fetch sums and rows
from the database (grouped there, never every invoice), and these functions turn them into what the MSP reads.
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from .aging import BUCKETS
from .money import round_half_up

#: DSO looks back this many days: the standard "count-back" window of a quarter, long enough to smooth one
#: month's unusual billing, short enough to move when clients start paying later.
DSO_DAYS = 90
TREND_MONTHS = 12
#: An invoice more than this many days past due is doubtful: the forecast does not count on it (the usual
#: bad-debt line in MSP and accounting practice).
DOUBTFUL_AFTER_DAYS = 90
#: What part of an invoice already later than its client's habit the forecast expects in the next days. Half:
#: such an invoice is as likely to slip again as to be paid soon; the dashboard compares each forecast with what
#: came in, so the MSP sees whether this is right for its clients.
LATE_SHARE = Decimal("0.5")
HORIZONS = (30, 60, 90)
#: Days-to-pay is the median over each client's last this many paid invoices (about a year of monthly bills).
HISTORY_INVOICES = 12
#: ... issued within this many days: a habit older than a year says little, and the window keeps the query to the
#: recent part of the ledger (a million invoices hold years of paid ones).
HISTORY_DAYS = 400


# --- aging buckets as due-date ranges --------------------------------------------------------------------------------


def bucket_bounds(today: date) -> list[tuple[str, date | None, date | None]]:
    """Each aging bucket as an inclusive range of due dates (None: open-ended), the same rule as
    ``aging.bucket_for``: due today or later is current, 1 day late is 1-30, 31 days late is 31-60, ... 91 is 90+.
    The SQL of the per-client aging is built from these, so it cannot drift from the domain's buckets."""
    day = timedelta(days=1)
    return [
        ("current", today, None),
        ("1-30", today - 30 * day, today - day),
        ("31-60", today - 60 * day, today - 31 * day),
        ("61-90", today - 90 * day, today - 61 * day),
        ("90+", None, today - 91 * day),
    ]


assert tuple(b for b, _, _ in bucket_bounds(date(2000, 1, 1))) == BUCKETS


# --- DSO, lending cost, shares ---------------------------------------------------------------------------------------


def dso(ar_cents: int, credit_sales_cents: int, days: int = DSO_DAYS) -> Decimal | None:
    """Days sales outstanding, the standard formula: A/R ÷ credit sales over the last ``days`` days × ``days``,
    to one decimal. None when nothing was billed in the window (the ratio means nothing then)."""
    if credit_sales_cents <= 0:
        return None
    return (Decimal(ar_cents) * days / Decimal(credit_sales_cents)).quantize(Decimal("0.1"))


def lending_cost_per_year(past_due_cents: int, borrowing_rate_percent: Decimal) -> int:
    """What carrying ``past_due_cents`` for a year costs at the MSP's borrowing rate: the interest it pays (or
    forgoes) on money its clients hold. Simple interest, in cents, rounded half-up once."""
    return round_half_up(Decimal(max(past_due_cents, 0)) * borrowing_rate_percent / 100)


def share(part: int, whole: int) -> Decimal | None:
    """``part`` as a percentage of ``whole``, to one decimal; None when there is no whole."""
    if whole <= 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


# --- the monthly trend ----------------------------------------------------------------------------------------------


def month_ends(today: date, count: int = TREND_MONTHS) -> list[date]:
    """The last day of each of the ``count`` months up to ``today``, oldest first; the current month ends today
    (its figures are as of now, not a future date)."""
    ends, year, month = [], today.year, today.month
    for _ in range(count):
        ends.append(min(today, date(year, month, calendar.monthrange(year, month)[1])))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(ends))


@dataclass(frozen=True)
class TrendPoint:
    """The books as they stood at the end of ``month_end``."""

    month_end: date
    ar_cents: int  # owed then on invoices issued by then and not voided by then
    past_due_cents: int  # the part of it on invoices due before that day
    sales_cents: int  # billed in the DSO_DAYS days up to that day

    @property
    def past_due_share(self) -> Decimal | None:
        return share(self.past_due_cents, self.ar_cents)

    @property
    def dso(self) -> Decimal | None:
        return dso(self.ar_cents, self.sales_cents)


@dataclass(frozen=True)
class Direction:
    change_percent: Decimal | None  # last point against the first
    rising: bool  # what the dashboard flags


#: A/R up by more than this over the trend, or up three month-ends in a row, is flagged as rising.
RISING_PERCENT = Decimal("10")


def direction(values: Sequence[int]) -> Direction:
    """Whether a series (A/R at each month end) is rising enough to flag: up more than RISING_PERCENT from the
    first month that had any to the last point, or up at each of the last three month ends. (A new MSP's first
    months hold nothing; measuring from zero would make every change infinite.)"""
    if len(values) < 2:
        return Direction(None, False)
    last = values[-1]
    first = next((v for v in values[:-1] if v > 0), 0)
    change = share(last - first, first) if first > 0 else None
    recent = values[-4:]
    climbing = len(recent) == 4 and all(b > a for a, b in zip(recent, recent[1:], strict=False))
    rising = (change is not None and change > RISING_PERCENT) or (first <= 0 < last) or climbing
    return Direction(change, rising)


@dataclass(frozen=True)
class ChartGeometry:
    """Coordinates of a line chart in an SVG viewBox of ``width`` × ``height`` (y grows downwards)."""

    points: list[tuple[float, float]]
    max_value: int
    gridlines: list[tuple[float, int]]  # (y, value) for four evenly spaced lines from 0 to max_value


def chart_geometry(values: Sequence[int], *, width: int = 600, height: int = 200, pad: int = 10) -> ChartGeometry:
    """Where each value sits on the chart: evenly spaced across, scaled so the largest reaches the top. The scale
    starts at zero: a chart that starts at the smallest value makes a small rise look like a cliff."""
    top = max([*values, 0])
    scale_max = top if top > 0 else 1
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    step = inner_w / (len(values) - 1) if len(values) > 1 else 0.0
    points = [(round(pad + i * step, 1), round(pad + inner_h * (1 - max(v, 0) / scale_max), 1))
              for i, v in enumerate(values)]
    grid = [(round(pad + inner_h * (1 - k / 4), 1), round(scale_max * k / 4)) for k in range(5)]
    return ChartGeometry(points, top, grid)


# --- the cash forecast ----------------------------------------------------------------------------------------------


class Source(StrEnum):
    """Where an expected receipt comes from, most certain first."""

    AUTOPAY = "autopay"  # a scheduled charge on a client's saved method
    PLAN = "plan"  # an installment of a signed plan
    PROMISE = "promise"  # a promise to pay the client made
    HISTORY = "history"  # the client's own habit of days-to-pay


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: int
    client_id: int
    issue_date: date
    due_date: date
    balance_cents: int


@dataclass(frozen=True)
class Promise:
    client_id: int
    invoice_id: int | None  # None: the client's past-due balance
    amount_cents: int
    promised_on: date


@dataclass(frozen=True)
class Receipt:
    on: date
    cents: int
    source: Source


def median_days(days: Iterable[int]) -> int | None:
    """The median of days-to-pay, rounded half-up to a whole day; None without any."""
    values = sorted(max(d, 0) for d in days)
    if not values:
        return None
    return round_half_up(Decimal(str(statistics.median(values))))


def unpaid_installments(installments: Sequence[tuple[date, int]], still_owed_cents: int) -> list[tuple[date, int]]:
    """The installments (due date, amount) a plan still has to collect, given what the plan's invoices still owe
    on the ledger. Payments fill installments in order, so what is still owed is the schedule's tail: the latest
    installments, the earliest of them perhaps partly paid. Conservative on purpose: interest not yet invoiced is
    not in ``still_owed_cents``, so it is not expected either."""
    remaining = max(still_owed_cents, 0)
    tail: list[tuple[date, int]] = []
    for due_on, amount in sorted(installments, reverse=True):
        if remaining <= 0:
            break
        take = min(amount, remaining)
        if take > 0:
            tail.append((due_on, take))
        remaining -= take
    return sorted(tail)


def _late_or_doubtful(invoice: OpenInvoice, cents: int, today: date) -> list[Receipt]:
    """An invoice already past the day it was expected: not yet due → its due date (the client still has its
    terms); up to DOUBTFUL_AFTER_DAYS past due → LATE_SHARE of it in the next days; older → nothing."""
    if invoice.due_date >= today:
        return [Receipt(invoice.due_date, cents, Source.HISTORY)]
    if (today - invoice.due_date).days > DOUBTFUL_AFTER_DAYS:
        return []
    late = round_half_up(Decimal(cents) * LATE_SHARE)
    return [Receipt(today, late, Source.HISTORY)] if late > 0 else []


def forecast_receipts(
    invoices: Sequence[OpenInvoice],
    today: date,
    *,
    promises: Sequence[Promise] = (),
    autopay_on: Mapping[int, date] | None = None,
    client_days: Mapping[int, int] | None = None,
    default_days: int | None = None,
    plan_installments: Sequence[tuple[date, int]] = (),
) -> list[Receipt]:
    """Expected receipts from each source. ``invoices``: open invoices not on a current plan (a plan's invoices are
    collected by its installments, ``plan_installments``, already reduced to what is unpaid). Each cent of an
    invoice is counted once, by the most certain source:

    1. an open promise dated today or later (one dated earlier is broken: the invoice falls to the others);
       a promise naming no invoice covers the client's past-due invoices oldest first, then the rest;
    2. autopay: ``autopay_on`` gives the day autopay charges an invoice of an enrolled client (absent: autopay
       will not charge it, e.g. over the cap); a day before today means an earlier charge did not collect it;
    3. the client's habit: issue date + its median days-to-pay (``client_days``; else ``default_days``, the
       MSP-wide median; else the due date). See _late_or_doubtful for an invoice already past that day.
    """
    autopay_on = autopay_on or {}
    client_days = client_days or {}
    receipts = [Receipt(max(due_on, today), cents, Source.PLAN) for due_on, cents in plan_installments if cents > 0]
    left = {i.invoice_id: i.balance_cents for i in invoices if i.balance_cents > 0}
    by_client: dict[int, list[OpenInvoice]] = {}
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.invoice_id)):
        by_client.setdefault(invoice.client_id, []).append(invoice)

    for promise in sorted(promises, key=lambda p: (p.promised_on, p.invoice_id or 0)):
        if promise.promised_on < today or promise.amount_cents <= 0:
            continue
        mine = by_client.get(promise.client_id, [])
        if promise.invoice_id is not None:
            covers = [i for i in mine if i.invoice_id == promise.invoice_id]
        else:
            covers = [i for i in mine if i.due_date < today] + [i for i in mine if i.due_date >= today]
        amount = promise.amount_cents
        for invoice in covers:
            take = min(amount, left.get(invoice.invoice_id, 0))
            if take > 0:
                receipts.append(Receipt(promise.promised_on, take, Source.PROMISE))
                left[invoice.invoice_id] -= take
                amount -= take

    for invoice in invoices:
        cents = left.get(invoice.invoice_id, 0)
        if cents <= 0:
            continue
        charge_on = autopay_on.get(invoice.invoice_id)
        if charge_on is not None and charge_on >= today:
            receipts.append(Receipt(charge_on, cents, Source.AUTOPAY))
            continue
        days = client_days.get(invoice.client_id, default_days)
        expected = invoice.issue_date + timedelta(days=days) if days is not None else invoice.due_date
        if expected >= today:
            receipts.append(Receipt(expected, cents, Source.HISTORY))
        else:
            receipts.extend(_late_or_doubtful(invoice, cents, today))
    return receipts


@dataclass(frozen=True)
class HorizonFigures:
    days: int
    by_source: dict[Source, int]

    @property
    def total_cents(self) -> int:
        return sum(self.by_source.values())


def by_horizon(receipts: Iterable[Receipt], today: date, horizons: Sequence[int] = HORIZONS) -> list[HorizonFigures]:
    """Receipts expected within each horizon: on a day from today to today + days - 1 (the next 30 days are
    today and the 29 after it), cumulative (the 60-day figure includes the 30-day one)."""
    receipts = list(receipts)
    figures = []
    for days in horizons:
        end = today + timedelta(days=days)
        sums = dict.fromkeys(Source, 0)
        for r in receipts:
            if today <= r.on < end:
                sums[r.source] += r.cents
        figures.append(HorizonFigures(days, sums))
    return figures


def window_end(start: date, days: int) -> date:
    """The first day after a horizon of ``days`` starting on ``start``: what came in on [start, end) is compared
    with what a forecast made on ``start`` expected."""
    return start + timedelta(days=days)
