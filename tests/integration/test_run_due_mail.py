"""`portal run-due`'s charging threads and the mail relay: the app mails through the loopback SMTP server here.

A thread holds a database turn (RUN_DUE_DATABASE_THREADS) while it works on the database, not while a receipt waits
at the relay: a slow relay must not hold up every other client's charges.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date

from sqlalchemy import event

from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, runtime_for
from tests.run_due_fixtures import CARD, enroll_rows, run, saved_on_gateway
from tests.smtp_fixtures import mail_through_smtp  # noqa: F401 (fixture: the app mails through smtp_server)


def test_while_a_receipt_waits_at_the_mail_relay_another_charging_thread_has_the_turn(app, session, make,
                                                                                      sandbox_gateway, smtp_server):
    """One turn. The relay holds the first receipt until a charging thread opens a database connection meanwhile
    (giving up after 10 s): that happens only if the receipt's thread gave its turn back while it waited."""
    rt = runtime_for(sandbox_gateway)
    rt = replace(rt, config={**rt.config, "GATEWAY_RATE_LIMIT": 100, "RUN_DUE_DATABASE_THREADS": 1})
    invoices = []
    for n in range(6):
        client = make.client(f"Clinic {n} LLC")
        make.contact(client, email=f"ap@clinic{n}.test", is_billing=True)
        invoices.append(make.invoice(client, 10_000 + n, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16)))
        customer, card = saved_on_gateway(rt, client, "pm_card_visa")
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
    engine = app.extensions["db_engine"]
    first_arrived, holding, worked_meanwhile = threading.Event(), threading.Event(), threading.Event()
    held: list[bool] = []  # for the first receipt: did another thread work on the database while it waited?

    def checkout(_dbapi, _record, _proxy):
        if holding.is_set() and threading.current_thread().name.startswith("run-due"):
            worked_meanwhile.set()

    def relay_holds_the_first_receipt():
        if first_arrived.is_set():
            return
        first_arrived.set()
        holding.set()
        held.append(worked_meanwhile.wait(10))
        holding.clear()

    smtp_server.while_receiving = relay_holds_the_first_receipt
    event.listen(engine, "checkout", checkout)
    try:
        report = run(app, session, rt)
    finally:
        event.remove(engine, "checkout", checkout)
        smtp_server.while_receiving = None

    assert report.problems == [] and (report.charged, report.succeeded) == (6, 6)
    assert [invoice_state(session, invoice) for invoice in invoices] == [("paid", 0)] * 6
    assert held == [True]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages
                  if m.message["Subject"].startswith("Payment received")) == [f"ap@clinic{n}.test" for n in range(6)]
