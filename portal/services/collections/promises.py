"""Promises to pay: "we will pay $X by <date>", recorded by the admin after a call or by the client in the portal.

While a promise is open, reminders for what it covers pause until its date. `run-due` settles promises: kept as
soon as the promised amount has arrived since the promise was made, broken the day after its date if it has not
(flagged on the call list and the client page; reminders resume).

A promise names one invoice, or none: then it covers the client's past-due balance (every invoice of the client
that was past due when it was made).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain import dunning
from portal.domain.dunning import PromiseStatus
from portal.domain.errors import DomainError
from portal.domain.invoices import OPEN
from portal.domain.payments import SUCCEEDED
from portal.models import Allocation, Contact, Invoice, Payment, PaymentPromise, StaffUser

from .. import ledger
from ..errors import NotFound
from ..keysets import among
from ..locking import begin_write, serialize

#: Promises that hold: an open one pauses reminders; a kept one shows the client did what it said.
HOLDING = (PromiseStatus.OPEN, PromiseStatus.KEPT)


def owed(session: Session, client_id: int, invoice_id: int | None, today: date) -> int:
    """What a promise may cover: the invoice's balance, or the client's past-due balance."""
    if invoice_id is not None:
        invoice = session.get(Invoice, invoice_id)
        if invoice is None or invoice.client_id != client_id:
            raise NotFound()
        return ledger.balance_of(session, invoice)
    return ledger.client_summary(session, client_id, today).overdue_cents


def record(session: Session, *, client_id: int, invoice_id: int | None, amount_cents: int, promised_on: date,
           today: date, note: str = "", staff: StaffUser | None = None,
           contact: Contact | None = None) -> PaymentPromise:
    """Record a promise. Refused (nothing changed) when the date is past, the amount is zero or more than is owed.
    A new promise for the same invoice (or the same past-due balance) replaces the open one."""
    begin_write(session)
    serialize(session, f"promises of client {client_id}")  # PostgreSQL: two at once would both stay open
    try:
        balance = owed(session, client_id, invoice_id, today)
        dunning.check_promise(amount_cents, promised_on, balance, today)
        if len(note) > 2_000:
            raise DomainError("The note can be at most 2,000 characters.")
    except (DomainError, NotFound):
        session.rollback()
        raise
    at = now()
    for old in session.scalars(select(PaymentPromise).where(
            PaymentPromise.client_id == client_id, PaymentPromise.status == PromiseStatus.OPEN,
            PaymentPromise.invoice_id.is_(None) if invoice_id is None else PaymentPromise.invoice_id == invoice_id)):
        old.status, old.resolved_at = PromiseStatus.CANCELED, at
    promise = PaymentPromise(client_id=client_id, invoice_id=invoice_id, amount_cents=amount_cents,
                             promised_on=promised_on, status=PromiseStatus.OPEN, note=note.strip(),
                             staff_id=staff.id if staff else None, contact_id=contact.id if contact else None,
                             created_at=at)
    session.add(promise)
    session.commit()
    return promise


def cancel(session: Session, promise_id: int, *, client_id: int) -> PaymentPromise:
    begin_write(session)
    promise = session.get(PaymentPromise, promise_id)
    if promise is None or promise.client_id != client_id:
        session.rollback()
        raise NotFound()
    if promise.status != PromiseStatus.OPEN:
        session.rollback()
        raise DomainError("Only an open promise can be canceled.")
    promise.status, promise.resolved_at = PromiseStatus.CANCELED, now()
    session.commit()
    return promise


def _covered_invoices(promise: PaymentPromise, invoices: Iterable[Invoice]) -> list[Invoice]:
    if promise.invoice_id is not None:
        return [i for i in invoices if i.id == promise.invoice_id]
    made_on = promise.created_at.date()
    return [i for i in invoices if i.client_id == promise.client_id and i.due_date < made_on]


def open_until(session: Session, invoices: Iterable[Invoice]) -> dict[int, date]:
    """For each invoice an open promise covers: the latest promised date (reminders wait until then).
    ``invoices``: Invoices, or rows with their id, client_id and due_date (the reminders' candidates)."""
    by_client: dict[int, list[Invoice]] = {}
    for invoice in invoices:
        by_client.setdefault(invoice.client_id, []).append(invoice)
    if not by_client:
        return {}
    found: dict[int, date] = {}
    for promise in session.scalars(select(PaymentPromise).where(
            among(session, PaymentPromise.client_id, by_client), PaymentPromise.status == PromiseStatus.OPEN)):
        for invoice in _covered_invoices(promise, by_client[promise.client_id]):
            found[invoice.id] = max(found.get(invoice.id, promise.promised_on), promise.promised_on)
    return found


def covering(session: Session, invoice_id: int, on: date) -> PaymentPromise | None:
    """The promise covering ``invoice_id`` on the day ``on``: an open one made by then, or a kept one; None if
    there is none. (Late fees are never charged on an invoice with a kept promise; reminders wait for an open one.)"""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        return None
    candidates = session.scalars(select(PaymentPromise).where(
        PaymentPromise.client_id == invoice.client_id, PaymentPromise.status.in_(HOLDING),
        or_(PaymentPromise.invoice_id == invoice_id, PaymentPromise.invoice_id.is_(None)))
        .order_by(PaymentPromise.created_at.desc(), PaymentPromise.id.desc()))
    for promise in candidates:
        if not _covered_invoices(promise, [invoice]):
            continue
        if promise.status == PromiseStatus.KEPT or promise.created_at.date() <= on:
            return promise
    return None


def paid_since(session: Session, promise: PaymentPromise) -> int:
    """Money applied since the promise was made to what it covers (net of reversals, settled payments only)."""
    query = (select(func.coalesce(func.sum(Allocation.amount_cents), 0))
             .join(Payment, Payment.id == Allocation.payment_id)
             .join(Invoice, Invoice.id == Allocation.invoice_id)
             .where(Payment.status == SUCCEEDED, Allocation.created_at >= promise.created_at,
                    Invoice.client_id == promise.client_id))
    if promise.invoice_id is not None:
        query = query.where(Allocation.invoice_id == promise.invoice_id)
    else:  # the past-due balance: only the invoices that were past due when it was made (as _covered_invoices)
        query = query.where(Invoice.due_date < promise.created_at.date())
    return int(session.scalar(query) or 0)


def still_owed(session: Session, promise: PaymentPromise) -> bool:
    """Whether anything the promise covers is still open. Not so once it was voided (or otherwise closed without
    the promised money): then the promise is moot, neither kept nor broken."""
    covered = (Invoice.id == promise.invoice_id if promise.invoice_id is not None
               else Invoice.due_date < promise.created_at.date())
    return session.scalar(select(Invoice.id).where(Invoice.client_id == promise.client_id, Invoice.status == OPEN,
                                                   covered).limit(1)) is not None


@dataclass
class Settled:
    kept: int = 0
    broken: int = 0
    canceled: int = 0  # what it covered was voided (or closed) without the promised money: moot


def settle(session: Session, today: date) -> Settled:
    """The `run-due` step: each open promise that was paid is kept; one whose date has passed unpaid is broken; one
    whose invoice was voided meanwhile (nothing it covers is open any more) is canceled, not held against the
    client."""
    result = Settled()
    ids = list(session.scalars(select(PaymentPromise.id).where(PaymentPromise.status == PromiseStatus.OPEN)
                               .order_by(PaymentPromise.id)))
    for promise_id in ids:
        begin_write(session)
        promise = session.scalar(select(PaymentPromise).where(PaymentPromise.id == promise_id).with_for_update())
        if promise is None or promise.status != PromiseStatus.OPEN:  # another run settled it
            session.rollback()
            continue
        outcome = dunning.promise_outcome(promise.amount_cents, promise.promised_on, paid_since(session, promise),
                                          today)
        if outcome != PromiseStatus.KEPT and not still_owed(session, promise):
            outcome = PromiseStatus.CANCELED
        if outcome == PromiseStatus.OPEN:
            session.rollback()
            continue
        promise.status, promise.resolved_at = outcome, now()
        session.commit()
        if outcome == PromiseStatus.KEPT:
            result.kept += 1
        elif outcome == PromiseStatus.CANCELED:
            result.canceled += 1
        else:
            result.broken += 1
    return result


def for_client(session: Session, client_id: int, limit: int = 50) -> list[PaymentPromise]:
    return list(session.scalars(_FOR_CLIENT, {"client_id": client_id, "limit": limit}))


_FOR_CLIENT = (select(PaymentPromise).options(selectinload(PaymentPromise.invoice))  # the lists name each invoice
               .where(PaymentPromise.client_id == bindparam("client_id"))
               .order_by(PaymentPromise.created_at.desc(), PaymentPromise.id.desc()).limit(bindparam("limit")))


def of_client(session: Session, client_id: int, promise_id: int) -> PaymentPromise:
    """One promise of this client; another client's id is NotFound (the client pages' isolation)."""
    promise = session.scalar(select(PaymentPromise).where(PaymentPromise.id == promise_id,
                                                          PaymentPromise.client_id == client_id))
    if promise is None:
        raise NotFound()
    return promise


def promisable_invoices(session: Session, client_id: int) -> list[tuple[Invoice, int]]:
    """The client's open invoices with what each still owes, for the promise form."""
    invoices = list(session.scalars(select(Invoice).where(Invoice.client_id == client_id, Invoice.status == OPEN)
                                    .order_by(Invoice.due_date, Invoice.id)))
    paid = ledger.paid_cents(session, [i.id for i in invoices])
    return [(i, i.total_cents - paid[i.id]) for i in invoices if i.total_cents - paid[i.id] > 0]
