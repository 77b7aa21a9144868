"""Read side of the ledger: what is paid, owed and in credit. Everything is derived from allocation rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.domain import aging
from portal.domain.ledger import OpenItem
from portal.models import Allocation, Invoice, Payment, Refund

OWING = ("open",)  # statuses that can carry a balance


def paid_cents(session: Session, invoice_ids: Iterable[int]) -> dict[int, int]:
    """Net money applied per invoice (allocations minus reversals)."""
    ids = list(invoice_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Allocation.invoice_id, func.sum(Allocation.amount_cents))
        .where(Allocation.invoice_id.in_(ids))
        .group_by(Allocation.invoice_id)
    )
    paid = dict.fromkeys(ids, 0)
    paid.update({invoice_id: int(total) for invoice_id, total in rows})
    return paid


def balance_of(session: Session, invoice: Invoice) -> int:
    if invoice.status in ("draft", "void"):
        return 0
    return invoice.total_cents - paid_cents(session, [invoice.id])[invoice.id]


def open_items(session: Session, client_id: int, *, lock: bool = False) -> list[OpenItem]:
    """The client's invoices with money owing, oldest due first: the default order for applying payments."""
    query = (
        select(Invoice)
        .where(Invoice.client_id == client_id, Invoice.status.in_(OWING))
        .order_by(Invoice.due_date, Invoice.id)
    )
    if lock:  # serialise concurrent allocations to the same invoices on PostgreSQL
        query = query.with_for_update()
    invoices = session.scalars(query).all()
    paid = paid_cents(session, [i.id for i in invoices])
    return [
        OpenItem(i.id, i.total_cents - paid[i.id], i.number)
        for i in invoices
        if i.total_cents - paid[i.id] > 0
    ]


def unallocated_by_payment(session: Session, client_id: int) -> list[tuple[Payment, int]]:
    """Succeeded payments with money not yet applied nor refunded (the client's credit), oldest first."""
    allocated = (
        select(Allocation.payment_id, func.sum(Allocation.amount_cents).label("cents"))
        .group_by(Allocation.payment_id)
        .subquery()
    )
    refunded = (
        select(Refund.payment_id, func.sum(Refund.amount_cents).label("cents"))
        .where(Refund.status != "failed")
        .group_by(Refund.payment_id)
        .subquery()
    )
    free = Payment.amount_cents - func.coalesce(allocated.c.cents, 0) - func.coalesce(refunded.c.cents, 0)
    rows = session.execute(
        select(Payment, free)
        .outerjoin(allocated, allocated.c.payment_id == Payment.id)
        .outerjoin(refunded, refunded.c.payment_id == Payment.id)
        .where(Payment.client_id == client_id, Payment.status == "succeeded", free > 0)
        .order_by(Payment.received_on, Payment.id)
    )
    return [(payment, int(cents)) for payment, cents in rows]


def credit_cents(session: Session, client_id: int) -> int:
    return sum(cents for _, cents in unallocated_by_payment(session, client_id))


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
    invoices = session.scalars(
        select(Invoice).where(Invoice.client_id == client_id, Invoice.status.in_(OWING))
    ).all()
    paid = paid_cents(session, [i.id for i in invoices])
    owing = [(i.due_date, i.total_cents - paid[i.id]) for i in invoices if i.total_cents > paid[i.id]]
    report = aging.age(owing, today)
    upcoming = sorted(due for due, _ in owing if due >= today)
    return ClientSummary(
        balance_due_cents=report.total_cents,
        overdue_cents=report.overdue_cents,
        overdue_count=report.overdue_count,
        open_count=len(owing),
        next_due_date=upcoming[0] if upcoming else None,
        credit_cents=credit_cents(session, client_id),
        aging=report,
    )


def receivables(session: Session, today: date, client_id: int | None = None) -> aging.AgingReport:
    """A/R aging across all clients (or one), grouped in the database so it scales to many invoices."""
    applied = (
        select(Allocation.invoice_id, func.sum(Allocation.amount_cents).label("cents"))
        .group_by(Allocation.invoice_id)
        .subquery()
    )
    owed = Invoice.total_cents - func.coalesce(applied.c.cents, 0)
    query = (
        select(Invoice.due_date, func.sum(owed), func.count())
        .outerjoin(applied, applied.c.invoice_id == Invoice.id)
        .where(Invoice.status.in_(OWING), owed > 0)
        .group_by(Invoice.due_date)
    )
    if client_id is not None:
        query = query.where(Invoice.client_id == client_id)
    report = aging.AgingReport()
    for due_date, cents, count in session.execute(query):
        bucket = aging.bucket_for(due_date, today)
        report.totals[bucket] += int(cents)
        report.counts[bucket] += int(count)
    return report
