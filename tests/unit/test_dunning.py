"""Collections rules (portal/domain/dunning.py): the schedule, which step is due, skips, pay-by dates, promises and
the call list."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import dunning as D
from portal.domain.errors import DomainError

DUE = date(2026, 3, 16)
ISSUED = date(2026, 2, 14)
STEPS = [D.StepRef(n, spec.offset_days) for n, spec in enumerate(D.DEFAULT_SCHEDULE, start=1)]


def due_on(day: date, sent=(), issue_date: date = ISSUED) -> int | None:
    step = D.due_step(STEPS, issue_date=issue_date, due_date=DUE, today=day, sent_offsets=sent)
    return step.offset_days if step else None


def test_the_default_schedule_is_the_issues():
    assert [s.offset_days for s in D.DEFAULT_SCHEDULE] == [-3, 1, 7, 14, 30]
    day_after = D.DEFAULT_SCHEDULE[1]
    assert day_after.attach_invoice and "{pay_link}" in day_after.body
    final = D.DEFAULT_SCHEDULE[-1]
    assert final.pause_new_work and "new work paused until cleared" in final.subject
    assert len({s.subject for s in D.DEFAULT_SCHEDULE}) == 5  # each its own subject
    for spec in D.DEFAULT_SCHEDULE:  # the defaults pass the editor's own checks
        D.check_step(spec, [s.offset_days for s in D.DEFAULT_SCHEDULE if s is not spec])


@pytest.mark.parametrize(("day", "expected"), [
    (DUE - timedelta(days=4), None),
    (DUE - timedelta(days=3), -3),
    (DUE, -3),
    (DUE + timedelta(days=1), 1),
    (DUE + timedelta(days=6), 1),
    (DUE + timedelta(days=7), 7),
    (DUE + timedelta(days=14), 14),
    (DUE + timedelta(days=30), 30),
    (DUE + timedelta(days=300), 30),
])
def test_the_latest_step_whose_day_has_come(day, expected):
    assert due_on(day) == expected


def test_a_step_goes_once_and_an_older_one_never_after_a_newer():
    assert due_on(DUE - timedelta(days=3), sent=[-3]) is None
    assert due_on(DUE + timedelta(days=1), sent=[-3]) == 1
    # paused for three weeks: the current step goes, not the ones missed
    assert due_on(DUE + timedelta(days=22), sent=[-3]) == 14
    assert due_on(DUE + timedelta(days=22), sent=[-3, 14]) is None
    assert due_on(DUE + timedelta(days=10), sent=[14]) is None  # a newer one went: 7 never follows it


DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
OFFSETS = st.integers(min_value=D.OFFSET_MIN, max_value=D.OFFSET_MAX)


@given(issue_date=DAYS, due_date=DAYS, today=DAYS, offsets=st.sets(OFFSETS, min_size=1, max_size=8),
       sent=st.lists(OFFSETS, max_size=4))
def test_the_step_due_is_the_latest_whose_day_came_after_the_issue_date(issue_date, due_date, today, offsets, sent):
    """due_step counts days; by the dates themselves: a step's day is the due date plus its offset."""
    steps = [D.StepRef(n, offset) for n, offset in enumerate(sorted(offsets))]
    reached = [s for s in steps if issue_date < due_date + timedelta(days=s.offset_days) <= today]
    latest = max(reached, key=lambda s: s.offset_days, default=None)
    expected = None if latest is None or any(o >= latest.offset_days for o in sent) else latest
    assert D.due_step(steps, issue_date=issue_date, due_date=due_date, today=today, sent_offsets=sent) == expected


def test_a_step_whose_day_fell_before_the_invoice_was_issued_is_not_sent():
    assert due_on(DUE - timedelta(days=1), issue_date=DUE - timedelta(days=2)) is None  # -3 was before issue
    assert due_on(DUE + timedelta(days=1), issue_date=DUE - timedelta(days=2)) == 1


def test_pay_by_is_named_and_never_before_the_due_date():
    assert D.pay_by(DUE - timedelta(days=3), DUE, 3) == DUE
    assert D.pay_by(DUE - timedelta(days=3), DUE, 0) == DUE
    assert D.pay_by(DUE + timedelta(days=1), DUE, 7) == DUE + timedelta(days=8)


def spec(**kw) -> D.StepSpec:
    values = {"offset_days": 5, "name": "Nudge", "subject": "Invoice {invoice_number}", "body": "Pay {pay_link}"}
    return D.StepSpec(**{**values, **kw})


@pytest.mark.parametrize(("kw", "others", "message"), [
    ({"offset_days": 7}, [7], "Another step already sends on 7 days after the due date"),
    ({"offset_days": -61}, [], "between -60"),
    ({"offset_days": 366}, [], "between -60"),
    ({"subject": "   "}, [], "The subject is empty"),
    ({"subject": "two\nlines"}, [], "one line"),
    ({"body": ""}, [], "The email text is empty"),
    ({"name": ""}, [], "Give the step a name"),
    ({"subject": "Pay {amount_due}"}, [], "names {amount_due}"),
    ({"body": "Pay {pay_link"}, [], "unmatched brace"),
    ({"pay_within_days": 91}, [], "pay-by date"),
])
def test_malformed_steps_are_refused_with_a_clear_message(kw, others, message):
    with pytest.raises(DomainError, match=message.replace("{", r"\{").replace("}", r"\}")):
        D.check_step(spec(**kw), others)


def test_edges_of_the_offset_range_are_accepted_and_text_is_trimmed():
    assert D.check_step(spec(offset_days=-60), []).offset_days == -60
    assert D.check_step(spec(offset_days=365, name="  Late  "), [1, 2]).name == "Late"


def test_render_fills_placeholders():
    values = D.placeholder_values(contact_name="", client="Acme", invoice_number="INV-7", total_cents=12_345,
                                  balance_cents=10_000, currency="USD", due_date=DUE, pay_by_date=date(2026, 3, 23),
                                  pay_link="http://x/i/t", msp="MSP", today=DUE + timedelta(days=7))
    text = D.render("Hi {contact_name}: {invoice_number} {balance} of {total}, {days_overdue} days, by {pay_by}",
                    values)
    assert text == "Hi there: INV-7 $100.00 of $123.45, 7 days, by March 23, 2026"


def test_skip_rules_in_order():
    owing = D.InvoiceFacts(open=True, balance_cents=100)
    free = D.ClientFacts()
    assert D.skip_reason(owing, free, None, DUE) is None
    assert D.skip_reason(D.InvoiceFacts(open=False, balance_cents=100), free, None, DUE) == D.ReminderSkip.NOT_OPEN
    assert D.skip_reason(D.InvoiceFacts(open=True, balance_cents=0), free, None, DUE) == D.ReminderSkip.NOTHING_OWED
    assert D.skip_reason(D.InvoiceFacts(True, 100, on_current_plan=True), free, None, DUE) == D.ReminderSkip.ON_PLAN
    assert D.skip_reason(D.InvoiceFacts(True, 100, autopay_will_charge=True), free, None,
                         DUE) == D.ReminderSkip.AUTOPAY
    assert D.skip_reason(D.InvoiceFacts(True, 100, duplicate_held=True), free, None,
                         DUE) == D.ReminderSkip.DUPLICATE_HELD
    assert D.skip_reason(owing, D.ClientFacts(paused=True), None, DUE) == D.ReminderSkip.PAUSED
    assert D.skip_reason(owing, D.ClientFacts(has_recipient=False), None, DUE) == D.ReminderSkip.NO_RECIPIENT
    until = D.ClientFacts(paused=True, paused_until=DUE)
    assert D.skip_reason(owing, until, None, DUE) == D.ReminderSkip.PAUSED
    assert D.skip_reason(owing, until, None, DUE + timedelta(days=1)) is None  # the pause lifted by itself
    assert D.skip_reason(owing, free, DUE, DUE) == D.ReminderSkip.PROMISED
    assert D.skip_reason(owing, free, DUE, DUE + timedelta(days=1)) is None


def test_a_claimed_reminder_is_retried_after_a_failure_or_its_lease_never_once_sent():
    at = datetime(2026, 3, 16, 12, tzinfo=UTC)
    assert not D.may_retry(sent_at=at, last_error="x", claimed_at=at, now=at + timedelta(days=9))
    assert D.may_retry(sent_at=None, last_error="550 refused", claimed_at=at, now=at)
    assert not D.may_retry(sent_at=None, last_error="", claimed_at=at, now=at + timedelta(minutes=1))
    assert D.may_retry(sent_at=None, last_error="", claimed_at=at, now=at + D.SEND_LEASE)


@pytest.mark.parametrize(("amount", "on", "balance", "message"), [
    (0, DUE, 500, "more than zero"),
    (-5, DUE, 500, "more than zero"),
    (501, DUE, 500, "larger than the balance of \\$5.00"),
    (100, DUE - timedelta(days=1), 500, "in the past"),
    (100, DUE + timedelta(days=181), 500, "within 180 days"),
    (100, DUE, 0, "Nothing is owed"),
])
def test_bad_promises_are_refused(amount, on, balance, message):
    with pytest.raises(DomainError, match=message):
        D.check_promise(amount, on, balance, DUE)


def test_a_good_promise_passes():
    D.check_promise(500, DUE, 500, DUE)


def test_promise_kept_broken_or_still_open():
    assert D.promise_outcome(500, DUE, 0, DUE) == D.PromiseStatus.OPEN
    assert D.promise_outcome(500, DUE, 499, DUE) == D.PromiseStatus.OPEN
    assert D.promise_outcome(500, DUE, 500, DUE - timedelta(days=3)) == D.PromiseStatus.KEPT  # early: kept at once
    assert D.promise_outcome(500, DUE, 499, DUE + timedelta(days=1)) == D.PromiseStatus.BROKEN
    assert D.promise_outcome(500, DUE, 600, DUE + timedelta(days=1)) == D.PromiseStatus.KEPT


def reason(**kw):
    values = {"first_overdue_email_on": DUE + timedelta(days=1), "last_call_on": None, "next_call_on": None,
              "open_promise": False, "broken_promise_since": None, "past_due_cents": 100, "call_after_days": 3,
              "today": DUE + timedelta(days=4)}
    return D.call_reason(**{**values, **kw})


def test_the_call_list_rule():
    assert reason() == D.CallReason.AFTER_EMAIL
    assert reason(today=DUE + timedelta(days=3)) is None  # not yet: three days after the email
    assert reason(past_due_cents=0) is None  # paid
    assert reason(open_promise=True) is None
    assert reason(first_overdue_email_on=None) is None
    assert reason(last_call_on=DUE + timedelta(days=4)) is None  # already called
    assert reason(last_call_on=DUE + timedelta(days=4), next_call_on=DUE + timedelta(days=9)) is None
    assert reason(last_call_on=DUE + timedelta(days=4), next_call_on=DUE + timedelta(days=9),
                  today=DUE + timedelta(days=9)) == D.CallReason.SCHEDULED
    assert reason(last_call_on=DUE + timedelta(days=4), broken_promise_since=DUE + timedelta(days=8),
                  today=DUE + timedelta(days=8)) == D.CallReason.BROKEN_PROMISE


def test_notes_are_checked():
    D.check_note(D.NoteReason.CASH_FLOW, D.CallOutcome.REACHED, "", None, DUE)
    with pytest.raises(DomainError, match="reason code"):
        D.check_note("bored", D.CallOutcome.REACHED, "", None, DUE)
    with pytest.raises(DomainError, match="Write the note"):
        D.check_note(D.NoteReason.OTHER, D.CallOutcome.NONE, " ", None, DUE)
    with pytest.raises(DomainError, match="in the past"):
        D.check_note(D.NoteReason.OTHER, D.CallOutcome.VOICEMAIL, "", DUE - timedelta(days=1), DUE)
