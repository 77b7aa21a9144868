"""Demo data for collections: the default reminder schedule saved, and the demo's late payers at different points
of being chased: a promise to pay that was broken (and the call that got it), an open promise, a client whose
reminders are paused while a dispute is looked at, and a call scheduled. Written as history (dated in the past),
the way these rows would have been left by earlier calls and runs; no email is sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from portal.domain.dunning import CallOutcome, NoteReason, PromiseStatus
from portal.models import Client, ClientCollection, CollectionNote, PaymentPromise, StaffUser

from . import ledger
from .collections import schedule


def _at(day: date) -> datetime:
    return datetime.combine(day, time(15, 0), tzinfo=UTC)


def seed(session: Session, clients: list[Client], admin: StaffUser, today: date) -> None:
    schedule.ensure_saved(session)
    late = [(c, ledger.client_summary(session, c.id, today).overdue_cents) for c in clients]
    late = [(c, cents) for c, cents in late if cents > 0]
    if not late:
        return
    broken_client, broken_cents = late[0]
    called_on = today - timedelta(days=12)
    session.add(CollectionNote(client_id=broken_client.id, staff_id=admin.id, reason=NoteReason.CASH_FLOW,
                               outcome=CallOutcome.REACHED, note="Waiting on a large customer payment; promised "
                               "to pay half by the end of last week.", created_at=_at(called_on)))
    session.add(PaymentPromise(client_id=broken_client.id, invoice_id=None, amount_cents=max(1, broken_cents // 2),
                               promised_on=today - timedelta(days=5), status=PromiseStatus.BROKEN,
                               note="Half of the past-due balance", staff_id=admin.id, created_at=_at(called_on),
                               resolved_at=_at(today - timedelta(days=4))))
    if len(late) > 1:
        client, cents = late[1]
        session.add(CollectionNote(client_id=client.id, staff_id=admin.id, reason=NoteReason.WAITING_APPROVAL,
                                   outcome=CallOutcome.REACHED, note="Invoice is with their controller for sign-off.",
                                   created_at=_at(today - timedelta(days=2))))
        session.add(PaymentPromise(client_id=client.id, invoice_id=None, amount_cents=cents,
                                   promised_on=today + timedelta(days=6), status=PromiseStatus.OPEN,
                                   staff_id=admin.id, created_at=_at(today - timedelta(days=2))))
    if len(late) > 2:
        client, _ = late[2]
        session.add(ClientCollection(client_id=client.id, paused=True, paused_until=today + timedelta(days=10),
                                     paused_reason="Disputing the March project hours; reviewing with their IT lead.",
                                     updated_at=_at(today - timedelta(days=1))))
        session.add(CollectionNote(client_id=client.id, staff_id=admin.id, reason=NoteReason.DISPUTE,
                                   outcome=CallOutcome.VOICEMAIL, note="Left a message about the disputed hours.",
                                   next_step_on=today + timedelta(days=2), created_at=_at(today - timedelta(days=1))))
    session.commit()
