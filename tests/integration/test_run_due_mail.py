"""`portal run-due`'s charging threads and the mail relay: the app mails through the loopback SMTP server here.

A thread holds a database turn (RUN_DUE_DATABASE_THREADS) while it works on the database, not while a receipt or a
decline email waits at the relay: a slow relay must not hold up every other client's charges.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date

from sqlalchemy import event, select

from portal.models import ChargeAttempt
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, runtime_for
from tests.run_due_fixtures import CARD, enroll_rows, run, saved_on_gateway
from tests.smtp_fixtures import mail_through_smtp  # noqa: F401 (fixture: the app mails through smtp_server)


def _relay_holds_the_first(app, smtp_server, action) -> bool:
    """Run ``action`` while the relay holds the first message it receives until a charging thread opens a database
    connection meanwhile (giving up after 10 s); whether one did."""
    engine = app.extensions["db_engine"]
    first_arrived, holding, worked_meanwhile = threading.Event(), threading.Event(), threading.Event()
    held: list[bool] = []

    def checkout(_dbapi, _record, _proxy):
        if holding.is_set() and threading.current_thread().name.startswith("run-due"):
            worked_meanwhile.set()

    def relay_holds_the_first_message():
        if first_arrived.is_set():
            return
        first_arrived.set()
        holding.set()
        held.append(worked_meanwhile.wait(10))
        holding.clear()

    smtp_server.while_receiving = relay_holds_the_first_message
    event.listen(engine, "checkout", checkout)
    try:
        action()
    finally:
        event.remove(engine, "checkout", checkout)
        smtp_server.while_receiving = None
    return held == [True]


def _clinics_on_autopay(session, make, rt, token: str) -> list:
    invoices = []
    for n in range(6):
        client = make.client(f"Clinic {n} LLC")
        make.contact(client, email=f"ap@clinic{n}.test", is_billing=True)
        invoices.append(make.invoice(client, 10_000 + n, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16)))
        customer, card = saved_on_gateway(rt, client, token)
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
    return invoices


def _one_turn(sandbox_gateway):
    rt = runtime_for(sandbox_gateway)
    return replace(rt, config={**rt.config, "GATEWAY_RATE_LIMIT": 100, "RUN_DUE_DATABASE_THREADS": 1})


def test_while_a_receipt_waits_at_the_mail_relay_another_charging_thread_has_the_turn(app, session, make,
                                                                                      sandbox_gateway, smtp_server):
    """One turn: the first receipt waits at the relay until another thread works on the database, which happens
    only if the receipt's thread gave its turn back while it waited."""
    rt = _one_turn(sandbox_gateway)
    invoices = _clinics_on_autopay(session, make, rt, "pm_card_visa")
    reports = []

    assert _relay_holds_the_first(app, smtp_server, lambda: reports.append(run(app, session, rt)))

    assert reports[0].problems == [] and (reports[0].charged, reports[0].succeeded) == (6, 6)
    assert [invoice_state(session, invoice) for invoice in invoices] == [("paid", 0)] * 6
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages
                  if m.message["Subject"].startswith("Payment received")) == [f"ap@clinic{n}.test" for n in range(6)]


def test_while_a_decline_email_waits_at_the_mail_relay_another_charging_thread_has_the_turn(
        app, session, make, sandbox_gateway, smtp_server):
    """The same for the email that tells a client its automatic payment was declined (sent by the charging thread
    right after the decline): every client's card is declined, each is told once, and the relay's wait on the
    first one is another thread's turn."""
    rt = _one_turn(sandbox_gateway)
    invoices = _clinics_on_autopay(session, make, rt, "pm_card_chargeDeclinedInsufficientFunds")
    reports = []

    assert _relay_holds_the_first(app, smtp_server, lambda: reports.append(run(app, session, rt)))

    assert reports[0].problems == [] and (reports[0].charged, reports[0].succeeded) == (6, 0)
    assert [invoice_state(session, invoice) for invoice in invoices] == [("open", 10_000 + n) for n in range(6)]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages
                  if "did not go through" in m.message["Subject"]) == [f"ap@clinic{n}.test" for n in range(6)]
    session.expire_all()
    assert all(a.failure_notice_sent_at is not None for a in session.scalars(select(ChargeAttempt)))
