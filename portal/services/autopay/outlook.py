"""What autopay does with each open invoice of one client, for the admin's per-client autopay panel: the decision
`run-due` takes (``plan_client``), in the admin's words, so "why was this not charged?" has an answer before the
client calls. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import autopay as policy
from portal.models import Invoice

from .. import ledger
from ..due_log import skip_words
from ..payments.autopay_charging import InvoicePlan, plan_client
from ..payments.autopay_setup import enrolled_clients


@dataclass(frozen=True)
class InvoiceOutlook:
    invoice: Invoice
    balance_cents: int
    words: str


def client_outlook(session: Session, gateway_name: str, client_id: int, today: date) -> list[InvoiceOutlook]:
    """One line per open invoice, oldest due first; empty when the client is not on autopay."""
    setups = enrolled_clients(session, gateway_name, client_ids=[client_id])
    if not setups:
        return []
    plans = {plan.invoice_id: plan for plan in plan_client(session, setups[0], today)}
    balances = {item.invoice_id: item.balance_cents for item in ledger.open_items(session, client_id)}
    invoices = session.scalars(select(Invoice).where(Invoice.id.in_(plans)).order_by(Invoice.due_date, Invoice.id))
    return [InvoiceOutlook(invoice, balances.get(invoice.id, 0), _words(plans[invoice.id])) for invoice in invoices]


def invoice_outlook(session: Session, gateway_name: str, invoice: Invoice, today: date) -> str | None:
    """What autopay does with this one invoice (the admin invoice page); None when its client is not on autopay or
    it owes nothing."""
    rows = client_outlook(session, gateway_name, invoice.client_id, today)
    return next((row.words for row in rows if row.invoice.id == invoice.id), None)


def _words(plan: InvoicePlan) -> str:
    decision = plan.decision
    on = _day(decision.charge_on)
    if plan.reason is None:
        return "Charged by the next run"
    if plan.reason == policy.Skip.NOT_DUE_YET and on:
        notice = f" (pre-charge notice on {_day(decision.notice_on)})" if decision.notice_on else ""
        return f"Charged on {on}{notice}"
    if plan.reason == policy.Skip.NOTICE_PENDING and on:
        return f"Pre-charge notice sent; charged on {on}"
    if plan.reason == policy.Skip.RETRY_SCHEDULED and on:
        return f"Declined; tried again on {on}"
    return skip_words(plan.reason)


def _day(value: date | None) -> str:
    return f"{value:%b %-d, %Y}" if value else ""  # as the pages' date filter
