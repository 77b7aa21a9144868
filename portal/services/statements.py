"""Client statements over a date range: the opening balance is summed in the database, so a client with years of
history costs the same as a new one; only the activity inside the range is loaded.

Everything that changes what the client owes is a line: invoices, voids, payments, refunds, and the ledger's
adjustments (an autopay discount settles part of an invoice without money moving), so the closing balance is the
ledger's."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, func, select
from sqlalchemy.orm import Session

from portal.domain.invoices import InvoiceStatus
from portal.domain.payments import PaymentStatus, RefundStatus
from portal.domain.statements import Entry, Statement, build_statement
from portal.models import Invoice, LedgerAdjustment, Payment, Refund


def client_statement(session: Session, client_id: int, start: date, end: date) -> Statement:
    if end < start:
        start, end = end, start
    opening = _owed_before(session, client_id, start)
    entries: list[Entry] = []
    issued = select(Invoice).where(Invoice.client_id == client_id, Invoice.status != InvoiceStatus.DRAFT)
    for inv in session.scalars(issued.where(Invoice.issue_date.between(start, end))):
        entries.append(Entry(inv.issue_date, "invoice", inv.number, f"Invoice {inv.number}", inv.total_cents, 0))
    voided_on = _day(Invoice.voided_at)
    for inv in session.scalars(issued.where(Invoice.status == InvoiceStatus.VOID, voided_on.between(start, end))):
        entries.append(Entry(inv.voided_at.date(), "void", inv.number, f"Invoice {inv.number} voided",
                             0, inv.total_cents))
    for pay in session.scalars(_payments(client_id).where(Payment.received_on.between(start, end))):
        ref = f" {pay.reference}" if pay.reference else ""
        entries.append(Entry(pay.received_on, "payment", f"P-{pay.id}", f"Payment ({pay.method}){ref}",
                             0, pay.amount_cents))
    for refund in session.scalars(_refunds(client_id).where(Refund.refunded_on.between(start, end))):
        entries.append(Entry(refund.refunded_on, "refund", f"R-{refund.id}",
                             f"Refund of payment P-{refund.payment_id}", refund.amount_cents, 0))
    made_on = _day(LedgerAdjustment.created_at)
    for adjustment, number in session.execute(_adjustments(client_id).where(made_on.between(start, end))):
        cents = adjustment.amount_cents  # positive: owes less; a reversal is a negative row
        entries.append(Entry(adjustment.created_at.date(), "adjustment", f"A-{adjustment.id}",
                             f"{adjustment.memo or 'Adjustment'} on invoice {number}", max(0, -cents), max(0, cents)))
    return build_statement(entries, start, end, opening_cents=opening)


def _day(column):
    """The UTC calendar day of a timestamp; date() works on both SQLite and PostgreSQL (CAST does not on SQLite)."""
    return func.date(column, type_=Date)


def _payments(client_id: int):
    return select(Payment).where(Payment.client_id == client_id, Payment.status == PaymentStatus.SUCCEEDED)


def _refunds(client_id: int):
    return select(Refund).join(Payment).where(Payment.client_id == client_id, Refund.status != RefundStatus.FAILED)


def _adjustments(client_id: int):
    return (select(LedgerAdjustment, Invoice.number).join(Invoice, Invoice.id == LedgerAdjustment.invoice_id)
            .where(LedgerAdjustment.client_id == client_id))


def _owed_before(session: Session, client_id: int, start: date) -> int:
    """Invoiced − voided − paid + refunded − adjusted, for everything dated before ``start``."""

    def total(query) -> int:
        return int(session.scalar(query) or 0)

    invoiced = total(select(func.sum(Invoice.total_cents)).where(
        Invoice.client_id == client_id, Invoice.status != InvoiceStatus.DRAFT, Invoice.issue_date < start))
    voided = total(select(func.sum(Invoice.total_cents)).where(
        Invoice.client_id == client_id, Invoice.status == InvoiceStatus.VOID, _day(Invoice.voided_at) < start))
    paid = total(_payments(client_id).with_only_columns(func.sum(Payment.amount_cents))
                 .where(Payment.received_on < start))
    refunded = total(_refunds(client_id).with_only_columns(func.sum(Refund.amount_cents))
                     .where(Refund.refunded_on < start))
    adjusted = total(select(func.sum(LedgerAdjustment.amount_cents)).where(
        LedgerAdjustment.client_id == client_id, _day(LedgerAdjustment.created_at) < start))
    return invoiced - voided - paid + refunded - adjusted
