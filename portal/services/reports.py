"""Read-only lists for the staff area: clients with their balances, invoices, payments, top debtors.

Lists are reports: invoice balances come from the settled sums the database keeps (``ledger.stored_balance``,
checked against the allocation rows by the test suite), aggregated in the database, and only one page of rows is
loaded, so the lists stay fast at a million invoices. What moves money derives balances from the rows (ledger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from math import ceil
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from portal.domain.clients import ClientStatus
from portal.domain.invoices import InvoiceStatus, display_status
from portal.domain.ledger import invoice_balance
from portal.domain.payments import PaymentStatus, payment_credit
from portal.models import Allocation, Client, Invoice, Payment

from .keysets import among_written, plain_rows, written_ids
from .ledger import OWING_INVOICE, paid_cents, stored_balance

INVOICE_FILTERS = ("draft", "open", "overdue", "paid", "void")
CLIENT_SORTS = ("name", "balance", "overdue")


#: Lists count their rows up to this many and show "more than" beyond: counting a million invoices on every page
#: view was most of an admin list's time at scale (issue 14). Even 10,000 rows were ~2 ms of a ~7 ms page (40
#: pages of 25 is more than anyone pages through; past them a search or filter is the way, and Next still works).
COUNT_CAP = 1_000


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int  # rows in the list, or COUNT_CAP when there are more (``more``)
    more: bool = False

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages or self.more


    def with_items(self, items: list[Any]) -> Page:
        return replace(self, items=items)


def paginate(session: Session, query: Select, page: int, per_page: int, cap: int = COUNT_CAP) -> Page:
    """One page of ``query``'s rows; the count stops at ``cap`` (an index range, not the whole table). The count
    leaves the columns out (some are per-row sums), so ``query`` must not be DISTINCT."""
    return _run_list(session, _listed(query, cap), {}, page, per_page, cap)


def _count_of(query: Select, cap: int = COUNT_CAP) -> Select:
    """How many rows ``query`` has, counted up to ``cap + 1``, its columns left out."""
    rows = query.with_only_columns(literal(1), maintain_column_froms=True).order_by(None)
    return select(func.count()).select_from(rows.limit(cap + 1).subquery())


def page_of(rows: Sequence, page: int, per_page: int) -> Page:
    """One page of a list already read whole (its counts needed every row anyway); a page past the end is the last."""
    number = min(max(1, page), max(1, ceil(len(rows) / per_page)))
    start = (number - 1) * per_page
    return Page(list(rows[start:start + per_page]), number, per_page, len(rows))


def _page_within(counted: int, page: int, per_page: int, cap: int = COUNT_CAP) -> Page:
    more = counted > cap
    total = min(counted, cap)
    page = max(1, page) if more else min(max(1, page), max(1, ceil(total / per_page)))
    return Page([], page, per_page, total, more)


def _listed(query: Select, cap: int = COUNT_CAP) -> tuple[Select, Select]:
    """A list's count and page statements (a list whose shape is fixed builds them once): the page is
    ``LIMIT :limit OFFSET :offset``, its rows carrying the count (``_counted``)."""
    count = _count_of(query, cap)
    return count, _counted(query.limit(bindparam("limit")).offset(bindparam("offset")), count)


def _counted(page: Select, count: Select) -> Select:
    """``page`` with the list's capped count as a last column: the page and its count in one round trip. The count
    is not correlated with the page's rows, so the database works it out once (PostgreSQL: an InitPlan; SQLite: a
    constant subquery), and only when the page has a row."""
    return page.add_columns(count.scalar_subquery().label("listed_count"))


def _run_list(session: Session, statements: tuple[Select, Select], values: dict, page: int, per_page: int,
              cap: int = COUNT_CAP) -> Page:
    """One page of a list built by ``_listed`` (or shaped like it), with ``values`` for its named parameters (a
    statement reads the ones it has). The page asked for comes with its count; only a page with no rows (an empty
    list, or a page past the end, which shows the last page) counts on its own."""
    count, rows = statements
    asked = max(1, page)
    found = session.execute(rows, {**values, "limit": per_page, "offset": (asked - 1) * per_page}).all()
    listed = _page_within(found[0][-1] if found else session.scalar(count, values) or 0, asked, per_page, cap)
    if listed.page != asked:
        found = session.execute(rows, {**values, "limit": per_page, "offset": (listed.page - 1) * per_page}).all()
    return listed.with_items([row[:-1] for row in found])


# What a list's search box asked for (as _like makes it), written into the statement when it runs: how many rows a
# pattern matches differs wildly from one search to the next, so each gets a plan for its own pattern, never a
# prepared statement's generic one.
_PATTERN = bindparam("pattern", type_=String(), literal_execute=True)


def _search(session: Session, q: str) -> tuple[str | None, dict]:
    """A list search: the kind of statement it needs (the dialect's name, as ``_named`` differs; None: no search)
    and its parameters, the pattern and the ids of the clients whose name matches it.

    A list's rows are matched on their number or reference (on PostgreSQL through its trigram index, models/search.py)
    or on their client's id, not by joining every row to its client to test the name (a search that found little
    read a million invoices and looked up a client for each: 2 s). The clients are found first, in a statement of
    their own, and their ids written into the list's statement: with the names' ``IN (SELECT ...)`` in it the
    planner could not tell how many rows a search finds, walked the list's date index instead of the two indexes,
    and a search that found nothing read all million invoices (~450 ms for the page and its count). The ids come
    back as one string and go in as one literal: a search that names every client (``llc``) has 10,000 of them."""
    if not q.strip():
        return None, {}
    pattern, dialect = _like(q), session.get_bind().dialect.name
    ids = session.scalar(_CLIENTS_NAMED, {"pattern": pattern}) or ""
    return dialect, {"pattern": pattern, "named": written_ids(ids, postgresql=dialect == "postgresql")}


_CLIENTS_NAMED = select(func.aggregate_strings(cast(Client.id, String()), ",")).where(
    func.lower(Client.legal_name).like(_PATTERN, escape="\\"))


def _named(column: ColumnElement[int], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the clients ``_search`` found (bound by name: named)."""
    return among_written(column, "named", postgresql=dialect == "postgresql")


def _like(q: str) -> str:
    escaped = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- clients -------------------------------------------------------------------------------------------------


class ListedClient(NamedTuple):
    """What the client list prints of a client, read like a Client: the list selects these columns, not whole ORM
    clients (ListedInvoice says why)."""

    id: int
    legal_name: str
    external_id: str | None
    status: str


LISTED_CLIENT = tuple(getattr(Client, name) for name in ListedClient._fields)


@dataclass(frozen=True)
class ClientRow:
    client: ListedClient
    balance_due_cents: int
    overdue_cents: int
    open_count: int
    overdue_count: int
    oldest_due: date | None


def owing_by_client(today: date | ColumnElement[date], client_ids: list[int] | Select | None = None):
    """One row per client with money owing: balance, overdue part, counts. A subquery to join or filter."""
    owing_invoice = OWING_INVOICE
    if client_ids is not None:
        owing_invoice = owing_invoice & Invoice.client_id.in_(client_ids)
    owed = stored_balance()
    late = Invoice.due_date < today
    return (
        select(
            Invoice.client_id.label("client_id"),
            func.sum(owed).label("due"),
            func.sum(case((late, owed), else_=0)).label("overdue"),
            func.count().label("open_count"),
            func.sum(case((late, 1), else_=0)).label("overdue_count"),
            func.min(Invoice.due_date).label("oldest_due"),
        )
        .where(owing_invoice, owed > 0)
        .group_by(Invoice.client_id)
        .subquery()
    )


def _with_owing(owing):
    return select(
        *LISTED_CLIENT, owing.c.due, owing.c.overdue, owing.c.open_count, owing.c.overdue_count, owing.c.oldest_due
    )


def _client_rows(rows) -> list[ClientRow]:
    """LISTED_CLIENT's columns, then the owing figures."""
    width, listed = len(LISTED_CLIENT), []
    for row in rows:
        due, overdue, count, overdue_count, oldest = row[width:]
        listed.append(ClientRow(ListedClient._make(row[:width]), int(due or 0), int(overdue or 0), int(count or 0),
                                int(overdue_count or 0), oldest))
    return listed


def client_page(
    session: Session, today: date, *, q: str = "", status: str = "", sort: str = "name", page: int = 1,
    per_page: int = 25,
) -> Page:
    """Clients with their balances. Sorted by name, only the page's clients are summed; sorted by what they
    owe, the sums for every client with an open invoice are needed (one grouped query either way)."""
    by_owing = sort if sort in ("balance", "overdue") else None
    found = _run_list(session, _client_list(by_owing, bool(q.strip()), bool(status)),
                      {"pattern": _like(q), "status": status, "today": today}, page, per_page)
    return found.with_items(_client_rows(found.items))


@cache
def _client_list(by_owing: str | None, searched: bool, by_status: bool) -> tuple[Select, Select]:
    """The client list's count and page statements for one kind of request, built once: building them (and
    SQLAlchemy's cache key for them) per request was a quarter of the page's time. Bound by name: pattern, status,
    today, limit, offset."""
    filters = []
    if searched:
        filters.append(or_(func.lower(Client.legal_name).like(_PATTERN, escape="\\"),
                           func.lower(Client.external_id).like(_PATTERN, escape="\\")))
    if by_status:
        filters.append(Client.status == bindparam("status"))
    today, limit, offset = bindparam("today", type_=Date()), bindparam("limit"), bindparam("offset")
    if by_owing:
        owing = owing_by_client(today)
        column = owing.c.due if by_owing == "balance" else owing.c.overdue
        query = (_with_owing(owing).outerjoin(owing, owing.c.client_id == Client.id).where(*filters)
                 .order_by(func.coalesce(column, 0).desc(), Client.legal_name, Client.id)
                 .limit(limit).offset(offset))
    else:
        # the page's clients as a subquery (summed alone, in the same statement as their rows)
        ids = select(Client.id).where(*filters).order_by(Client.legal_name, Client.id).limit(limit).offset(offset)
        owing = owing_by_client(today, ids)
        query = (_with_owing(owing).outerjoin(owing, owing.c.client_id == Client.id)
                 .where(Client.id.in_(ids)).order_by(Client.legal_name, Client.id))
    count = _count_of(select(Client.id).where(*filters))
    return count, _counted(query, count)


def find_clients(session: Session, q: str, limit: int = 20) -> list[Client]:
    """A short list for choosing a client (new invoice / new payment)."""
    query = select(Client).where(Client.status != ClientStatus.INACTIVE).order_by(Client.legal_name).limit(limit)
    if q.strip():
        pattern = _like(q)
        query = query.where(or_(func.lower(Client.legal_name).like(pattern, escape="\\"),
                                func.lower(Client.external_id).like(pattern, escape="\\")))
    return list(session.scalars(query))


# --- invoices ------------------------------------------------------------------------------------------------


class ListedInvoice(NamedTuple):
    """What a list of invoices prints (the staff lists, the client's; templates/client/_invoice_table.html) and
    ledger.figures_for reads, read like an Invoice. Lists select only these columns (LISTED_INVOICE) instead of
    loading whole ORM objects (19 columns each, through the ORM's row handling: a quarter of the instructions of a
    client's invoices tab of 50 rows, a sixth of /admin/invoices'), and keep each row as this named tuple rather
    than a Row: a template reads a dozen attributes of every row, and a Row finds each by name (the conversion cut
    8% of the instructions of a page of 25 invoices). Their balances come from the settled sum the database keeps
    (ledger.stored_balance), not from the allocation rows: a list is a report; the invoice's own page, and whatever
    takes money, derive it from the rows."""

    id: int
    client_id: int
    number: str
    status: str
    currency: str
    issue_date: date
    due_date: date
    total_cents: int
    settled_cents: int


LISTED_INVOICE = tuple(getattr(Invoice, name) for name in ListedInvoice._fields)


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice | ListedInvoice  # a ListedInvoice in the lists
    client_name: str
    paid_cents: int

    @property
    def balance_cents(self) -> int:
        return invoice_balance(self.invoice.status, self.invoice.total_cents, self.paid_cents)

    def display_status(self, today: date) -> str:
        i = self.invoice
        return display_status(i.status, i.total_cents, self.paid_cents, i.due_date, today)


def invoice_page(
    session: Session, today: date, *, status: str = "", q: str = "", client_id: int | None = None, page: int = 1,
    per_page: int = 25,
) -> Page:
    shown = status if status == "overdue" else ("one status" if status in INVOICE_FILTERS else None)
    search, searched = _search(session, q)
    found = _run_list(session, _invoice_list(shown, client_id is not None, search),
                      {"status": status, "today": today, "client_id": client_id, **searched}, page, per_page)
    # a list is a report: the settled sums the database keeps (ledger.stored_balance), no allocation rows read
    listed = [(ListedInvoice._make(row[:-1]), row[-1]) for row in found.items]  # the listed columns, then the name
    return found.with_items([InvoiceRow(invoice, name, invoice.settled_cents) for invoice, name in listed])


@cache
def _invoice_list(shown: str | None, by_client: bool, search: str | None) -> tuple[Select, Select]:
    """The invoice list's statements for one kind of request (``shown``: None, "overdue" or "one status"), built
    once; bound by name: status, today, client_id, pattern, named, limit, offset (``search``: ``_search``)."""
    # an outer join (every invoice has its client) lets PostgreSQL leave clients out of the capped count
    query = select(*LISTED_INVOICE, Client.legal_name).outerjoin(Client, Client.id == Invoice.client_id)
    if shown == "overdue":
        query = query.where(Invoice.status == InvoiceStatus.OPEN,
                            Invoice.due_date < bindparam("today", type_=Date()))
    elif shown:
        query = query.where(Invoice.status == bindparam("status"))
    if by_client:
        query = query.where(Invoice.client_id == bindparam("client_id"))
    if search:
        query = query.where(or_(func.lower(Invoice.number).like(_PATTERN, escape="\\"),
                                _named(Invoice.client_id, search)))
    order = (Invoice.due_date, Invoice.id) if shown == "overdue" else (Invoice.issue_date.desc(), Invoice.id.desc())
    return _listed(query.order_by(*order))


def client_invoices(session: Session, client_id: int, limit: int = 50) -> list[InvoiceRow]:
    invoices = map(ListedInvoice._make, plain_rows(session, _CLIENT_INVOICES, {"client_id": client_id, "limit": limit}))
    return [InvoiceRow(i, "", i.settled_cents) for i in invoices]  # a report: the kept sums (see invoice_page)


_CLIENT_INVOICES = (select(*LISTED_INVOICE).where(Invoice.client_id == bindparam("client_id"))
                    .order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(bindparam("limit")))


def open_invoices(session: Session, client_id: int) -> list[InvoiceRow]:
    """The client's invoices with money owing, oldest due first (the order payments are applied in)."""
    invoices = session.scalars(
        select(Invoice).where(Invoice.client_id == client_id, OWING_INVOICE)
        .order_by(Invoice.due_date, Invoice.id)
    ).all()
    paid = paid_cents(session, [i.id for i in invoices])
    rows = [InvoiceRow(i, "", paid[i.id]) for i in invoices]
    return [row for row in rows if row.balance_cents > 0]


@dataclass(frozen=True)
class AllocationRow:
    allocation: Allocation
    payment: Payment


def invoice_allocations(session: Session, invoice_id: int) -> list[AllocationRow]:
    """Which payments were applied to an invoice and when, reversals included (negative amounts)."""
    rows = session.execute(
        select(Allocation, Payment).join(Payment, Payment.id == Allocation.payment_id)
        .where(Allocation.invoice_id == invoice_id).order_by(Allocation.id)
    ).all()
    return [AllocationRow(a, p) for a, p in rows]


# --- payments ------------------------------------------------------------------------------------------------


class ListedPayment(NamedTuple):
    """What a list of payments prints, read like a Payment: the lists select these columns (LISTED_PAYMENT), not
    whole ORM payments (ListedInvoice says why)."""

    id: int
    client_id: int
    received_on: date
    method: str
    reference: str
    amount_cents: int
    currency: str
    status: str


LISTED_PAYMENT = tuple(getattr(Payment, name) for name in ListedPayment._fields)


@dataclass(frozen=True)
class PaymentRow:
    payment: Payment | ListedPayment  # a ListedPayment in the lists
    client_name: str
    applied_cents: int
    refunded_cents: int

    @property
    def unapplied_cents(self) -> int:
        """The part that is the client's credit."""
        return payment_credit(self.payment.status, self.payment.amount_cents, self.applied_cents,
                              self.refunded_cents)

    @property
    def display_status(self) -> str:
        if self.payment.status == PaymentStatus.SUCCEEDED and self.refunded_cents:
            full = self.refunded_cents >= self.payment.amount_cents
            return "refunded" if full else "partially refunded"
        return self.payment.status


# A payment with its client's name and the sums PaymentRow needs, kept on the payment (models/settled.py) and read
# as columns of the row: fresh even when the session already holds the Payment from before an allocation
_SUMS = (Client.legal_name, Payment.applied_cents, Payment.refunded_cents)


def _payments(*payment: Any) -> Select:
    """``payment``: the Payment entity (a payment's own page) or LISTED_PAYMENT's columns (the lists)."""
    return select(*payment, *_SUMS).join(Client, Client.id == Payment.client_id)


def _payment_rows(rows) -> list[PaymentRow]:
    return [PaymentRow(p, name, int(applied), int(refunded)) for p, name, applied, refunded in rows]


def _listed_payment_rows(rows) -> list[PaymentRow]:
    """LISTED_PAYMENT's columns, then the client's name and the kept sums."""
    width = len(LISTED_PAYMENT)
    return _payment_rows((ListedPayment._make(row[:width]), *row[width:]) for row in rows)


def payment_page(
    session: Session, *, client_id: int | None = None, q: str = "", page: int = 1, per_page: int = 25
) -> Page:
    search, searched = _search(session, q)
    found = _run_list(session, _payment_list(client_id is not None, search),
                      {"client_id": client_id, **searched}, page, per_page)
    return found.with_items(_listed_payment_rows(found.items))


@cache
def _payment_list(by_client: bool, search: str | None) -> tuple[Select, Select]:
    """The payment list's statements for one kind of request, built once; bound by name: client_id, pattern, named,
    limit, offset (``search``: ``_search``)."""
    query = _payments(*LISTED_PAYMENT)
    if by_client:
        query = query.where(Payment.client_id == bindparam("client_id"))
    if search:
        query = query.where(or_(func.lower(Payment.reference).like(_PATTERN, escape="\\"),
                                _named(Payment.client_id, search)))
    return _listed(query.order_by(Payment.received_on.desc(), Payment.id.desc()))


def payment_row(session: Session, payment: Payment) -> PaymentRow:
    return _payment_rows([session.execute(_payments(Payment).where(Payment.id == payment.id)).one()])[0]


def client_payments(session: Session, client_id: int, limit: int = 50) -> list[PaymentRow]:
    return _listed_payment_rows(plain_rows(session, _CLIENT_PAYMENTS, {"client_id": client_id, "limit": limit}))


_CLIENT_PAYMENTS = (_payments(*LISTED_PAYMENT).where(Payment.client_id == bindparam("client_id"))
                    .order_by(Payment.received_on.desc(), Payment.id.desc()).limit(bindparam("limit")))
