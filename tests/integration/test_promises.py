"""Promises to pay on a real database: recorded by the admin or a contact, refused with a clear message and nothing
changed when the date is past, the amount zero or above the balance; kept when paid, broken the day after the date
when not (flagged, call list); ``covering`` for late fees; the call list and the notes log."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.clock import today
from portal.domain.dunning import CallOutcome, CallReason, NoteReason, PromiseStatus
from portal.domain.errors import DomainError
from portal.models import ClientCollection, CollectionNote, PaymentPromise
from portal.services.collections import calls, promises, reminders
from portal.services.errors import NotFound
from tests.conftest import statements_run

DUE = date(2026, 3, 10)  # six days before the clock's day


@pytest.fixture
def acme(make):
    client = make.client("Acme Dental")
    make.contact(client, "ap@acme.test", name="Ann Payable", phone="555-0199")
    return client


@pytest.fixture
def late(make, acme):
    return make.invoice(acme, 80_000, issue_date=date(2026, 2, 8), due_date=DUE)


def count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def promise(session, client, invoice=None, cents=30_000, on=None, **kw):
    return promises.record(session, client_id=client.id, invoice_id=invoice.id if invoice else None,
                           amount_cents=cents, promised_on=on or today() + timedelta(days=5), today=today(), **kw)


@pytest.mark.parametrize(("cents", "days", "message"), [
    (30_000, -1, "The promised date is in the past"),
    (80_001, 5, r"larger than the balance of \$800.00"),
    (0, 5, "more than zero"),
])
def test_a_bad_promise_is_refused_and_nothing_changes(app, session, acme, late, cents, days, message):
    with pytest.raises(DomainError, match=message):
        promise(session, acme, late, cents=cents, on=today() + timedelta(days=days))
    assert count(session, PaymentPromise) == 0


def test_a_promise_for_another_clients_invoice_is_not_found(app, session, make, acme, late):
    other = make.client("Other LLC")
    with pytest.raises(NotFound):
        promise(session, other, late)
    assert count(session, PaymentPromise) == 0


def test_a_promise_on_the_past_due_balance_is_capped_by_it(app, session, make, acme, late):
    make.invoice(acme, 50_000, due_date=today() + timedelta(days=20))  # not past due: not part of the balance
    with pytest.raises(DomainError, match=r"\$800.00"):
        promise(session, acme, None, cents=80_001)
    made = promise(session, acme, None, cents=80_000)
    assert made.status == PromiseStatus.OPEN and made.invoice_id is None


def test_kept_when_paid_by_the_date(app, session, clock, make, acme, late):
    made = promise(session, acme, late, cents=30_000, on=today() + timedelta(days=5))
    assert promises.covering(session, late.id, today()).id == made.id
    clock.advance(days=2)
    make.payment(acme, 30_000)
    assert promises.settle(session, today()).kept == 1
    session.refresh(made)
    assert made.status == PromiseStatus.KEPT and made.resolved_at is not None
    # kept promises still cover the invoice (no late fee on it)
    assert promises.covering(session, late.id, today() + timedelta(days=30)).id == made.id


def test_broken_the_day_after_its_date_when_not_paid(app, session, clock, make, acme, late):
    made = promise(session, acme, late, cents=30_000, on=today() + timedelta(days=3))
    make.payment(acme, 10_000)  # part of it: not kept
    clock.advance(days=3)
    assert promises.settle(session, today()).broken == 0  # its date: still open
    clock.advance(days=1)
    result = promises.settle(session, today())
    assert (result.kept, result.broken) == (0, 1)
    session.refresh(made)
    assert made.status == PromiseStatus.BROKEN
    assert promises.covering(session, late.id, today()) is None
    assert promises.settle(session, today()).broken == 0  # once
    # flagged: the client is back on the call list, and its panel shows it
    [row] = calls.call_list(session, today())
    assert row.client.id == acme.id and row.reason == CallReason.BROKEN_PROMISE
    assert row.broken_promise.id == made.id
    assert calls.client_panel(session, acme.id, today()).broken_promise.id == made.id


def test_money_paid_before_the_promise_does_not_keep_it(app, session, clock, make, acme, late):
    make.payment(acme, 30_000)
    clock.advance(minutes=1)
    made = promise(session, acme, late, cents=30_000, on=today())
    clock.advance(days=1)
    assert promises.settle(session, today()).broken == 1
    session.refresh(made)
    assert made.status == PromiseStatus.BROKEN


def test_a_new_promise_replaces_the_open_one(app, session, acme, late):
    first = promise(session, acme, late, cents=10_000)
    second = promise(session, acme, late, cents=20_000)
    session.refresh(first)
    assert (first.status, second.status) == (PromiseStatus.CANCELED, PromiseStatus.OPEN)
    assert promises.open_until(session, [late]) == {late.id: second.promised_on}


# --- the call list ----------------------------------------------------------------------------------------------------

def test_the_call_list_follows_the_day_after_email(app, session, clock, rt, acme, late, make):
    staff = make.staff()
    clock.set(DUE + timedelta(days=1))
    assert reminders.send_due(session, rt, today()).sent == 1
    clock.set(DUE + timedelta(days=3))
    assert calls.call_list(session, today()) == []  # too soon (the default: 3 days after the email)
    clock.set(DUE + timedelta(days=4))
    [row] = calls.call_list(session, today())
    assert row.reason == CallReason.AFTER_EMAIL and row.past_due_cents == 80_000
    assert [c.phone for c in row.phones] == ["555-0199"]
    assert [r.step.offset_days for r in row.last_reminders] == [1]

    # a call that schedules the next one: off the list until then
    calls.log_call(session, acme.id, calls.CallInput(NoteReason.DID_NOT_RECEIVE, CallOutcome.REACHED,
                                                      "Sent to an old address; resent.", DUE + timedelta(days=8)),
                   staff=staff, today=today())
    assert calls.call_list(session, today()) == []
    clock.set(DUE + timedelta(days=8))
    [row] = calls.call_list(session, today())
    assert row.reason == CallReason.SCHEDULED
    assert [n.reason for n in row.last_notes] == [NoteReason.DID_NOT_RECEIVE]

    # a call that ends with a promise: off the list while it is open
    calls.log_call(session, acme.id, calls.CallInput(NoteReason.CASH_FLOW, CallOutcome.REACHED, "Pays Friday",
                                                      promise_cents=80_000, promise_on=DUE + timedelta(days=11)),
                   staff=staff, today=today())
    assert calls.call_list(session, today()) == []
    assert session.scalar(select(PaymentPromise.staff_id)) == staff.id


def test_the_call_list_reads_every_client_at_once_and_keeps_each_clients_history_apart(app, session, clock, rt,
                                                                                        make):
    """A fixed number of statements whatever the number of clients past due (one set of reads per client took 15 s at
    10,000 of them); each row still shows its own client's reminders, notes and promises."""
    staff = make.staff()

    def late_clients(n: int) -> list:
        clock.set(DUE - timedelta(days=30))
        made = []
        for _ in range(n):
            client = make.client()
            make.contact(client, f"ap{client.id}@example.test", phone=f"555-{client.id:04d}")
            make.invoice(client, 10_000 * client.id, issue_date=DUE - timedelta(days=30), due_date=DUE)
            made.append(client)
        clock.set(DUE + timedelta(days=1))
        reminders.send_due(session, rt, today())
        clock.set(DUE + timedelta(days=4))
        return made

    def listed() -> tuple[dict, int]:
        rows = []
        seen = statements_run(app, lambda: rows.extend(calls.call_list(session, today())))
        return {row.client.id: row for row in rows}, len(seen)

    first, second = late_clients(2)
    calls.log_call(session, second.id, calls.CallInput(NoteReason.DISPUTE, CallOutcome.REACHED, "Disputes a line",
                                                        today()), staff=staff, today=today())
    rows, few = listed()
    assert (rows[first.id].reason, rows[second.id].reason) == (CallReason.AFTER_EMAIL, CallReason.SCHEDULED)
    assert [n.reason for n in rows[second.id].last_notes] == [NoteReason.DISPUTE] and rows[first.id].last_notes == []
    assert [r.client_id for r in rows[first.id].last_reminders] == [first.id]
    assert [c.phone for c in rows[first.id].phones] == [f"555-{first.id:04d}"]
    assert rows[first.id].past_due_cents == 10_000 * first.id

    more = late_clients(5)
    promise(session, more[0], None, cents=1_000)  # an open promise: off the list
    broken = promise(session, more[1], None, cents=1_000, on=today())
    clock.advance(days=1)
    promises.settle(session, today())
    for _ in range(12):  # each replaces the one before; more than the ten newest the list reads
        last = promise(session, more[2], None, cents=1_000)
    last.status = PromiseStatus.CANCELED
    session.commit()
    rows, statements = listed()
    assert statements == few
    assert more[0].id not in rows and rows[more[1].id].reason == CallReason.BROKEN_PROMISE
    assert rows[more[1].id].broken_promise.id == broken.id and rows[more[1].id].promises[0].id == broken.id
    assert len(rows[more[2].id].promises) == 3 and rows[more[2].id].reason == CallReason.AFTER_EMAIL
    assert set(rows) == {first.id, second.id, *(c.id for c in more[1:])}


def test_a_call_with_a_bad_promise_writes_nothing(app, session, clock, acme, late, make):
    staff = make.staff()
    with pytest.raises(DomainError, match="larger than the balance"):
        calls.log_call(session, acme.id, calls.CallInput(NoteReason.CASH_FLOW, CallOutcome.REACHED, "",
                                                          promise_cents=90_000, promise_on=today()),
                       staff=staff, today=today())
    with pytest.raises(DomainError, match="in the past"):
        calls.log_call(session, acme.id, calls.CallInput(NoteReason.OTHER, CallOutcome.NO_ANSWER, "",
                                                          today() - timedelta(days=1)), staff=staff, today=today())
    assert [count(session, m) for m in (CollectionNote, PaymentPromise, ClientCollection)] == [0, 0, 0]


def test_pausing_needs_a_reason(app, session, acme):
    with pytest.raises(DomainError, match="Say why"):
        calls.pause(session, acme.id, reason="  ", until=None, today=today())
    with pytest.raises(DomainError, match="in the past"):
        calls.pause(session, acme.id, reason="x", until=today() - timedelta(days=1), today=today())
    assert count(session, ClientCollection) == 0


def test_a_promise_on_an_invoice_voided_since_is_withdrawn_not_broken(app, session, clock, make, acme, late):
    from portal.services import billing

    made = promise(session, acme, late, cents=30_000, on=today() + timedelta(days=3))
    billing.void_invoice(session, late, "billed to the wrong client")
    clock.advance(days=4)
    result = promises.settle(session, today())
    session.refresh(made)
    assert made.status == PromiseStatus.CANCELED and made.resolved_at is not None
    assert (result.kept, result.broken) == (0, 0)
    assert calls.client_panel(session, acme.id, today()).broken_promise is None


def test_money_for_an_invoice_a_past_due_promise_does_not_cover_does_not_keep_it(app, session, clock, make, acme,
                                                                                  late):
    current = make.invoice(acme, 50_000, due_date=today() + timedelta(days=20))  # not past due: not promised
    made = promise(session, acme, None, cents=30_000, on=today() + timedelta(days=5))
    clock.advance(days=1)
    make.payment(acme, 50_000, allocations={current.id: 50_000})
    assert promises.settle(session, today()).kept == 0
    session.refresh(made)
    assert made.status == PromiseStatus.OPEN
    make.payment(acme, 30_000, allocations={late.id: 30_000})
    assert promises.settle(session, today()).kept == 1
    session.refresh(made)
    assert made.status == PromiseStatus.KEPT
