"""`portal run-due` charging autopay invoices: the real services on a real database, the sandbox gateway.

Enrollment rows are written directly here (``enroll_rows``; the enrollment side has its own tests): a saved method on
the client's gateway customer, an authorization agreement row, and autopay switched on.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import event, select

from portal import db
from portal.clock import now
from portal.domain import autopay as A
from portal.models import (
    AutopayCharge,
    AutopayEnrollment,
    ChargeAttempt,
    DueRun,
    DueRunSkip,
)
from portal.services.due import run_due
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, read_outbox, runtime_for
from tests.run_due_fixtures import CARD, charge_rows_read_back, enroll_rows, run, saved_on_gateway


def test_an_invoice_due_today_is_charged_off_session_once(app, session, make, sandbox_gateway, outbox):
    rt = runtime_for(sandbox_gateway)
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test")
    invoice = make.invoice(client, 12_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16))
    enroll_rows(session, rt, client, [("pm_card_visa", CARD)])

    report = run(app, session, rt)
    again = run(app, session, rt)

    assert (report.charged, report.succeeded, again.charged) == (1, 1, 0)
    assert invoice_state(session, invoice) == ("paid", 0)
    [charge] = session.scalars(select(AutopayCharge)).all()
    attempt = session.get(ChargeAttempt, charge.attempt_id)
    assert (attempt.origin, attempt.status, attempt.charged_cents) == ("autopay", "succeeded", 12_000)
    assert len(session.scalars(select(DueRun)).all()) == 2
    assert any("Payment received" in m["Subject"] for m in read_outbox(outbox))



def test_a_likely_duplicate_bill_waits_for_the_admin_before_autopay_charges_it(app, session, make, sandbox_gateway,
                                                                               outbox):
    from portal.services.collections import duplicates

    rt = runtime_for(sandbox_gateway)
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test")
    original = make.invoice(client, 12_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16))
    twin = make.invoice(client, 12_000, issue_date=date(2026, 3, 3), due_date=date(2026, 3, 16))  # another number
    enroll_rows(session, rt, client, [("pm_card_visa", CARD)])

    report = run(app, session, rt)

    assert (report.charged, report.succeeded) == (1, 1)  # the original only
    assert (invoice_state(session, original), invoice_state(session, twin)) == (("paid", 0), ("open", 12_000))
    assert (twin.id, A.Skip.HELD_AS_DUPLICATE) in report.skips

    duplicates.confirm_distinct(session, twin.id, staff=make.staff())
    report = run(app, session, rt)

    assert (report.charged, report.succeeded) == (1, 1)
    assert invoice_state(session, twin) == ("paid", 0)
    assert sorted(c.invoice_id for c in session.scalars(select(AutopayCharge))) == sorted([original.id, twin.id])

def test_the_run_log_shows_each_run_what_it_charged_and_why_it_skipped(app, session, make, sandbox_gateway, outbox,
                                                                       staff_http):
    rt = runtime_for(sandbox_gateway)
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test")
    make.invoice(client, 4_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16))
    big = make.invoice(client, 90_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16))
    enroll_rows(session, rt, client, [("pm_card_visa", CARD)])
    row = session.scalar(select(AutopayEnrollment))
    row.has_cap_override, row.cap_cents = True, 50_000
    session.commit()

    report = run(app, session, rt)
    listing = staff_http.get("/admin/runs")
    detail = staff_http.get(f"/admin/runs/{report.run_id}")

    assert (report.charged, report.succeeded, report.skipped) == (1, 1, 1)
    assert listing.status_code == 200 and f"/admin/runs/{report.run_id}".encode() in listing.data
    text = detail.get_data(as_text=True)
    assert detail.status_code == 200
    assert "1 (1 succeeded, 0 failed, 0 pending)" in text
    assert big.number in text and "Over the autopay cap" in text
    assert staff_http.get("/admin/runs/999999").status_code == 404


def test_quiet_runs_leave_the_run_log_after_a_week_and_runs_that_did_something_stay(app, session, make,
                                                                                   sandbox_gateway):
    rt = runtime_for(sandbox_gateway)
    invoice = make.invoice(make.client("Acme Dental LLC"), 4_000)

    def past_run(days_ago: float, *, finished: bool = True, **counts) -> int:
        started = now() - timedelta(days=days_ago)
        row = DueRun(node="old:1", started_at=started, finished_at=started if finished else None, **counts)
        session.add(row)
        session.flush()
        session.add(DueRunSkip(run_id=row.id, invoice_id=invoice.id, reason=A.Skip.OVER_CAP))
        session.commit()
        return row.id

    quiet_old = [past_run(8), past_run(30, skipped=1)]
    kept = [past_run(6),  # quiet, but within the week
            past_run(8, charged=1, succeeded=1), past_run(8, settled=1), past_run(8, notices=2),
            past_run(8, problems="autopay charges: OperationalError"),
            past_run(8, finished=False)]  # killed mid-run: a person may want to know

    report = run(app, session, rt)
    again = run(app, session, rt)

    session.expire_all()
    runs = set(session.scalars(select(DueRun.id)))
    assert runs == set(kept) | {report.run_id, again.run_id}
    assert not runs & set(quiet_old)
    assert set(session.scalars(select(DueRunSkip.run_id))) == set(kept)  # their skips went with them


def test_the_run_log_is_for_staff_only(app, http):
    assert http.get("/admin/runs").status_code in (302, 401, 403)


def test_more_charging_threads_than_the_pool_has_connections_never_wait_for_one(app, session, make, sandbox_gateway,
                                                                                outbox):
    """At the 100/s limit run-due runs 50 threads; on a pool of 3 connections that fail a waiter after 0.2 s, threads
    that could not get one once failed their client's charges (50 threads over 20 connections did). Only a thread
    in its turn holds a connection, and there are fewer turns than connections, whatever is configured."""
    from sqlalchemy.orm import sessionmaker

    rt = runtime_for(sandbox_gateway)
    rt = replace(rt, config={**rt.config, "GATEWAY_RATE_LIMIT": 100, "RUN_DUE_DATABASE_THREADS": 8})
    invoices = []
    for n in range(12):
        client = make.client(f"Clinic {n} LLC")
        invoices.append(make.invoice(client, 10_000 + n, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16)))
        customer, card = saved_on_gateway(rt, client, "pm_card_visa")
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
    small = db.make_engine(app.config["DATABASE_URL"], pool_size=3, max_overflow=0, pool_timeout=0.2)
    sessions = sessionmaker(bind=small, expire_on_commit=False)

    @contextmanager
    def small_pool_session():
        with app.app_context(), sessions() as worker:
            yield worker

    try:
        with sessions() as run_session:
            report = run_due(run_session, rt, open_session=small_pool_session)
    finally:
        small.dispose()

    assert report.problems == [] and (report.charged, report.succeeded) == (12, 12)
    assert [invoice_state(session, invoice) for invoice in invoices] == [("paid", 0)] * 12


@pytest.mark.parametrize("database_threads", [1, 2])
def test_charging_threads_take_turns_on_the_database_and_still_charge_everything(app, session, make, sandbox_gateway,
                                                                                 outbox, database_threads):
    """The charging threads (one a client here, of the 50 the rate wants) hold a database connection only in their
    turn (RUN_DUE_DATABASE_THREADS); they give it back, with no transaction open, while the gateway answers."""
    rt = runtime_for(sandbox_gateway)
    rt = replace(rt, config={**rt.config, "GATEWAY_RATE_LIMIT": 100, "RUN_DUE_DATABASE_THREADS": database_threads})
    invoices = []
    for n in range(12):
        client = make.client(f"Clinic {n} LLC")
        invoices += [make.invoice(client, 10_000 + n, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16)),
                     make.invoice(client, 20_000 + n, issue_date=date(2026, 3, 2), due_date=date(2026, 3, 16))]
        customer, card = saved_on_gateway(rt, client, "pm_card_visa")
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
    engine = app.extensions["db_engine"]
    lock, held, peak = threading.Lock(), set(), [0]

    def checkout(_dbapi, record, _proxy):
        if threading.current_thread().name.startswith("run-due"):
            with lock:
                held.add(id(record))
                peak[0] = max(peak[0], len(held))

    def checkin(_dbapi, record):
        with lock:
            held.discard(id(record))

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        report = run(app, session, rt)
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)

    assert report.problems == [] and (report.charged, report.succeeded) == (24, 24)
    assert [invoice_state(session, invoice) for invoice in invoices] == [("paid", 0)] * 24
    assert 1 <= peak[0] <= database_threads


def test_booking_a_charge_reads_nothing_back_that_its_claim_wrote_even_when_the_collector_runs_constantly(
        app, session, make, sandbox_gateway, outbox):
    """The session's identity map is weak and a charge's attempt, request and items sit in reference cycles: unless
    the claim holds them until the answer is booked, booking reads them back whenever Python's cycle collector ran
    in between (run-due then made 27 statements a charge instead of 20, its speed hanging on the collector). The
    collector runs at every moment it could matter (``charge_rows_read_back``); before, a rarer collector made this
    fail one run in many."""
    rt = runtime_for(sandbox_gateway)
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test")
    invoices = [make.invoice(client, 12_000 + n, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16))
                for n in range(3)]
    enroll_rows(session, rt, client, [("pm_card_visa", CARD)])
    with charge_rows_read_back() as read_back:
        report = run(app, session, rt)

    assert (report.charged, report.succeeded) == (3, 3)
    assert [invoice_state(session, invoice) for invoice in invoices] == [("paid", 0)] * 3
    assert read_back == []


def test_a_receipt_no_one_could_be_sent_is_tried_again_for_a_week_then_left_to_the_payment_history(
        app, session, make, sandbox_gateway, outbox, clock):
    """A client with no billing contact when autopay charged it: each run looks for someone to send the receipt to,
    for a week (a contact added meanwhile gets it, once); after that no run looks at it again."""
    rt = runtime_for(sandbox_gateway)
    early, late = make.client("Acme Dental LLC"), make.client("Birch Clinic LLC")
    for client in (early, late):
        make.invoice(client, 12_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16))
        customer, card = saved_on_gateway(rt, client, "pm_card_visa")
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
    assert run(app, session, rt).succeeded == 2 and read_outbox(outbox) == []

    clock.advance(days=3)
    make.contact(early, email="pat@acme-dental.test", is_billing=True)
    run(app, session, rt)
    run(app, session, rt)
    clock.advance(days=5)  # 8 days after the charge
    make.contact(late, email="lee@birch.test", is_billing=True)
    run(app, session, rt)

    assert [(m["To"], m["Subject"].split(":")[0]) for m in read_outbox(outbox)] == [
        ("pat@acme-dental.test", "Payment received")]
