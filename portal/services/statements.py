"""Client statements over a date range, built from the ledger rows."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.statements import Entry, Statement, build_statement
from portal.models import Invoice, Payment, Refund


def client_statement(session: Session, client_id: int, start: date, end: date) -> Statement:
    if end < start:
        start, end = end, start
    entries: list[Entry] = []
    for inv in session.scalars(
        select(Invoice).where(Invoice.client_id == client_id, Invoice.status != "draft", Invoice.issue_date <= end)
    ):
        entries.append(Entry(inv.issue_date, "invoice", inv.number, f"Invoice {inv.number}", inv.total_cents, 0))
        if inv.status == "void" and inv.voided_at:
            entries.append(Entry(inv.voided_at.date(), "void", inv.number, f"Invoice {inv.number} voided",
                                 0, inv.total_cents))
    for pay in session.scalars(
        select(Payment).where(Payment.client_id == client_id, Payment.status == "succeeded",
                              Payment.received_on <= end)
    ):
        ref = f" {pay.reference}" if pay.reference else ""
        entries.append(Entry(pay.received_on, "payment", f"P-{pay.id}", f"Payment ({pay.method}){ref}",
                             0, pay.amount_cents))
    for refund in session.scalars(
        select(Refund).join(Payment).where(Payment.client_id == client_id, Refund.status != "failed",
                                           Refund.refunded_on <= end)
    ):
        entries.append(Entry(refund.refunded_on, "refund", f"R-{refund.id}",
                             f"Refund of payment P-{refund.payment_id}", refund.amount_cents, 0))
    return build_statement(entries, start, end)
