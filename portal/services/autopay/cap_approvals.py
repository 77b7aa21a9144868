"""Invoices over a client's autopay cap ("invoices up to $X"): autopay leaves them to the admin, who approves
charging one on the admin invoice page (or leaves it to the client to pay by hand).

The approval, and its withdrawal, are events on the invoice's timeline with the staff member and the amount
(append-only, like the rest of the timeline); the latest of the two decides. Approving starts the usual path: the
pre-charge notice, then the charge on the invoice's charge date (at once when that date has passed).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.errors import DomainError
from portal.domain.invoices import OPEN
from portal.domain.money import format_money
from portal.models import Invoice, InvoiceEvent, StaffUser

from .. import ledger
from ..locking import begin_write, serialize
from . import rules

APPROVED = "autopay_cap_approved"
WITHDRAWN = "autopay_cap_withdrawn"


@dataclass(frozen=True)
class OverCap:
    """An invoice whose balance is over its client's autopay cap, as the admin invoice page shows it."""

    cap_cents: int
    balance_cents: int
    approved: bool


def approved_ids(session: Session, invoice_ids: Collection[int] | None) -> set[int]:
    """The invoices of ``invoice_ids`` (None: any) an admin approved for autopay over the cap and has not withdrawn
    since."""
    query = select(InvoiceEvent.invoice_id, InvoiceEvent.kind).where(InvoiceEvent.kind.in_((APPROVED, WITHDRAWN)))
    if invoice_ids is not None:
        if not invoice_ids:
            return set()
        query = query.where(InvoiceEvent.invoice_id.in_(invoice_ids))
    latest: dict[int, str] = {}
    for invoice_id, kind in session.execute(query.order_by(InvoiceEvent.id)):
        latest[invoice_id] = kind
    return {invoice_id for invoice_id, kind in latest.items() if kind == APPROVED}


def over_cap(session: Session, invoice: Invoice, balance_cents: int) -> OverCap | None:
    """None unless the client is on autopay with a cap and the invoice still owes more than it."""
    if balance_cents <= 0 or invoice.status != OPEN or not rules.is_enrolled(session, invoice.client_id):
        return None
    cap = rules.rules_for(session, invoice.client_id).cap_cents
    if cap is None or balance_cents <= cap:
        return None
    return OverCap(cap, balance_cents, invoice.id in approved_ids(session, [invoice.id]))


def approve(session: Session, invoice_id: int, *, staff: StaffUser | None) -> OverCap:
    """Let autopay charge this invoice although it is over the cap. Refused, with nothing written, when it is not
    over the cap of a client on autopay, or is approved already (a second click)."""
    invoice, state = _locked(session, invoice_id)
    if state.approved:
        session.rollback()
        raise DomainError(f"Invoice {invoice.number} is already approved for autopay.")
    _record(session, invoice, APPROVED, staff, f"Approved for autopay over the {_money(state.cap_cents, invoice)} "
                                                f"cap ({_money(state.balance_cents, invoice)})")
    return OverCap(state.cap_cents, state.balance_cents, True)


def withdraw(session: Session, invoice_id: int, *, staff: StaffUser | None) -> None:
    """Take an approval back before the charge: autopay leaves the invoice alone again."""
    invoice, state = _locked(session, invoice_id)
    if not state.approved:
        session.rollback()
        raise DomainError(f"Invoice {invoice.number} is not approved for autopay.")
    _record(session, invoice, WITHDRAWN, staff, "Autopay approval over the cap withdrawn")


def _locked(session: Session, invoice_id: int) -> tuple[Invoice, OverCap]:
    """The invoice and its cap state, read under the write lock (two clicks at once: one approval)."""
    begin_write(session)
    serialize(session, f"autopay-cap:{invoice_id}")
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        session.rollback()
        raise DomainError("Unknown invoice.")
    state = over_cap(session, invoice, ledger.balance_of(session, invoice))
    if state is None:
        session.rollback()
        raise DomainError(f"Invoice {invoice.number} is not over the autopay cap of a client on autopay.")
    return invoice, state


def _record(session: Session, invoice: Invoice, kind: str, staff: StaffUser | None, detail: str) -> None:
    session.add(InvoiceEvent(invoice_id=invoice.id, at=now(), kind=kind, actor_id=staff.id if staff else None,
                             detail=detail))
    session.commit()


def _money(cents: int, invoice: Invoice) -> str:
    return format_money(cents, invoice.currency)
