"""Ledger adjustments for the accounting system: what was taken off invoices without money moving (the autopay
discount, a plan's last few cents written off), one CSV row each. The accountant books them (a discount, a
small-balance write-off); the portal never edits an invoice total instead."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.spreadsheets import safe_cell
from portal.models import Client, Invoice, LedgerAdjustment

HEADER = ["date", "client", "invoice", "kind", "percent", "amount", "currency", "charge_attempt", "memo"]


def adjustments_csv(session: Session, currency: str, *, kinds: Collection[str] | None = None,
                    start_on: date | None = None, end_on: date | None = None) -> str:
    """Oldest first, amounts in currency units; names, numbers and memos as text (``safe_cell``: a client named like
    a formula must not run in the accountant's spreadsheet)."""
    query = (select(LedgerAdjustment, Invoice.number, Client.legal_name)
             .join(Invoice, Invoice.id == LedgerAdjustment.invoice_id)
             .join(Client, Client.id == LedgerAdjustment.client_id)
             .order_by(LedgerAdjustment.created_at, LedgerAdjustment.id))
    if kinds is not None:
        query = query.where(LedgerAdjustment.kind.in_(list(kinds)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for a, number, client_name in session.execute(query):
        on = a.created_at.date()
        if (start_on is not None and on < start_on) or (end_on is not None and on > end_on):
            continue
        writer.writerow([on.isoformat(), safe_cell(client_name), safe_cell(number), a.kind,
                         format(a.percent.normalize(), "f") if a.percent is not None else "",
                         f"{Decimal(a.amount_cents) / 100:.2f}", currency, a.attempt_id or "", safe_cell(a.memo)])
    return out.getvalue()
