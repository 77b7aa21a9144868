"""Client statements over a date range: the opening balance is summed in the database, so a client with years of
history costs the same as a new one; only the activity inside the range is loaded.

Everything that changes what the client owes is a line: invoices, voids, payments, refunds, and the ledger's
adjustments (an autopay discount settles part of an invoice without money moving), so the closing balance is the
ledger's."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, bindparam, func, select
from sqlalchemy.orm import Session

from portal.domain.invoices import InvoiceStatus
from portal.domain.payments import PaymentStatus, RefundStatus
from portal.domain.statements import Entry, Statement, build_statement
from portal.models import Invoice, LedgerAdjustment, Payment, Refund

from .keysets import written


def client_statement(session: Session, client_id: int, start: date, end: date) -> Statement:
    if end < start:
        start, end = end, start
    params = {"client_id": client_id, "start": start, "end": end}
    invoiced, voided, paid, refunded, adjusted = session.execute(_OWED_BEFORE, params).one()
    opening = invoiced - voided - paid + refunded - adjusted
    entries: list[Entry] = []
    for inv in session.scalars(_ISSUED, params):
        entries.append(Entry(inv.issue_date, "invoice", inv.number, f"Invoice {inv.number}", inv.total_cents, 0))
    for inv in session.scalars(_VOIDED, params):
        entries.append(Entry(inv.voided_at.date(), "void", inv.number, f"Invoice {inv.number} voided",
                             0, inv.total_cents))
    for pay in session.scalars(_PAID, params):
        ref = f" {pay.reference}" if pay.reference else ""
        entries.append(Entry(pay.received_on, "payment", f"P-{pay.id}", f"Payment ({pay.method}){ref}",
                             0, pay.amount_cents))
    for refund in session.scalars(_REFUNDED, params):
        entries.append(Entry(refund.refunded_on, "refund", f"R-{refund.id}",
                             f"Refund of payment P-{refund.payment_id}", refund.amount_cents, 0))
    for adjustment, number in session.execute(_ADJUSTED, params):
        cents = adjustment.amount_cents  # positive: owes less; a reversal is a negative row
        entries.append(Entry(adjustment.created_at.date(), "adjustment", f"A-{adjustment.id}",
                             f"{adjustment.memo or 'Adjustment'} on invoice {number}", max(0, -cents), max(0, cents)))
    return build_statement(entries, start, end, opening_cents=opening)


def _day(column):
    """The UTC calendar day of a timestamp; date() works on both SQLite and PostgreSQL (CAST does not on SQLite)."""
    return func.date(column, type_=Date)


# The statements are built once (with the client and the range as parameters): building one costs about as much as
# running it through SQLAlchemy's compiled cache, and a statement view runs six.
_CLIENT, _START, _END = bindparam("client_id"), bindparam("start", type_=Date()), bindparam("end", type_=Date())
_ISSUED_BY_CLIENT = (Invoice.client_id == _CLIENT, Invoice.status != written(InvoiceStatus.DRAFT))
_VOIDED_BY_CLIENT = (*_ISSUED_BY_CLIENT, Invoice.status == written(InvoiceStatus.VOID))
_PAID_BY_CLIENT = (Payment.client_id == _CLIENT, Payment.status == written(PaymentStatus.SUCCEEDED))
_REFUNDED_BY_CLIENT = (Payment.client_id == _CLIENT, Refund.status != written(RefundStatus.FAILED))


def _sum(column, *where):
    return select(func.coalesce(func.sum(column), 0)).where(*where).scalar_subquery()


#: What was owed before the range, in one round trip: invoiced, voided, paid, refunded, adjusted
_OWED_BEFORE = select(
    _sum(Invoice.total_cents, *_ISSUED_BY_CLIENT, Invoice.issue_date < _START),
    _sum(Invoice.total_cents, *_VOIDED_BY_CLIENT, _day(Invoice.voided_at) < _START),
    _sum(Payment.amount_cents, *_PAID_BY_CLIENT, Payment.received_on < _START),
    select(func.coalesce(func.sum(Refund.amount_cents), 0)).join(Payment)
    .where(*_REFUNDED_BY_CLIENT, Refund.refunded_on < _START).scalar_subquery(),
    _sum(LedgerAdjustment.amount_cents, LedgerAdjustment.client_id == _CLIENT,
         _day(LedgerAdjustment.created_at) < _START),
)
_ISSUED = select(Invoice).where(*_ISSUED_BY_CLIENT, Invoice.issue_date.between(_START, _END))
_VOIDED = select(Invoice).where(*_VOIDED_BY_CLIENT, _day(Invoice.voided_at).between(_START, _END))
_PAID = select(Payment).where(*_PAID_BY_CLIENT, Payment.received_on.between(_START, _END))
_REFUNDED = select(Refund).join(Payment).where(*_REFUNDED_BY_CLIENT, Refund.refunded_on.between(_START, _END))
_ADJUSTED = (select(LedgerAdjustment, Invoice.number).join(Invoice, Invoice.id == LedgerAdjustment.invoice_id)
             .where(LedgerAdjustment.client_id == _CLIENT, _day(LedgerAdjustment.created_at).between(_START, _END)))
