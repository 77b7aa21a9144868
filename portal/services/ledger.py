"""Read side of the ledger: what is paid, owed and in credit. Everything is derived from allocation rows; reports
over many invoices or payments read the sums the database keeps of them (``stored_balance``, ``credit_cents``,
models/settled.py).

The rules themselves live in the domain (domain.ledger.invoice_balance, domain.payments.payment_credit); this
module applies them to rows, and states each once in SQL (balance_expr, stored_balance over the kept sum, credit_expr)
for the grouped queries that aging, client lists, standing and credit need, so no page or report computes a balance
its own way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    bindparam,
    case,
    func,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from portal.domain import aging
from portal.domain.invoices import OPEN, display_status
from portal.domain.ledger import NO_BALANCE, OpenItem, invoice_balance
from portal.domain.payments import FAILED, SUCCEEDED
from portal.models import Allocation, Invoice, LedgerAdjustment, Payment, Refund
from portal.models.billing import HOLDS_CREDIT

from .keysets import among_bound, key_values, on_postgresql, one_of, plain_rows

OWING = (OPEN,)  # statuses that can carry a balance
OWING_INVOICE = one_of(Invoice.status, OWING)  # an invoice in one of them, as a condition built once


# --- the rules in SQL ----------------------------------------------------------------------------------------


def _credited_rows() -> Subquery:
    """Every row that lowers what an invoice owes, as (invoice_id, cents): money applied (allocations and their
    reversals) and ledger adjustments (an autopay discount). The ONE place that says what settles an invoice:
    balances, "paid" figures and the grouped queries all read it, so a discount can never be counted by one page
    and missed by another."""
    return union_all(
        select(Allocation.invoice_id.label("invoice_id"), Allocation.amount_cents.label("cents")),
        select(LedgerAdjustment.invoice_id.label("invoice_id"), LedgerAdjustment.amount_cents.label("cents")),
    ).subquery()


def applied_by_invoice(*where: ColumnElement[bool]) -> Subquery:
    """Net amount settled per invoice (money applied, net of reversals, plus adjustments), as (invoice_id, cents).
    ``where`` filters the invoices summed (joined in), e.g. only open ones: paid invoices hold most rows."""
    rows = _credited_rows()
    query = select(rows.c.invoice_id, func.sum(rows.c.cents).label("cents"))
    if where:
        query = query.join(Invoice, Invoice.id == rows.c.invoice_id).where(*where)
    return query.group_by(rows.c.invoice_id).subquery()


def balance_expr(applied: Subquery) -> ColumnElement[int]:
    """domain.ledger.invoice_balance in SQL, for a query over Invoice outer-joined to ``applied_by_invoice()``:
    what decides (standing and holds) reads the rows, not the kept sum."""
    return case((one_of(Invoice.status, NO_BALANCE), 0),
                else_=Invoice.total_cents - func.coalesce(applied.c.cents, 0))


def stored_balance() -> ColumnElement[int]:
    """What an owing invoice (status in OWING: the query must filter on it) still owes, from
    ``Invoice.settled_cents``, the sum of the same rows kept by the database: domain.ledger.invoice_balance for
    reports and figures to show (aging, the dashboard, client lists, a client's summary, the forecast), which would
    otherwise sum allocation rows per view. What moves money or goods or decides a hold (open_items, balance_of, the
    credit-limit check, standing) keeps reading the rows themselves, so a fault in the kept sum could misstate a
    figure, never a charge or a hold."""
    return Invoice.total_cents - Invoice.settled_cents


def applied_by_payment(payments: ColumnElement[bool] | None = None) -> Subquery:
    """Net money applied per payment, as (payment_id, cents); ``payments`` limits the sum to the payments the
    query is about (a condition on ``Allocation.payment_id``): summing every allocation of a million-invoice
    ledger to show one page was most of the payment pages' time."""
    query = select(Allocation.payment_id, func.sum(Allocation.amount_cents).label("cents"))
    if payments is not None:
        query = query.where(payments)
    return query.group_by(Allocation.payment_id).subquery()


def refunded_by_payment(payments: ColumnElement[bool] | None = None) -> Subquery:
    """Money refunded per payment, as (payment_id, cents): every refund but a failed one. ``payments``: as above,
    a condition on ``Refund.payment_id``."""
    query = select(Refund.payment_id, func.sum(Refund.amount_cents).label("cents")).where(Refund.status != FAILED)
    if payments is not None:
        query = query.where(payments)
    return query.group_by(Refund.payment_id).subquery()


def credit_expr(applied: Subquery, refunded: Subquery) -> ColumnElement[int]:
    """domain.payments.payment_credit in SQL, for a query over Payment outer-joined to ``applied_by_payment()``
    and ``refunded_by_payment()``."""
    return case((Payment.status == SUCCEEDED,
                 Payment.amount_cents - func.coalesce(applied.c.cents, 0) - func.coalesce(refunded.c.cents, 0)),
                else_=0)


# --- per invoice / per payment -------------------------------------------------------------------------------


def paid_cents(session: Session, invoice_ids: Iterable[int]) -> dict[int, int]:
    """Net amount settled per invoice: money applied (allocations minus reversals) plus adjustments such as an
    autopay discount (see _credited_rows; adjustments_by_invoice tells the discount apart for display)."""
    ids = list(invoice_ids)
    if not ids:
        return {}
    paid = dict.fromkeys(ids, 0)
    rows = plain_rows(session, _paid_statement(on_postgresql(session)),
                      {"invoice_ids": key_values(session, Invoice.id, ids)})
    paid.update({invoice_id: int(total) for invoice_id, total in rows})
    return paid


@cache
def _paid_statement(postgresql: bool) -> Select:
    """Built once per kind of database, the invoices one bound parameter (keysets.among_bound): paying, booking,
    the invoice pages and the portal's home all read it, and building it (a union of the settling tables) cost
    more than running it (bench/README.md)."""
    settled = _credited_rows()
    return (select(settled.c.invoice_id, func.sum(settled.c.cents))
            .where(among_bound(settled.c.invoice_id, "invoice_ids", postgresql=postgresql))
            .group_by(settled.c.invoice_id))


def balance_of(session: Session, invoice: Invoice) -> int:
    return invoice_balance(invoice.status, invoice.total_cents, paid_cents(session, [invoice.id])[invoice.id])


@dataclass(frozen=True)
class InvoiceFigures:
    """What every page, PDF and email shows about one invoice."""

    paid_cents: int
    balance_cents: int
    status: str  # what a person sees: draft, open, partially paid, overdue, paid, void


def figures_for(invoice: Invoice, paid: int, today: date) -> InvoiceFigures:
    return InvoiceFigures(paid, invoice_balance(invoice.status, invoice.total_cents, paid),
                          display_status(invoice.status, invoice.total_cents, paid, invoice.due_date, today))


def invoice_figures(session: Session, invoice: Invoice, today: date) -> InvoiceFigures:
    return figures_for(invoice, paid_cents(session, [invoice.id])[invoice.id], today)


@dataclass(frozen=True)
class AdjustmentLine:
    kind: str  # autopay_discount | write_off
    label: str
    cents: int


def adjustments_on(session: Session, invoice_id: int) -> list[AdjustmentLine]:
    """What was taken off the invoice without money moving (an autopay discount, a small balance written off), one
    line per kind: the invoice pages show each under the total, apart from what was paid."""
    rows = session.execute(_ADJUSTMENTS, {"invoice_id": invoice_id})
    return [AdjustmentLine(kind, memo or kind.replace("_", " ").capitalize(), int(cents))
            for kind, memo, cents in rows if cents]


# Built once: every view of an invoice reads it (twice on the client's invoice page).
_ADJUSTMENTS = (select(LedgerAdjustment.kind, func.min(LedgerAdjustment.memo), func.sum(LedgerAdjustment.amount_cents))
                .where(LedgerAdjustment.invoice_id == bindparam("invoice_id"))
                .group_by(LedgerAdjustment.kind).order_by(func.min(LedgerAdjustment.id)))


def applied_and_refunded(session: Session, payment_ids: Iterable[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Per payment: net money applied to invoices, and money refunded (what payment_credit needs)."""
    ids = list(payment_ids)
    if not ids:
        return {}, {}
    rows = session.execute(_applied_and_refunded_statement(on_postgresql(session)),
                           {"payment_ids": key_values(session, Payment.id, ids)})
    by_applied, by_refunded = {}, {}
    for payment_id, applied_cents, refunded_cents in rows:
        by_applied[payment_id], by_refunded[payment_id] = int(applied_cents or 0), int(refunded_cents or 0)
    return by_applied, by_refunded


@cache
def _applied_and_refunded_statement(postgresql: bool) -> Select:
    """Built once per kind of database, the payments one bound parameter (keysets.among_bound): built per call with
    the ids written into it three times, it was two fifths of the client's payment list."""
    def theirs(column: ColumnElement[int]) -> ColumnElement[bool]:
        return among_bound(column, "payment_ids", postgresql=postgresql)

    applied = applied_by_payment(theirs(Allocation.payment_id))
    refunded = refunded_by_payment(theirs(Refund.payment_id))
    return (select(Payment.id, applied.c.cents, refunded.c.cents)
            .outerjoin(applied, applied.c.payment_id == Payment.id)
            .outerjoin(refunded, refunded.c.payment_id == Payment.id)
            .where(theirs(Payment.id)))


def open_items(session: Session, client_id: int, *, lock: bool = False) -> list[OpenItem]:
    """The client's invoices with money owing, oldest due first: the default order for applying payments."""
    invoices = session.scalars(_open_invoices_statement(lock), {"client_id": client_id}).all()
    paid = paid_cents(session, [i.id for i in invoices])
    items = [OpenItem(i.id, invoice_balance(i.status, i.total_cents, paid[i.id]), i.number, i.due_date)
             for i in invoices]
    return [item for item in items if item.balance_cents > 0]


@cache
def _open_invoices_statement(lock: bool) -> Select:
    """Built once each (paying, booking and the plan banner read it)."""
    query = (select(Invoice).where(Invoice.client_id == bindparam("client_id"), OWING_INVOICE)
             .order_by(Invoice.due_date, Invoice.id))
    return query.with_for_update() if lock else query  # lock: serialise concurrent allocations (PostgreSQL)


def unallocated_by_payment(session: Session, client_id: int) -> list[tuple[Payment, int]]:
    """Payments with money not yet applied nor refunded (the client's credit), oldest first, from the rows (what
    applying credit reads; credit_cents, for display, reads the kept sums)."""
    theirs = select(Payment.id).where(Payment.client_id == client_id)
    applied = applied_by_payment(Allocation.payment_id.in_(theirs))
    refunded = refunded_by_payment(Refund.payment_id.in_(theirs))
    free = credit_expr(applied, refunded)
    rows = session.execute(select(Payment, free).outerjoin(applied, applied.c.payment_id == Payment.id)
                           .outerjoin(refunded, refunded.c.payment_id == Payment.id)
                           .where(Payment.client_id == client_id, free > 0)
                           .order_by(Payment.received_on, Payment.id))
    return [(payment, int(cents)) for payment, cents in rows]


def credit_cents(session: Session, client_id: int) -> int:
    """The client's credit, for display: unallocated_by_payment's total, summed in the database over the sums it
    keeps on each payment (models/settled.py) and only the payments that hold credit (their own index)."""
    return int(plain_rows(session, _CREDIT, {"client_id": client_id}).scalar_one())


# credit_expr over the kept sums, with the very condition of the index it reads (models/billing.py): built once
_CREDIT = (select(func.coalesce(func.sum(Payment.amount_cents - Payment.applied_cents - Payment.refunded_cents), 0))
           .where(Payment.client_id == bindparam("client_id"), text(HOLDS_CREDIT)))


@dataclass(frozen=True)
class ClientSummary:
    balance_due_cents: int
    overdue_cents: int
    overdue_count: int
    open_count: int
    next_due_date: date | None
    credit_cents: int
    aging: aging.AgingReport


def client_summary(session: Session, client_id: int, today: date) -> ClientSummary:
    """What a client owes, for display (the client's admin page, the portal's home), from the kept sums."""
    owing = _owing_by_due_date(session, client_id)
    report = aging.age(owing, today)
    return ClientSummary(
        balance_due_cents=report.total_cents,
        overdue_cents=report.overdue_cents,
        overdue_count=report.overdue_count,
        open_count=sum(count for _, _, count in owing),
        next_due_date=min((due for due, _, _ in owing if due >= today), default=None),
        credit_cents=credit_cents(session, client_id),
        aging=report,
    )


def owing_cents(session: Session, client_id: int) -> int:
    """What the client's invoices still owe, from the kept sums: a figure to show (a check that lets money or goods
    move sums open_items under its locks)."""
    return sum(cents for _, cents, _ in _owing_by_due_date(session, client_id))


def receivables(session: Session, today: date, client_id: int | None = None) -> aging.AgingReport:
    """A/R aging across all clients (or one), grouped in the database so it scales to many invoices."""
    return aging.age(_owing_by_due_date(session, client_id), today)


def _owing_by_due_date(session: Session, client_id: int | None) -> list[tuple[date, int, int]]:
    """(due date, cents owed, invoices) over every owing invoice (or one client's), from the kept sums."""
    rows = plain_rows(session, _owing_statement(client_id is not None), {"client_id": client_id})
    return [(due_date, int(cents), int(count)) for due_date, cents, count in rows]


@cache
def _owing_statement(by_client: bool) -> Select:
    """Built once each (a client's overview and the portal's home read it on every view)."""
    owed = stored_balance()
    query = select(Invoice.due_date, func.sum(owed), func.count()).where(OWING_INVOICE, owed > 0)
    if by_client:
        query = query.where(Invoice.client_id == bindparam("client_id"))
    return query.group_by(Invoice.due_date)
