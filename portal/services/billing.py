"""Invoices: draft, edit, issue, void. Totals come from the domain; the ledger decides paid/open."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import invoices as rules
from portal.domain.invoices import LineInput
from portal.models import Client, Invoice, InvoiceLine
from portal.models.billing import NUMBER_PREFIX, NUMBER_VALUE, OUR_NUMBER

from . import ledger
from .errors import Conflict
from .locking import serialize
from .settings import get_settings


def net_days_for(session: Session, client: Client) -> int:
    return client.net_days if client.net_days is not None else get_settings(session).default_net_days


def next_invoice_number(session: Session) -> str:
    """The next INV-000123 after the highest number of that shape (imported numbers keep their own shape; an
    'INV-²' or 'INV-12A' is not one of ours): one row read through the index of our numbers (models/billing.py).

    Two processes raising invoices at once (run-due on several nodes: late fees, plan interest) would both read the
    same highest number, so the read is serialised until the caller's transaction ends."""
    serialize(session, "invoice numbers")
    highest = session.scalar(_HIGHEST_NUMBER[session.get_bind().dialect.name]) or 0
    return f"{NUMBER_PREFIX}{highest + 1:06d}"


_HIGHEST_NUMBER = {dialect: select(func.max(NUMBER_VALUE)).where(text(ours)) for dialect, ours in OUR_NUMBER.items()}


def create_invoice(
    session: Session,
    client: Client,
    *,
    lines: Sequence[LineInput],
    issue_date: date | None = None,
    due_date: date | None = None,
    number: str | None = None,
    tax_rate: Decimal = Decimal(0),
    memo: str = "",
    currency: str | None = None,
    issue: bool = False,
    source: str = "manual",
    commit: bool = True,
) -> Invoice:
    """A new draft (or, with ``issue``, an open invoice). Dates default as in ``invoice_dates``."""
    issue_date, due_date = invoice_dates(session, client, issue_date, due_date)
    number = (number or "").strip() or next_invoice_number(session)
    if session.scalar(select(Invoice.id).where(Invoice.number == number)):
        raise Conflict(f"Invoice number {number} is already used.")
    invoice = Invoice(
        client_id=client.id,
        number=number,
        status=rules.DRAFT,
        currency=(currency or get_settings(session).currency).upper(),
        created_at=now(),
        source=source,
    )
    _fill(invoice, lines=lines, issue_date=issue_date, due_date=due_date, tax_rate=tax_rate, memo=memo)
    session.add(invoice)
    if issue:
        _issue(invoice)
    session.flush()
    _duplicates().flag_new(session, [invoice])  # a likely duplicate bill is held for the admin (a flag row only)
    if commit:
        session.commit()
    return invoice


def invoice_dates(session: Session, client: Client, issue_date: date | None,
                  due_date: date | None) -> tuple[date, date]:
    """A missing issue date is today; a missing due date means the client's usual terms (issue date + net days)."""
    issue_date = issue_date or today()
    return issue_date, due_date or rules.default_due_date(issue_date, net_days_for(session, client))


def update_draft(
    session: Session,
    invoice: Invoice,
    *,
    lines: Sequence[LineInput],
    issue_date: date | None = None,
    due_date: date | None = None,
    tax_rate: Decimal,
    memo: str = "",
    issue: bool = False,
) -> Invoice:
    """Save a draft's edits and, with ``issue``, issue it: one commit, so a refusal leaves the draft as it was."""
    rules.check_editable(invoice.status)
    issue_date, due_date = invoice_dates(session, invoice.client, issue_date, due_date)
    _fill(invoice, lines=lines, issue_date=issue_date, due_date=due_date, tax_rate=tax_rate, memo=memo)
    if issue:
        issue_draft(invoice)
    _duplicates().recheck_draft(session, invoice)  # the amount or date may have changed
    session.commit()
    return invoice


def _duplicates():
    from .collections import duplicates  # imported late: it voids through this module

    return duplicates


def _fill(invoice: Invoice, *, lines, issue_date, due_date, tax_rate, memo) -> None:
    rules.check_dates(issue_date, due_date)
    totals = rules.compute_totals(lines, tax_rate)
    invoice.issue_date, invoice.due_date = issue_date, due_date
    invoice.tax_rate, invoice.memo = tax_rate, memo
    invoice.subtotal_cents, invoice.tax_cents, invoice.total_cents = (
        totals.subtotal_cents, totals.tax_cents, totals.total_cents,
    )
    invoice.lines = [
        InvoiceLine(
            position=i, description=line.description.strip(), quantity=line.quantity,
            unit_price_cents=line.unit_price_cents, amount_cents=amount, taxable=line.taxable,
        )
        for i, (line, amount) in enumerate(zip(lines, totals.line_amounts, strict=True), start=1)
    ]


def issue_invoice(session: Session, invoice: Invoice) -> Invoice:
    issue_draft(invoice)
    session.commit()
    return invoice


def issue_draft(invoice: Invoice) -> None:
    """Issue inside the caller's transaction (the caller commits): for actions that issue and do more."""
    rules.check_issue(invoice.status)
    _issue(invoice)


def _issue(invoice: Invoice) -> None:
    invoice.status = rules.OPEN
    invoice.issued_at = now()
    if invoice.total_cents == 0:  # a zero invoice has nothing to collect
        invoice.status, invoice.paid_at = rules.PAID, invoice.issued_at


def void_invoice(session: Session, invoice: Invoice, reason: str, *, commit: bool = True) -> Invoice:
    if not reason.strip():
        raise rules.InvalidAmount("Say why the invoice is voided; the reason is kept on record.")
    paid = ledger.paid_cents(session, [invoice.id])[invoice.id]
    rules.check_void(invoice.status, paid)
    invoice.status = rules.VOID
    invoice.voided_at = now()
    invoice.void_reason = reason.strip()
    if commit:
        session.commit()
    return invoice


def refresh_status(session: Session, invoice: Invoice, *, paid_cents: int | None = None) -> None:
    """Move an issued invoice between open and paid after its allocations changed (caller commits). ``paid_cents``:
    what settles it now, when the caller knows (an open item's balance is its total less what was paid)."""
    paid = ledger.paid_cents(session, [invoice.id])[invoice.id] if paid_cents is None else paid_cents
    new = rules.status_for_balance(invoice.status, invoice.total_cents, paid)
    if new != invoice.status:
        invoice.status = new
        invoice.paid_at = now() if new == rules.PAID else None
