"""The call list, the notes log and a client's collection state (reminders paused, next call).

The seed practice: email the invoice the day after it was due, then call a few days later (the setting
``call_after_days``) to make sure it arrived and find out why payment is late. A call's outcome schedules the next
step: another call on a date, or a promise to pay.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased, selectinload

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
from ..keysets import among, written
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
    """Clients whose next step is a phone call, the most past-due first. A fixed number of statements whatever the
    number of clients past due (one set of reads per client took 15 s at 10,000 of them)."""
    call_after = collection_settings(session).call_after_days
    past_due = _past_due_by_client(session, today)
    ids = list(past_due)
    next_calls = dict(session.execute(select(ClientCollection.client_id, ClientCollection.next_call_on)
                                      .where(among(session, ClientCollection.client_id, ids))).all())
    recent_promises = _newest_by_client(session, PaymentPromise, ids, 10)
    recent_notes = _newest_by_client(session, CollectionNote, ids, 5)
    first_emails = _first_overdue_email_by_client(session, ids)
    chosen = []
    for client_id, cents in past_due.items():
        client_promises, client_notes = recent_promises.get(client_id, []), recent_notes.get(client_id, [])
        broken = next((p for p in client_promises if p.status == PromiseStatus.BROKEN), None)
        reason = dunning.call_reason(
            first_overdue_email_on=first_emails.get(client_id),
            last_call_on=next((n.created_at.date() for n in client_notes if n.outcome != CallOutcome.NONE), None),
            next_call_on=next_calls.get(client_id),
            open_promise=any(p.status == PromiseStatus.OPEN for p in client_promises),
            broken_promise_since=broken.resolved_at.date() if broken and broken.resolved_at else None,
            past_due_cents=cents, call_after_days=call_after, today=today)
        if reason is not None:
            chosen.append((client_id, reason, cents, client_notes[:3], client_promises[:3], broken))
    on_list = [client_id for client_id, *_ in chosen]
    clients = {c.id: c for c in session.scalars(
        select(Client).options(selectinload(Client.contacts)).where(among(session, Client.id, on_list)))}
    sends = _newest_by_client(session, ReminderSend, on_list, 3)
    rows = []
    for client_id, reason, cents, last_notes, last_promises, broken in chosen:
        client = clients[client_id]
        phones = [c for c in sorted(client.contacts, key=lambda c: (not c.is_billing, c.id)) if c.phone]
        rows.append(CallRow(client=client, reason=reason, past_due_cents=cents, phones=phones,
                            last_reminders=sends.get(client_id, []), last_notes=last_notes, promises=last_promises,
                            broken_promise=broken))
    rows.sort(key=lambda r: (-r.past_due_cents, r.client.legal_name))
    return rows


def _past_due_by_client(session: Session, today: date) -> dict[int, int]:
    """What each client owes on invoices past due (those with something left to pay), summed in the database."""
    balance = ledger.stored_balance()
    rows = session.execute(
        select(Invoice.client_id, func.sum(balance))
        .where(Invoice.status == written(OPEN), Invoice.due_date < today, balance > 0)
        .group_by(Invoice.client_id))
    return {client_id: int(cents) for client_id, cents in rows}


#: newest first, per kind of row the call list shows
_NEWEST_FIRST = {PaymentPromise: (PaymentPromise.created_at.desc(), PaymentPromise.id.desc()),
                 CollectionNote: (CollectionNote.created_at.desc(), CollectionNote.id.desc()),
                 ReminderSend: (ReminderSend.claimed_at.desc(), ReminderSend.id.desc())}


def _newest_by_client(session: Session, entity: type, client_ids: list[int], n: int) -> dict[int, list]:
    """Each client's newest ``n`` rows of ``entity``, newest first, for all the clients in one statement (ranked
    per client in the database); a reminder comes with its step and invoice, which the list shows."""
    rank = func.row_number().over(partition_by=entity.client_id, order_by=_NEWEST_FIRST[entity]).label("rank")
    ranked = select(entity, rank).where(among(session, entity.client_id, client_ids)).subquery()
    row = aliased(entity, ranked)
    query = select(row).where(ranked.c.rank <= n).order_by(ranked.c.client_id, ranked.c.rank)
    if entity is ReminderSend:
        query = query.options(selectinload(row.step), selectinload(row.invoice))
    found: dict[int, list] = defaultdict(list)
    for item in session.scalars(query):
        found[item.client_id].append(item)
    return found


def _first_overdue_email_by_client(session: Session, client_ids: list[int]) -> dict[int, date]:
    """When the first after-due reminder left for any of each client's invoices still owing (the email the call
    follows)."""
    rows = session.execute(
        select(ReminderSend.client_id, func.min(ReminderSend.sent_at))
        .join(DunningStep, DunningStep.id == ReminderSend.step_id)
        .join(Invoice, Invoice.id == ReminderSend.invoice_id)
        .where(among(session, ReminderSend.client_id, client_ids), ReminderSend.sent_at.is_not(None),
               DunningStep.offset_days > 0, Invoice.status == written(OPEN))
        .group_by(ReminderSend.client_id))
    return {client_id: at.date() for client_id, at in rows}


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
