"""The receivables dashboard's figures: aging per client, DSO, what lending clients money costs, the 12-month trend.

Every figure is one grouped query in the database (never every invoice loaded into Python), over the ledger's own
balance rule (services.ledger.stored_balance); the arithmetic on the sums is portal.domain.receivables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from time import monotonic
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from portal.domain import receivables as R
from portal.domain.aging import BUCKETS, AgingReport
from portal.domain.payments import PaymentStatus
from portal.domain.spreadsheets import safe_cell
from portal.models import Allocation, Client, Invoice, LedgerAdjustment, Payment
from portal.models.base import Cents

from ..ledger import OWING_INVOICE, receivables, stored_balance
from .settings import collection_settings

T = TypeVar("T")

#: Column labels of the buckets in SQL (a label cannot start with a digit or hold '-' or '+').
LABELS = {"current": "current", "1-30": "d1_30", "31-60": "d31_60", "61-90": "d61_90", "90+": "d90_plus"}
SORTS = ("total", *BUCKETS, "name")
OVER_30 = ("31-60", "61-90", "90+")


def _in_bucket(earliest: date | None, latest: date | None) -> ColumnElement[bool]:
    conditions = []
    if earliest is not None:
        conditions.append(Invoice.due_date >= earliest)
    if latest is not None:
        conditions.append(Invoice.due_date <= latest)
    return and_(*conditions)


def aging_by_client_query(today: date):
    """One row per client with money owing: the owed amount in each bucket and in all, one grouped query."""
    owed = stored_balance()
    buckets = [func.sum(case((_in_bucket(earliest, latest), owed), else_=0)).label(LABELS[name])
               for name, earliest, latest in R.bucket_bounds(today)]
    return (
        select(Invoice.client_id.label("client_id"), *buckets, func.sum(owed).label("total"),
               func.count().label("open_count"))
        .where(OWING_INVOICE, owed > 0)
        .group_by(Invoice.client_id)
        .subquery()
    )


@dataclass(frozen=True)
class ClientAging:
    client_id: int
    name: str
    external_id: str
    buckets: dict[str, int]
    total_cents: int
    open_count: int

    @property
    def past_due_cents(self) -> int:
        return self.total_cents - self.buckets["current"]


@dataclass(frozen=True)
class AgingFilters:
    q: str = ""
    past_due_only: bool = False
    min_balance_cents: int = 0
    sort: str = "total"
    descending: bool = True


@dataclass(frozen=True)
class AgingPage:
    """One page of the per-client aging. No total count: counting every client with a balance on each view is
    what made lists slow at scale; the page asks for one row more than it shows to know whether a next exists."""

    items: list[ClientAging]
    page: int
    per_page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def _like(q: str) -> str:
    escaped = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _client_aging_select(today: date, filters: AgingFilters):
    aged = aging_by_client_query(today)
    query = select(Client.id, Client.legal_name, Client.external_id, *(aged.c[LABELS[b]] for b in BUCKETS),
                   aged.c.total, aged.c.open_count).join(aged, aged.c.client_id == Client.id)
    if filters.q.strip():
        pattern = _like(filters.q)
        query = query.where(or_(func.lower(Client.legal_name).like(pattern, escape="\\"),
                                func.lower(Client.external_id).like(pattern, escape="\\")))
    if filters.past_due_only:
        query = query.where(aged.c.total > aged.c.current)
    if filters.min_balance_cents > 0:
        # bound as a money column (BIGINT): an amount past 2^31 cents would not fit PostgreSQL's INTEGER parameter
        query = query.where(aged.c.total >= literal(filters.min_balance_cents, Cents))
    if filters.sort == "name":
        name = func.lower(Client.legal_name)
        order = [name.desc() if filters.descending else name.asc()]
    else:
        column = aged.c.total if filters.sort == "total" else aged.c[LABELS.get(filters.sort, "total")]
        order = [column.desc() if filters.descending else column.asc(), func.lower(Client.legal_name)]
    return query.order_by(*order, Client.id)


def _row(values) -> ClientAging:
    client_id, name, external_id, *bucket_values, total, count = values
    buckets = {b: int(v or 0) for b, v in zip(BUCKETS, bucket_values, strict=True)}
    return ClientAging(client_id, name, external_id or "", buckets, int(total or 0), int(count or 0))


def client_aging_page(session: Session, today: date, filters: AgingFilters = AgingFilters(), *, page: int = 1,
                      per_page: int = 25) -> AgingPage:
    page = max(1, page)
    rows = session.execute(_client_aging_select(today, filters).limit(per_page + 1)
                           .offset((page - 1) * per_page)).all()
    return AgingPage([_row(r) for r in rows[:per_page]], page, per_page, len(rows) > per_page)


def client_aging_rows(session: Session, today: date, filters: AgingFilters = AgingFilters(),
                      batch: int = 1000) -> Iterator[ClientAging]:
    """Every client's row for the CSV export, fetched in batches (not held all at once)."""
    result = session.execute(_client_aging_select(today, filters).execution_options(yield_per=batch))
    for values in result:
        yield _row(values)


# --- the dashboard's aging: one grouped query for totals, per-client rows and the top lists ---------------------------


@dataclass(frozen=True)
class ClientOwing:
    """A client's owed amounts and invoice counts per bucket (the dashboard's lists)."""

    client_id: int
    name: str
    buckets: dict[str, int]
    counts: dict[str, int]
    oldest_due: date | None

    @property
    def total_cents(self) -> int:
        return sum(self.buckets.values())

    @property
    def past_due_cents(self) -> int:
        return self.total_cents - self.buckets["current"]

    @property
    def past_due_count(self) -> int:
        return sum(self.counts.values()) - self.counts["current"]


@dataclass(frozen=True)
class AgingOverview:
    report: AgingReport  # the bucket totals and counts across all clients
    clients: list[ClientOwing]  # every client owing something

    def top(self, by: str = "total", limit: int = 10) -> list[ClientOwing]:
        """The clients owing the most (``total``) or most past due (``past_due``): only those with some."""
        def key(c: ClientOwing) -> int:
            return c.past_due_cents if by == "past_due" else c.total_cents

        return sorted((c for c in self.clients if key(c) > 0), key=lambda c: (-key(c), c.name.lower(), c.client_id)
                      )[:limit]


def aging_overview(session: Session, today: date) -> AgingOverview:
    """Bucket totals and every owing client's buckets from ONE grouped query (not one per figure): at a million
    invoices each pass over the open balances is the dashboard's main cost. The totals are the sums of the
    clients' rows, so the two can never disagree."""
    owed = stored_balance()
    columns = []
    for _bucket, earliest, latest in R.bucket_bounds(today):
        inside = _in_bucket(earliest, latest)
        columns += [func.sum(case((inside, owed), else_=0)), func.sum(case((inside, 1), else_=0))]
    grouped = (select(Invoice.client_id.label("client_id"), *(c.label(f"c{n}") for n, c in enumerate(columns)),
                      func.min(Invoice.due_date).label("oldest_due"))
               .where(OWING_INVOICE, owed > 0)
               .group_by(Invoice.client_id).subquery())
    rows = session.execute(select(Client.id, Client.legal_name, *(grouped.c[f"c{n}"] for n in range(len(columns))),
                                  grouped.c.oldest_due).join(grouped, grouped.c.client_id == Client.id)).all()
    report, clients = AgingReport(), []
    for client_id, name, *values, oldest in rows:
        buckets = {b: int(values[2 * k] or 0) for k, b in enumerate(BUCKETS)}
        counts = {b: int(values[2 * k + 1] or 0) for k, b in enumerate(BUCKETS)}
        for b in BUCKETS:
            report.totals[b] += buckets[b]
            report.counts[b] += counts[b]
        clients.append(ClientOwing(client_id, name, buckets, counts, oldest))
    return AgingOverview(report, clients)


# --- the headline figures -------------------------------------------------------------------------------------------


def _start_of_next_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def _billed_as_of(day: date) -> ColumnElement[bool]:
    """An invoice on the books at the end of ``day``: issued by then (a draft never is) and not voided by then."""
    return and_(Invoice.issued_at.is_not(None), Invoice.issue_date <= day,
                or_(Invoice.voided_at.is_(None), Invoice.voided_at >= _start_of_next_day(day)))


def credit_sales(session: Session, today: date, days: int = R.DSO_DAYS) -> int:
    """What was billed in the ``days`` days up to today (invoices not voided): DSO's denominator."""
    since = today - timedelta(days=days)
    return int(session.scalar(select(func.coalesce(func.sum(Invoice.total_cents), 0))
                              .where(_billed_as_of(today), Invoice.issue_date > since)) or 0)


@dataclass(frozen=True)
class Summary:
    aging: AgingReport
    sales_cents: int  # billed over the last DSO_DAYS days
    borrowing_rate_percent: Decimal

    @property
    def dso(self) -> Decimal | None:
        return R.dso(self.aging.total_cents, self.sales_cents)

    @property
    def lending_cents(self) -> int:
        """"You are lending your clients $X": everything past due."""
        return self.aging.overdue_cents

    @property
    def lending_cost_cents(self) -> int:
        return R.lending_cost_per_year(self.lending_cents, self.borrowing_rate_percent)

    @property
    def over_30_cents(self) -> int:
        return sum(self.aging.totals[b] for b in OVER_30)

    @property
    def over_30_count(self) -> int:
        return sum(self.aging.counts[b] for b in OVER_30)

    @property
    def over_30_share_amount(self) -> Decimal | None:
        return R.share(self.over_30_cents, self.aging.total_cents)

    @property
    def over_30_share_count(self) -> Decimal | None:
        return R.share(self.over_30_count, sum(self.aging.counts.values()))


def summary(session: Session, today: date, aging: AgingReport | None = None,
            sales_cents: int | None = None) -> Summary:
    """``aging``, ``sales_cents``: figures the caller already has (the dashboard's aging_overview, its cache)."""
    rate = collection_settings(session).borrowing_rate_percent
    return Summary(aging if aging is not None else receivables(session, today),
                   sales_cents if sales_cents is not None else credit_sales(session, today), Decimal(rate))


# --- the monthly trend ----------------------------------------------------------------------------------------------


@dataclass
class _Sums:
    ar: list[int] = field(default_factory=list)
    past_due: list[int] = field(default_factory=list)


def current_point(today: date, figures: Summary) -> R.TrendPoint:
    """Today's point of the trend from the live figures: the same rule (open balances of invoices on the books,
    the past-due part, the sales of the DSO window), without another pass over the ledger."""
    return R.TrendPoint(today, figures.aging.total_cents, figures.aging.overdue_cents, figures.sales_cents)


def trend(session: Session, today: date, months: int = R.TREND_MONTHS) -> list[R.TrendPoint]:
    """A/R, its past-due part and the DSO as the books stood at each of the last ``months`` month ends (the
    current month: today). Three grouped queries, each one pass over its table with a sum per month end:

    - invoices on the books then (issued by then, not voided by then): their totals, and the sales for DSO;
    - money applied to them from succeeded payments received by then (a payment counts from the day it was
      received, so a check recorded late still counts in its month; a reversal undoes it from that day too);
    - ledger adjustments (an autopay discount) made by then.
    A/R then = totals − money applied − adjustments; past due: the same over invoices due before that day.
    """
    ends = R.month_ends(today, months)
    invoice_cols, money_cols, adjustment_cols = [], [], []
    for end in ends:
        on_books = _billed_as_of(end)
        late = and_(on_books, Invoice.due_date < end)
        since = end - timedelta(days=R.DSO_DAYS)
        invoice_cols += [func.sum(case((on_books, Invoice.total_cents), else_=0)),
                         func.sum(case((late, Invoice.total_cents), else_=0)),
                         func.sum(case((and_(on_books, Invoice.issue_date > since), Invoice.total_cents), else_=0))]
        received = Payment.received_on <= end
        money_cols += [func.sum(case((and_(on_books, received), Allocation.amount_cents), else_=0)),
                       func.sum(case((and_(late, received), Allocation.amount_cents), else_=0))]
        made = LedgerAdjustment.created_at < _start_of_next_day(end)
        adjustment_cols += [func.sum(case((and_(on_books, made), LedgerAdjustment.amount_cents), else_=0)),
                            func.sum(case((and_(late, made), LedgerAdjustment.amount_cents), else_=0))]
    billed = session.execute(select(*invoice_cols).where(Invoice.issued_at.is_not(None))).one()
    money = session.execute(
        select(*money_cols).select_from(Allocation).join(Payment, Payment.id == Allocation.payment_id)
        .join(Invoice, Invoice.id == Allocation.invoice_id)
        .where(Payment.status == PaymentStatus.SUCCEEDED, Invoice.issued_at.is_not(None))).one()
    adjusted = session.execute(
        select(*adjustment_cols).select_from(LedgerAdjustment)
        .join(Invoice, Invoice.id == LedgerAdjustment.invoice_id).where(Invoice.issued_at.is_not(None))).one()
    points = []
    for k, end in enumerate(ends):
        totals, late_totals, sales = (int(billed[3 * k + j] or 0) for j in range(3))
        paid, late_paid = int(money[2 * k] or 0), int(money[2 * k + 1] or 0)
        adj, late_adj = int(adjusted[2 * k] or 0), int(adjusted[2 * k + 1] or 0)
        points.append(R.TrendPoint(end, totals - paid - adj, late_totals - late_paid - late_adj, sales))
    return points


# --- the CSV export -------------------------------------------------------------------------------------------------

def _units(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def aging_csv_rows(session: Session, today: date, filters: AgingFilters = AgingFilters()) -> Iterator[list[str]]:
    """The aging report for a spreadsheet: a header, one row per client (amounts in currency units, one column
    per bucket), and a totals row. Every text cell passes safe_cell."""
    yield ["client", "external_id", *BUCKETS, "total", "open_invoices"]
    totals, count = dict.fromkeys(BUCKETS, 0), 0
    for row in client_aging_rows(session, today, filters):
        for b in BUCKETS:
            totals[b] += row.buckets[b]
        count += row.open_count
        yield [safe_cell(row.name), safe_cell(row.external_id),
               *(_units(row.buckets[b]) for b in BUCKETS), _units(row.total_cents), str(row.open_count)]
    yield ["Total", "", *(_units(totals[b]) for b in BUCKETS), _units(sum(totals.values())), str(count)]


# --- figures kept for a few minutes ----------------------------------------------------------------------------------


class FiguresCache:
    """Figures that are slow at scale and need not be exact to the second (the trend's past month ends, the cash
    forecast, autopay adoption), kept per app process for ``seconds`` under a key that includes the day. A past
    month end changes only when something is entered with an earlier date; the forecast is a daily estimate. The
    live figures (aging, what is past due, today's point of the trend) are never taken from here."""

    def __init__(self, seconds: float, clock: Callable[[], float] = monotonic):
        self.seconds = seconds
        self.clock = clock
        self._held: dict[tuple, tuple[Any, float]] = {}

    def get(self, key: tuple, compute: Callable[[], T]) -> T:
        now = self.clock()
        held = self._held.get(key)
        if held is not None and now < held[1]:
            return held[0]
        value = compute()
        self._held = {k: v for k, v in self._held.items() if now < v[1]}  # forget yesterday's keys
        self._held[key] = (value, now + self.seconds)
        return value
