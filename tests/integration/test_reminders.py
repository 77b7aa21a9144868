"""Reminders (dunning) as `run-due` sends them, through a real SMTP server on loopback: every step on its day with
its own subject and a pay-by date, the day-after-due one with the original invoice PDF and a working pay link, never
twice (a second run, two run-due OS processes at once), a refused message retried by the next run, the timeline,
and the skip rules (autopay, current plan, paused client, open promise, duplicate held)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from portal.clock import now, today
from portal.domain.dunning import PromiseStatus
from portal.models import (
    DunningStep,
    DuplicateFlag,
    InvoiceEvent,
    PaymentPlan,
    PaymentPromise,
    PlanInvoice,
    PlanOffer,
    ReminderSend,
)
from portal.services.collections import reminders, schedule
from portal.services.settings import update_settings
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import runtime_for
from tests.run_due_fixtures import CARD, enroll_rows, run, set_rules
from tests.smtp_fixtures import mail_through_smtp, retry_mail_quickly  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("quick_retries")

ISSUED = date(2026, 2, 20)
DUE = date(2026, 3, 20)
LINK = re.compile(r"http://localhost(/i/[A-Za-z0-9_.\-]+)")
SUBJECTS = {
    -3: "Invoice {n} from Acme IT is due March 20, 2026",
    1: "Invoice {n} was due yesterday: a copy is attached",
    7: "Invoice {n} is 7 days past due",
    14: "Second notice: invoice {n} is 14 days past due",
    30: "Final notice: invoice {n}, new work paused until cleared",
}


@pytest.fixture
def msp(session):
    return update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme-it.test",
                           phone="555-0100")


@pytest.fixture
def northwind(make, msp):
    client = make.client("Northwind Traders")
    make.contact(client, "pat@northwind.test", name="Pat Payable", phone="555-0142")
    make.contact(client, "it@northwind.test", name="Ian Tech", is_billing=False)
    return client


@pytest.fixture
def invoice(make, northwind):
    return make.invoice(northwind, 123_456, issue_date=ISSUED, due_date=DUE)


def send(session, rt, clock, day: date) -> reminders.ReminderReport:
    clock.set(day)
    return reminders.send_due(session, rt, today())


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def sends(session, invoice) -> list[tuple[int, bool, int, str]]:
    session.expire_all()
    return [(r.step.offset_days, r.sent_at is not None, r.attempts, r.last_error) for r in session.scalars(
        select(ReminderSend).where(ReminderSend.invoice_id == invoice.id).order_by(ReminderSend.id))]


def test_every_step_is_sent_on_its_day_with_its_subject_and_pay_by_date(app, session, rt, clock, smtp_server,
                                                                         invoice, http):
    received = []
    for offset in (-3, 1, 7, 14, 30):
        day = DUE + timedelta(days=offset)
        send(session, rt, clock, day - timedelta(days=1))  # the day before: nothing new
        assert len(smtp_server.messages) == len(received), offset
        report = send(session, rt, clock, day)
        assert report.sent == 1, (offset, report)
        [message] = smtp_server.messages[len(received):]
        received.append(message)
        assert message.rcpt_tos == ["pat@northwind.test"]  # the billing contact, not the IT one
        assert message.message["Subject"] == SUBJECTS[offset].format(n=invoice.number)
        body = text_of(message.message)
        pay_by = max(DUE, day + timedelta(days=3 if offset == -3 else 7))
        assert f"Please pay by {pay_by:%b} {pay_by.day}, {pay_by.year}" in body
        attachments = [p.get_filename() for p in message.message.iter_attachments()]
        assert attachments == ([f"{invoice.number}.pdf"] if offset == 1 else []), offset
    assert [s[:2] for s in sends(session, invoice)] == [(o, True) for o in (-3, 1, 7, 14, 30)]

    # the day-after one: the original invoice as a PDF, and a pay link that opens the invoice
    day_after = received[1].message
    [pdf] = list(day_after.iter_attachments())
    assert invoice.number in PdfReader(io.BytesIO(pdf.get_content())).pages[0].extract_text()
    path = LINK.search(text_of(day_after)).group(1)
    page = http.get(path)
    assert page.status_code == 200 and invoice.number in page.get_data(as_text=True)
    assert "was due on March 20, 2026 and $1,234.56 is still open" in text_of(day_after)

    # each send is on the invoice's timeline
    events = session.scalars(select(InvoiceEvent.detail).where(InvoiceEvent.invoice_id == invoice.id,
                                                               InvoiceEvent.kind == "sent")).all()
    assert [e.split(" emailed")[0] for e in events] == [
        "Reminder (Friendly reminder)", "Reminder (Invoice past due)", "Reminder (One week past due)",
        "Reminder (Two weeks past due)", "Reminder (Final notice)"]


def test_a_second_run_sends_nothing_and_a_paid_invoice_is_not_chased(app, session, rt, clock, smtp_server, invoice,
                                                                     make, northwind):
    assert send(session, rt, clock, DUE + timedelta(days=1)).sent == 1
    assert send(session, rt, clock, DUE + timedelta(days=1)).sent == 0
    assert send(session, rt, clock, DUE + timedelta(days=5)).sent == 0
    make.payment(northwind, 123_456, received_on=DUE + timedelta(days=5))
    assert send(session, rt, clock, DUE + timedelta(days=7)).sent == 0
    assert len(smtp_server.messages) == 1


def test_the_full_run_due_sends_reminders(app, session, rt, clock, smtp_server, invoice):
    clock.set(DUE + timedelta(days=1))
    report = run(app, session, rt)
    assert report.problems == []
    assert [m.message["Subject"] for m in smtp_server.messages] == [SUBJECTS[1].format(n=invoice.number)]


def test_a_refused_message_is_not_marked_sent_and_the_next_run_retries_it(app, session, rt, clock, smtp_server,
                                                                          invoice):
    smtp_server.reply_next("550 5.7.1 Relaying denied")
    report = send(session, rt, clock, DUE + timedelta(days=1))
    assert (report.sent, report.failed) == (0, 1)
    [(offset, sent, attempts, error)] = sends(session, invoice)
    assert (offset, sent, attempts) == (1, False, 1) and "Relaying denied" in error
    assert smtp_server.messages == []

    report = send(session, rt, clock, DUE + timedelta(days=2))
    assert report.sent == 1
    assert sends(session, invoice) == [(1, True, 2, "")]
    [message] = smtp_server.messages
    assert message.message["Subject"] == SUBJECTS[1].format(n=invoice.number)
    assert send(session, rt, clock, DUE + timedelta(days=3)).sent == 0


def test_a_claim_left_by_a_dead_run_is_taken_over_after_its_lease(app, session, rt, clock, smtp_server, invoice):
    schedule.ensure_saved(session)
    step = session.scalar(select(DunningStep).where(DunningStep.offset_days == 1))
    clock.set(datetime(2026, 3, 21, 9, tzinfo=UTC))
    session.add(ReminderSend(invoice_id=invoice.id, client_id=invoice.client_id, step_id=step.id, pay_by=DUE,
                             attempts=1, last_error="", claimed_at=now()))
    session.commit()
    assert reminders.send_due(session, rt, today()).sent == 0  # another run is sending it right now
    clock.advance(minutes=16)
    assert reminders.send_due(session, rt, today()).sent == 1
    assert sends(session, invoice) == [(1, True, 2, "")]
    assert len(smtp_server.messages) == 1


# --- skip rules -------------------------------------------------------------------------------------------------------

def test_a_client_with_nobody_to_write_to_is_skipped_not_failed(app, session, rt, clock, smtp_server, make, msp):
    client = make.client("Nobody Home LLC")
    make.contact(client, "it@nobody.test", is_billing=False)
    invoice = make.invoice(client, 10_000, issue_date=ISSUED, due_date=DUE)
    report = send(session, rt, clock, DUE + timedelta(days=1))
    assert (report.sent, report.failed, report.skipped, report.problems) == (0, 0, {"no_recipient": 1}, [])
    assert sends(session, invoice) == [] and smtp_server.attempts == 0
    make.contact(client, "ap@nobody.test")  # a billing contact added: the next run reminds
    assert send(session, rt, clock, DUE + timedelta(days=2)).sent == 1


def test_invoices_autopay_will_charge_get_no_reminder(app, session, make, northwind, invoice, clock, smtp_server,
                                                      stripe_gateway):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, northwind, [("pm_card_visa", CARD)])
    assert send(session, rt, clock, DUE - timedelta(days=3)).skipped == {"autopay": 1}
    assert smtp_server.messages == []
    over_cap = make.invoice(northwind, 900_000, issue_date=ISSUED, due_date=DUE)
    set_rules(session, northwind.id, cap_cents=500_000, has_cap_override=True)
    report = send(session, rt, clock, DUE - timedelta(days=3))
    assert report.sent == 1  # above the cap autopay will not charge it: the client is reminded
    assert [m.message["Subject"] for m in smtp_server.messages] == [SUBJECTS[-3].format(n=over_cap.number)]


def put_on_plan(session, invoice, *, current: bool = True) -> None:
    offer = PlanOffer(public_id=f"offer{invoice.id}", client_id=invoice.client_id, proposed_by="msp",
                      currency="USD", balance_cents=invoice.total_cents, installments=3, frequency="monthly",
                      first_due_on=DUE, created_at=now())
    session.add(offer)
    session.flush()
    plan = PaymentPlan(reference=f"PLAN-{invoice.id:06d}", client_id=invoice.client_id, offer_id=offer.id,
                       currency="USD", balance_cents=invoice.total_cents, principal_cents=invoice.total_cents,
                       apr_percent=Decimal("0"), frequency="monthly", grace_days=5, accepted_at=now())
    session.add(plan)
    session.flush()
    session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, role="covered",
                            current_key=invoice.id if current else None))
    session.commit()


def test_an_invoice_on_a_current_plan_is_not_chased_one_on_an_ended_plan_is(app, session, rt, clock, smtp_server,
                                                                            make, northwind, invoice):
    ended = make.invoice(northwind, 5_000, issue_date=ISSUED, due_date=DUE)
    put_on_plan(session, invoice)
    put_on_plan(session, ended, current=False)
    report = send(session, rt, clock, DUE + timedelta(days=1))
    assert report.sent == 1 and report.skipped == {"on_plan": 1}
    assert [m.message["Subject"] for m in smtp_server.messages] == [SUBJECTS[1].format(n=ended.number)]


def test_a_paused_client_is_not_reminded_until_the_pause_ends(app, session, rt, clock, smtp_server, invoice,
                                                              northwind):
    from portal.services.collections import calls

    calls.pause(session, northwind.id, reason="Owner in hospital; agreed to wait", until=DUE + timedelta(days=3),
                today=DUE)
    assert send(session, rt, clock, DUE + timedelta(days=1)).skipped == {"paused": 1}
    assert send(session, rt, clock, DUE + timedelta(days=3)).skipped == {"paused": 1}
    assert smtp_server.messages == []
    assert send(session, rt, clock, DUE + timedelta(days=4)).sent == 1  # the pause lifted: the current step
    calls.pause(session, northwind.id, reason="Dispute under review", until=None, today=DUE + timedelta(days=4))
    assert send(session, rt, clock, DUE + timedelta(days=7)).skipped == {"paused": 1}
    calls.resume(session, northwind.id)
    assert send(session, rt, clock, DUE + timedelta(days=8)).sent == 1
    assert [s[0] for s in sends(session, invoice)] == [1, 7]


def test_an_open_promise_pauses_reminders_until_its_date(app, session, rt, clock, smtp_server, invoice, northwind):
    from portal.services.collections import promises

    clock.set(DUE + timedelta(days=2))
    promises.record(session, client_id=northwind.id, invoice_id=invoice.id, amount_cents=50_000,
                    promised_on=DUE + timedelta(days=9), today=today())
    assert send(session, rt, clock, DUE + timedelta(days=7)).skipped == {"promised": 1}
    assert send(session, rt, clock, DUE + timedelta(days=9)).skipped == {"promised": 1}
    assert smtp_server.messages == []
    # the day after: broken (nothing paid), and reminders resume in the same run-due
    clock.set(DUE + timedelta(days=10))
    run(app, session, rt)
    session.expire_all()
    assert session.scalar(select(PaymentPromise.status)) == PromiseStatus.BROKEN
    assert [m.message["Subject"] for m in smtp_server.messages] == [f"Invoice {invoice.number} is 10 days past due"]


def test_a_flagged_duplicate_is_not_chased_until_the_admin_decides(app, session, rt, clock, smtp_server, make,
                                                                   northwind, invoice):
    twin = make.invoice(northwind, 123_456, issue_date=ISSUED + timedelta(days=1), due_date=DUE)
    # invoice creation may already have flagged it (the duplicate-bill check); held either way until decided
    flag = session.scalar(select(DuplicateFlag).where(DuplicateFlag.invoice_id == twin.id))
    if flag is None:
        flag = DuplicateFlag(invoice_id=twin.id, duplicate_of_id=invoice.id, status="flagged", created_at=now())
        session.add(flag)
        session.commit()
    report = send(session, rt, clock, DUE + timedelta(days=1))
    assert report.sent == 1 and report.skipped == {"duplicate_held": 1}
    flag.status, flag.decided_at = "distinct", now()  # the admin: separate work
    session.commit()
    assert send(session, rt, clock, DUE + timedelta(days=2)).sent == 1
    assert sorted(m.message["Subject"] for m in smtp_server.messages) == sorted(
        SUBJECTS[1].format(n=i.number) for i in (invoice, twin))


# --- two run-due processes at once ----------------------------------------------------------------------------------

PORTAL = Path(sys.executable).parent / "portal"


def test_two_run_due_processes_at_once_send_each_reminder_once(app, app_config, session, make, msp, smtp_server):
    # the processes run on the real clock: invoices due yesterday by it get the day-after step
    real_today = datetime.now(UTC).date()
    numbers = []
    for n in range(12):
        client = make.client(f"Clinic {n} LLC")
        make.contact(client, f"ap{n}@clinic.test")
        numbers.append(make.invoice(client, 10_000 + n, issue_date=real_today - timedelta(days=30),
                                    due_date=real_today - timedelta(days=1)).number)
    session.commit()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.update({"PORTAL_ENV": "test", "PORTAL_DATABASE_URL": app_config["DATABASE_URL"],
                "PORTAL_INSTANCE_PATH": app_config["INSTANCE_PATH"], "PORTAL_SECRET_KEY": app_config["SECRET_KEY"],
                "PORTAL_BASE_URL": "http://localhost", "PORTAL_SMTP_URL": smtp_server.url})
    processes = []
    for _ in range(2):
        out = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed below, after the process ends)
        processes.append((subprocess.Popen([str(PORTAL), "run-due"], env=env, stdout=out, stderr=out,
                                           stdin=subprocess.DEVNULL, text=True), out))
    for process, out in processes:
        process.wait(timeout=300)
        out.seek(0)
        text = out.read()
        out.close()
        assert process.returncode == 0, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    subjects = sorted(m.message["Subject"] for m in smtp_server.messages)
    assert subjects == sorted(SUBJECTS[1].format(n=n) for n in numbers)  # each exactly once
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ReminderSend)
                          .where(ReminderSend.sent_at.is_not(None))) == 12


def test_a_sent_steps_day_cannot_be_moved_so_the_next_reminders_still_go(app, session, rt, clock, smtp_server,
                                                                         invoice):
    from portal.domain import dunning
    from portal.domain.errors import DomainError

    assert send(session, rt, clock, DUE - timedelta(days=3)).sent == 1  # the friendly reminder
    friendly = session.scalar(select(DunningStep).where(DunningStep.offset_days == -3))
    moved = dunning.StepSpec(60, friendly.name, friendly.subject, friendly.body, pay_within_days=3)
    with pytest.raises(DomainError, match="already sent"):
        schedule.save_step(session, moved, friendly.id)
    session.expire_all()
    assert session.get(DunningStep, friendly.id).offset_days == -3
    # its text and whether it is on can still change
    reworded = dunning.StepSpec(-3, friendly.name, "Due soon: {invoice_number}", friendly.body, pay_within_days=3,
                                active=False)
    assert schedule.save_step(session, reworded, friendly.id).subject == "Due soon: {invoice_number}"
    assert send(session, rt, clock, DUE + timedelta(days=1)).sent == 1  # the day-after one still goes


def test_a_backlog_larger_than_a_statement_can_bind_is_planned(app, session, rt, make, msp):
    """PostgreSQL binds at most 65,535 parameters a statement: the plan's lookups by invoice (current plans,
    duplicates held, reminders sent) send the ids as one parameter (keysets.among), so a large MSP's backlog is
    planned, not refused with the whole run's reminders (an ``IN`` list of 134,329 ids did so at a million
    invoices)."""
    client = make.client("Backlog LLC")  # no contact: every invoice is skipped for want of a recipient, once planned
    schedule.ensure_saved(session)
    session.commit()
    make.backlog(client, 66_000, issue_date=ISSUED, due_date=DUE)

    due, skipped = reminders.plan(session, rt, DUE + timedelta(days=1))

    assert (due, skipped) == ([], {"no_recipient": 66_000})
