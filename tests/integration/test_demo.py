"""`portal demo`: believable seed data in every aging bucket, and the command that seeds (and would serve) it."""

from __future__ import annotations

import os
import re
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from portal import cli
from portal.domain import authorizations
from portal.domain import terms as T
from portal.domain.aging import BUCKETS
from portal.migrate import upgrade
from portal.models import (
    Agreement,
    AutopayCharge,
    AutopayEnrollment,
    ChargeAttempt,
    Client,
    Contact,
    DashboardFigures,
    DueRun,
    Invoice,
    LedgerAdjustment,
    MspSettings,
    Payment,
    SavedPaymentMethod,
    StaffUser,
)
from portal.services import adjustments, agreements, demo, demo_autopay, ledger, staff, statements, terms
from tests.payments_fixtures import read_outbox


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_seed_spreads_invoices_over_every_aging_bucket_with_payments_and_credit(app, session, rt, clock, seeded_demo):
    summary = seeded_demo

    today = clock.today()
    report = ledger.receivables(session, today)
    assert all(report.totals[b] > 0 and report.counts[b] > 0 for b in BUCKETS), report
    invoices = session.scalars(select(Invoice)).all()
    paid = ledger.paid_cents(session, [i.id for i in invoices])
    assert sum(1 for i in invoices if i.status == "paid" and paid[i.id] == i.total_cents) >= 20
    assert sum(1 for i in invoices if 0 < paid[i.id] < i.total_cents) >= 3  # partially paid
    # a check a few cents short: the one balance the invoice page offers to write off
    short = [i for i in invoices if adjustments.writable_off_cents(session, i.id, i.total_cents - paid[i.id])]
    assert [(i.client.legal_name, i.total_cents - paid[i.id]) for i in short] == [("Foothill Orthodontics", 30)]
    assert sum(1 for c in session.scalars(select(Client)) if ledger.credit_cents(session, c.id) > 0) >= 1
    assert min(i.issue_date for i in invoices) <= today - timedelta(days=180)  # six months and more of history
    # nothing void but the one late fee the demo waives (its fee invoice is voided with the waiver)
    voided = [i for i in invoices if i.status not in ("open", "paid")]
    assert [(i.status, i.source) for i in voided] == [("void", "late_fee")]
    stored = session.scalars(select(DashboardFigures.kind).where(DashboardFigures.made_on == today)).all()
    assert sorted(stored) == ["adoption", "forecast", "trend"]  # the dashboard reads them as run-due stores them

    clients = session.scalars(select(Client)).all()
    assert len(clients) >= 24 and len({c.legal_name for c in clients}) == len(clients)
    assert all(1 <= len(c.contacts) <= 3 and c.address_line1 and c.city for c in clients)
    lines = {line.description for i in invoices for line in i.lines}
    assert any("Microsoft 365" in d for d in lines) and any(d.startswith("Hardware:") for d in lines)
    assert any("backup" in d for d in lines) and any(d.startswith("Project:") for d in lines)

    settings = session.get(MspSettings, 1)
    assert settings.name == "Bluepeak IT Services" and settings.payment_instructions and settings.reply_to
    assert staff.authenticate_staff(session, demo.ADMIN_EMAIL, demo.ADMIN_PASSWORD) is not None
    contact = session.scalar(select(Contact).where(Contact.email == summary.contact_email))
    assert contact is not None and contact.portal_access
    # the contact to try the portal as has something to pay: overdue and part-paid invoices
    own = ledger.client_summary(session, contact.client_id, today)
    assert own.overdue_count >= 1 and own.open_count >= 2
    assert any(0 < paid[i.id] < i.total_cents for i in invoices if i.client_id == contact.client_id)
    assert (summary.clients, summary.invoices, summary.payments, summary.seeded) == (
        len(clients), len(invoices), count(session, Payment), True)

    again = demo.seed_demo(session, rt, open_session=cli.worker_sessions(app))  # re-running keeps the demo as it is
    assert (again.seeded, again.invoices, again.payments) == (False, summary.invoices, summary.payments)
    assert count(session, StaffUser) == 1


def test_seed_publishes_payment_terms_with_clients_at_every_stage(session, rt, seeded_demo):
    current = terms.current_version(session, T.TERMS)
    assert current is not None and current.number == 2 and current.summary
    by_status: dict[str, list[str]] = {}
    for row in terms.client_statuses(session):
        by_status.setdefault(row.status, []).append(row.client.legal_name)
    assert set(by_status["signed"]) == set(demo.SIGNED_V2)
    assert by_status["outdated"] == ["Harbor Dental Group, PC"]  # signed version 1 only
    assert by_status["declined"] == list(demo.DECLINED) and by_status["invited"] == list(demo.INVITED)
    assert len(by_status["unsigned"]) == len(demo.CLIENTS) - 8
    signed = session.scalars(select(Agreement).where(Agreement.signed_at.is_not(None),
                                                     Agreement.kind == T.TERMS)).all()
    assert sorted(a.status for a in signed) == ["signed"] * 6 + ["superseded"]  # Alder Creek signed v1, then v2
    for agreement in signed:  # real signatures: the chain, the row and the PAdES-signed PDF all verify
        result = agreements.verify_reference(session, rt, agreement.reference)
        assert result.intact and result.signed and agreement.signed_pdf.startswith(b"%PDF")
    declined = session.scalar(select(Agreement).where(Agreement.status == "declined"))
    assert "remote-disable" in declined.decline_reason
    # the late payers who signed were charged late fees under those terms; one was waived after a call
    from portal.models import LateFee
    from portal.services import demo_fees

    fees = session.scalars(select(LateFee)).all()
    assert len(fees) >= 2
    assert {f.late_invoice.client.legal_name for f in fees} <= set(demo.SIGNED_V2) | {"Harbor Dental Group, PC"}
    assert [f.waiver_reason for f in fees if f.waived_at] == [demo_fees.WAIVER_REASON]


def test_seed_puts_clients_on_autopay_by_card_and_bank_with_the_discount_on(session, rt, seeded_demo):
    on = {row.client.legal_name: row for row in session.scalars(select(AutopayEnrollment))}
    assert set(on) == {row.client for row in demo_autopay.AUTOPAY} and all(r.enrolled for r in on.values())
    assert all(r.incentive_state == "active" and r.incentive_kind == "discount" for r in on.values())
    saved = {m.client.legal_name: m for m in session.scalars(select(SavedPaymentMethod))}
    assert {m.method_type for m in saved.values()} == {"card", "us_bank_account"}
    failing = saved["Evergreen Chiropractic"]
    assert failing.last4 == "9995" and failing.authorization_id is not None  # saves, then declines when charged
    for agreement in session.scalars(select(Agreement).where(Agreement.kind.in_(authorizations.KINDS))):
        result = agreements.verify_reference(session, rt, agreement.reference)
        assert result.intact and result.signed


def test_run_due_charged_the_autopay_clients_project_invoices_in_the_replayed_weeks(session, clock, seeded_demo,
                                                                                   app):
    """Two weeks of daily `run-due` replayed: the card paid with the 5% discount, the bank debit settled the next
    day, the failing card declined with its retry scheduled and the client emailed; each day a run in the log."""
    today = clock.today()
    projects = {row.client: session.scalar(select(Invoice).join(Client).where(
        Client.legal_name == row.client, Invoice.due_date == today - timedelta(days=row.due_days_ago)))
        for row in demo_autopay.AUTOPAY}
    card, bank, failing = (projects[row.client] for row in demo_autopay.AUTOPAY)
    discounts = {a.invoice_id: a.amount_cents for a in session.scalars(
        select(LedgerAdjustment).where(LedgerAdjustment.kind == "autopay_discount"))}
    assert discounts == {card.id: card.total_cents // 20, bank.id: bank.total_cents // 20}
    assert (card.status, bank.status, failing.status) == ("paid", "paid", "open")
    attempts = {c.invoice_id: (c.charged_on, a.status, c.decline_class) for c, a in session.execute(
        select(AutopayCharge, ChargeAttempt).join(ChargeAttempt, ChargeAttempt.id == AutopayCharge.attempt_id))}
    assert attempts == {card.id: (card.due_date, "succeeded", None), bank.id: (bank.due_date, "succeeded", None),
                        failing.id: (failing.due_date, "failed", "soft")}
    runs = session.scalars(select(DueRun).order_by(DueRun.id)).all()
    assert [r.started_at.date() for r in runs] == [today - timedelta(days=d)
                                                  for d in range(demo_autopay.REPLAYED_DAYS, 0, -1)]
    assert sum(r.charged for r in runs) == 3 and sum(r.settled for r in runs) == 1 and not any(r.problems
                                                                                              for r in runs)
    subjects = [m["Subject"] for m in read_outbox(Path(app.instance_path) / "outbox")]
    assert sum(s.startswith("Upcoming automatic payment") for s in subjects) == 3
    assert any("did not go through" in s for s in subjects)


def test_every_demo_clients_statement_ends_at_what_the_ledger_says_they_owe(session, clock, seeded_demo):
    """A statement replays dated activity; the ledger derives balances from allocations and adjustments. The demo has
    partial payments, credit, voids, refunds, autopay discounts, plans and late fees: both must agree on each client."""
    today = clock.today()
    for client in session.scalars(select(Client).order_by(Client.id)):
        owes = ledger.client_summary(session, client.id, today)
        statement = statements.client_statement(session, client.id, date(2000, 1, 1), today + timedelta(days=3650))
        assert statement.closing_cents == owes.balance_due_cents - owes.credit_cents, client.legal_name


def test_seed_refuses_a_database_that_is_not_the_demos(app, session, rt, make):
    make.client(name="A Real Client LLC")
    with pytest.raises(demo.DomainError, match="holds data that is not the demo's"):
        demo.seed_demo(session, rt, open_session=cli.worker_sessions(app))
    assert count(session, Client) == 1 and count(session, Invoice) == 0


@pytest.fixture
def own_database(app_config, tmp_path) -> str:
    """The command builds (and --reset drops) the schema itself, so it gets a database of its own."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    app_config["DATABASE_URL"] = url
    return url


def test_demo_command_seeds_prints_sign_in_and_keeps_data_on_rerun(own_database, app, session, make):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "--no-serve", "--port", "5055"])
    assert result.exit_code == 0, result.output
    assert "Demo data seeded: 26 clients" in result.output
    assert "http://127.0.0.1:5055/admin/login  admin@demo.test / demo-admin-password" in result.output
    contact_email = session.scalar(select(Contact.email).join(Client)
                                   .where(Client.legal_name == "Summit Physical Therapy").order_by(Contact.id))
    outbox = Path(app.instance_path) / "outbox"
    assert f"http://127.0.0.1:5055/login  enter {contact_email}; the sign-in link is emailed to {outbox}" \
        in result.output
    assert "Serving" not in result.output
    invoices = count(session, Invoice)
    assert invoices > 150

    make.client(name="Added While Playing LLC")  # a change that --reset undoes and a re-run keeps
    kept = runner.invoke(args=["demo", "--no-serve"])
    assert kept.exit_code == 0 and "Demo data kept" in kept.output
    assert (count(session, Invoice), count(session, Client)) == (invoices, 27)

    session.close()
    reset = runner.invoke(args=["demo", "--no-serve", "--reset"])
    assert reset.exit_code == 0, reset.output
    assert "Demo data seeded" in reset.output
    assert (count(session, Invoice), count(session, Client)) == (invoices, 26)


def test_demo_command_will_not_reset_real_data(own_database, app, session, make):
    upgrade(app)
    make.client(name="A Real Client LLC")
    result = app.test_cli_runner().invoke(args=["demo", "--no-serve", "--reset"])
    assert result.exit_code == 1
    assert "holds data that is not the demo's; portal demo will not touch it" in result.output
    assert session.scalar(select(Client.legal_name)) == "A Real Client LLC"


def test_demo_command_refuses_outside_demo_mode(own_database, app_config, app, session):
    app.config["ENV"] = "production"
    result = app.test_cli_runner().invoke(args=["demo", "--no-serve"])
    assert result.exit_code == 1
    assert "portal demo runs in demo mode only, and PORTAL_ENV is 'production'" in result.output
    engine = create_engine(own_database)
    assert not engine.dialect.has_table(engine.connect(), "clients")  # nothing was created
    engine.dispose()


def test_portal_demo_works_without_setting_portal_env_and_its_links_follow_the_port(monkeypatch, tmp_path):
    """`portal demo` on its own: main() switches to demo mode before the app reads its config, and the links in the
    emails the seeding sends point at the port it serves on (the default BASE_URL follows --port)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    environ["PORTAL_INSTANCE_PATH"] = str(tmp_path / "instance")
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setattr(sys, "argv", ["portal", "demo", "--no-serve", "--port", "5055"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
    assert environ["PORTAL_ENV"] == "demo"
    assert (tmp_path / "instance" / "portal.db").exists()
    assert (tmp_path / "instance" / "demo-secret-key").exists()  # demo mode: no PORTAL_SECRET_KEY needed
    emails = [m.get_body(preferencelist=("plain",)).get_content()
              for m in read_outbox(tmp_path / "instance" / "outbox")]
    links = [link for text in emails for link in re.findall(r"http://127\.0\.0\.1:\d+/", text)]
    assert links and set(links) == {"http://127.0.0.1:5055/"}
