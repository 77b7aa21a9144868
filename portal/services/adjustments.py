"""Ledger adjustments: what is taken off an invoice without money moving (the autopay discount, a few cents written
off), each its own row, never an edit of the invoice total; and their CSV for the accounting system.

A write-off is only for what a card cannot be charged (under ``GATEWAY_MINIMUM_CENTS``: a check a little short):
left owing, those cents would run reminders, late fees and in the end a service hold over 30 cents, and the client
could not pay them online. Anything larger is collected, or the invoice voided."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.errors import DomainError
from portal.domain.ledger import OpenItem
from portal.domain.money import format_money
from portal.domain.payments import GATEWAY_MINIMUM_CENTS
from portal.domain.spreadsheets import safe_cell
from portal.models import Client, Invoice, InvoiceEvent, LedgerAdjustment, StaffUser

from . import billing, ledger
from .locking import begin_write

WRITE_OFF = "write_off"  # LedgerAdjustment.kind

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


def small_balance_cents(balance_cents: int) -> int:
    """What may be written off an invoice: its balance when that is less than a card can be charged, else 0. (No
    money can be on its way to such a balance: every charge is at least the card minimum and never more than the
    invoice owes.)"""
    return balance_cents if 0 < balance_cents < GATEWAY_MINIMUM_CENTS else 0


def write_off(session: Session, item: OpenItem, client_id: int, memo: str) -> None:
    """Take what ``item`` owes off its invoice, in the caller's transaction (which holds the client's invoices)."""
    session.add(LedgerAdjustment(invoice_id=item.invoice_id, client_id=client_id, kind=WRITE_OFF,
                                 amount_cents=item.balance_cents, created_at=now(), memo=memo))
    session.flush()
    billing.refresh_status(session, session.get(Invoice, item.invoice_id))


def on_plan(session: Session, invoice_id: int) -> bool:
    """A current plan's invoice: the plan's page writes off what is left of the whole plan, not this invoice."""
    from .plans.progress import current_plan_invoice_ids  # plans build on the ledger, not the other way round

    return bool(current_plan_invoice_ids(session, invoice_ids=[invoice_id]))


def writable_off_cents(session: Session, invoice_id: int, balance_cents: int) -> int:
    """What the invoice page offers to write off: a small balance of an invoice not on a current plan, else 0."""
    return 0 if on_plan(session, invoice_id) else small_balance_cents(balance_cents)


def write_off_small_balance(session: Session, invoice_id: int, *, staff: StaffUser | None) -> int:
    """The admin's "Write off $0.30" on an invoice; the invoice's timeline records who. Refused, with nothing written,
    unless the balance is under the card minimum, or while the invoice is on a current plan
    (the plan's page writes off what is left of the whole plan). Returns the cents written off."""
    begin_write(session)  # the client's invoices are locked before the balance is read
    try:
        invoice = session.get(Invoice, invoice_id)
        if invoice is None:
            raise DomainError("Unknown invoice.")
        item = next((i for i in ledger.open_items(session, invoice.client_id, lock=True) if i.invoice_id == invoice_id),
                    None)
        if on_plan(session, invoice_id):
            raise DomainError("This invoice is on a payment plan: write off what is left on the plan's page.")
        if item is None or not small_balance_cents(item.balance_cents):
            minimum = format_money(GATEWAY_MINIMUM_CENTS, invoice.currency)
            raise DomainError(f"Only a balance below {minimum} (less than a card can be charged) can be written off.")
        write_off(session, item, invoice.client_id, "Small balance written off")
        session.add(InvoiceEvent(invoice_id=invoice_id, at=now(), kind="written_off",
                                 actor_id=staff.id if staff else None,
                                 detail=f"{format_money(item.balance_cents, invoice.currency)} written off "
                                        "(less than a card can be charged)"))
    except Exception:
        session.rollback()
        raise
    session.commit()
    return item.balance_cents
