"""The call list, the notes log and a client's collection state (reminders paused, next call).

The seed practice: email the invoice the day after it was due, then call a few days later (the setting
``call_after_days``) to make sure it arrived and find out why payment is late. A call's outcome schedules the next
step: another call on a date, or a promise to pay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import dunning
from portal.domain.dunning import CallOutcome, PromiseStatus
from portal.domain.errors import DomainError
from portal.domain.invoices import OPEN
from portal.models import (
    Client,
    ClientCollection,
    CollectionNote,
    Contact,
    DunningStep,
    Invoice,
    PaymentPromise,
    ReminderSend,
    StaffUser,
)

from .. import ledger
from ..errors import NotFound
from ..locking import begin_write, serialize
from . import promises, reminders
from .settings import collection_settings


def state(session: Session, client_id: int) -> ClientCollection:
    """The client's collection state (unsaved defaults when the admin never touched it)."""
    return session.get(ClientCollection, client_id) or ClientCollection(client_id=client_id, paused=False,
                                                                        paused_reason="")


def _state_for_write(session: Session, client_id: int) -> ClientCollection:
    if session.get(Client, client_id) is None:
        session.rollback()
        raise NotFound()
    serialize(session, f"client collection {client_id}")  # PostgreSQL: two first writes would both insert the row
    row = session.get(ClientCollection, client_id, populate_existing=True)
    if row is None:
        row = ClientCollection(client_id=client_id, paused=False, paused_reason="")
        session.add(row)
    return row


def pause(session: Session, client_id: int, *, reason: str, until: date | None, today: date) -> ClientCollection:
    """Stop this client's reminders, with why (and optionally until when: they resume by themselves after it)."""
    reason = reason.strip()
    if not reason:
        raise DomainError("Say why the reminders are paused (the next person to look will want to know).")
    if len(reason) > 500:
        raise DomainError("The reason can be at most 500 characters.")
    if until is not None and until < today:
        raise DomainError("The pause would end in the past: choose a later date, or leave it open.")
    begin_write(session)
    row = _state_for_write(session, client_id)
    row.paused, row.paused_reason, row.paused_until, row.updated_at = True, reason, until, now()
    session.commit()
    return row


def resume(session: Session, client_id: int) -> ClientCollection:
    begin_write(session)
    row = _state_for_write(session, client_id)
    row.paused, row.paused_until, row.updated_at = False, None, now()
    session.commit()
    return row


@dataclass(frozen=True)
class CallInput:
    reason: str
    outcome: str
    note: str = ""
    next_call_on: date | None = None
    promise_cents: int | None = None  # the call ended with a promise
    promise_on: date | None = None
    promise_invoice_id: int | None = None


def log_call(session: Session, client_id: int, entry: CallInput, *, staff: StaffUser | None,
             today: date) -> CollectionNote:
    """A note or a call's outcome in the client's log. The next step it schedules: a call on ``next_call_on`` (the
    client leaves the call list until then), or a promise (recorded with the same checks as any promise)."""
    dunning.check_note(entry.reason, entry.outcome, entry.note, entry.next_call_on, today)
    if (entry.promise_cents is None) != (entry.promise_on is None):
        raise DomainError("A promise needs both an amount and a date.")
    if entry.promise_cents is not None:
        # the promise's own checks (date, amount, balance) first: a refused promise leaves no half-written note
        promises.record(session, client_id=client_id, invoice_id=entry.promise_invoice_id,
                        amount_cents=entry.promise_cents, promised_on=entry.promise_on, today=today,
                        note=entry.note, staff=staff)
    begin_write(session)
    row = _state_for_write(session, client_id)
    if entry.outcome != CallOutcome.NONE or entry.next_call_on is not None:
        row.next_call_on, row.updated_at = entry.next_call_on, now()
    note = CollectionNote(client_id=client_id, staff_id=staff.id if staff else None, reason=entry.reason,
                          outcome=entry.outcome, note=entry.note.strip(), next_step_on=entry.next_call_on,
                          created_at=now())
    session.add(note)
    session.commit()
    return note


def notes(session: Session, client_id: int, limit: int = 50) -> list[CollectionNote]:
    return list(session.scalars(_NOTES, {"client_id": client_id, "limit": limit}))


_NOTES = (select(CollectionNote).where(CollectionNote.client_id == bindparam("client_id"))
          .order_by(CollectionNote.created_at.desc(), CollectionNote.id.desc()).limit(bindparam("limit")))


# --- the call list ----------------------------------------------------------------------------------------------------

@dataclass
class CallRow:
    client: Client
    reason: dunning.CallReason
    past_due_cents: int
    phones: list[Contact]
    last_reminders: list[ReminderSend] = field(default_factory=list)
    last_notes: list[CollectionNote] = field(default_factory=list)
    promises: list[PaymentPromise] = field(default_factory=list)
    broken_promise: PaymentPromise | None = None


def call_list(session: Session, today: date) -> list[CallRow]:
    """Clients whose next step is a phone call, the most past-due first."""
    call_after = collection_settings(session).call_after_days
    past_due = _past_due_by_client(session, today)
    rows = []
    for client_id, cents in past_due.items():
        st = state(session, client_id)
        client_promises = promises.for_client(session, client_id, limit=10)
        open_promise = any(p.status == PromiseStatus.OPEN for p in client_promises)
        broken = next((p for p in client_promises if p.status == PromiseStatus.BROKEN), None)
        client_notes = notes(session, client_id, limit=5)
        last_call = next((n.created_at.date() for n in client_notes if n.outcome != CallOutcome.NONE), None)
        reason = dunning.call_reason(
            first_overdue_email_on=_first_overdue_email_on(session, client_id), last_call_on=last_call,
            next_call_on=st.next_call_on, open_promise=open_promise,
            broken_promise_since=broken.resolved_at.date() if broken and broken.resolved_at else None,
            past_due_cents=cents, call_after_days=call_after, today=today)
        if reason is None:
            continue
        client = session.get(Client, client_id)
        phones = [c for c in sorted(client.contacts, key=lambda c: (not c.is_billing, c.id)) if c.phone]
        rows.append(CallRow(client=client, reason=reason, past_due_cents=cents, phones=phones,
                            last_reminders=reminders.sends_for(session, client_id=client_id, limit=3),
                            last_notes=client_notes[:3], promises=client_promises[:3], broken_promise=broken))
    rows.sort(key=lambda r: (-r.past_due_cents, r.client.legal_name))
    return rows


def _past_due_by_client(session: Session, today: date) -> dict[int, int]:
    balance = ledger.stored_balance()
    rows = session.execute(
        select(Invoice.client_id, balance)
        .where(Invoice.status == OPEN, Invoice.due_date < today))
    found: dict[int, int] = {}
    for client_id, cents in rows:
        if cents and cents > 0:
            found[client_id] = found.get(client_id, 0) + int(cents)
    return found


def _first_overdue_email_on(session: Session, client_id: int) -> date | None:
    """When the first after-due reminder left for any of the client's invoices still owing (the email the call
    follows)."""
    at = session.scalar(
        select(ReminderSend.sent_at)
        .join(DunningStep, DunningStep.id == ReminderSend.step_id)
        .join(Invoice, Invoice.id == ReminderSend.invoice_id)
        .where(ReminderSend.client_id == client_id, ReminderSend.sent_at.is_not(None), DunningStep.offset_days > 0,
               Invoice.status == OPEN)
        .order_by(ReminderSend.sent_at).limit(1))
    return at.date() if at else None


# --- one client's panel (admin client page) ---------------------------------------------------------------------------

@dataclass
class ClientPanel:
    state: ClientCollection
    reminders: list[ReminderSend]
    promises: list[PaymentPromise]
    notes: list[CollectionNote]
    broken_promise: PaymentPromise | None
    paused_now: bool


def client_panel(session: Session, client_id: int, today: date) -> ClientPanel:
    st = state(session, client_id)
    client_promises = promises.for_client(session, client_id, limit=10)
    return ClientPanel(
        state=st, reminders=reminders.sends_for(session, client_id=client_id, limit=10), promises=client_promises,
        notes=notes(session, client_id, limit=10),
        broken_promise=next((p for p in client_promises if p.status == PromiseStatus.BROKEN), None),
        paused_now=dunning.reminders_paused(dunning.ClientFacts(st.paused, st.paused_until), today))
