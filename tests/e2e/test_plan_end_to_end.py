"""In headless Chromium on the SANDBOX gateway, issue 11 end to end: an overdue client's contact signs in, saves a
card for autopay (so the installments can be charged without them), sees the plan banner, picks a 4-payment plan,
signs the plan agreement, pays the down payment at the sandbox checkout and sees the schedule on the plan page;
then `portal run-due` on the first due date charges the first installment once, and the plan page shows it paid."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import date

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal import db
from portal.domain.plans import PlanStatus
from portal.models import (
    Agreement,
    ChargeAttempt,
    Installment,
    InstallmentCharge,
    Invoice,
    PaymentPlan,
    PaymentRequest,
)
from portal.services import ledger, sign_in
from portal.services.due import run_due
from portal.services.settings import update_settings

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def sign_like_a_person(page, legal_name: str) -> None:
    page.get_by_label(re.compile("agree to receive records and sign documents electronically")).check()
    page.get_by_label("Your full name", exact=True).fill("Pat Doe")
    page.get_by_label("Your title", exact=True).fill("Office Manager")
    page.get_by_label(re.compile(f"authorized to sign on behalf of {re.escape(legal_name)}")).check()
    page.get_by_label("Type my name").check()
    page.locator("input[name=typed_signature]").fill("Pat Doe")


def pay_by_sandbox_card(page) -> None:
    expect(page.locator("#sandbox-pay-form")).to_contain_text("SANDBOX")
    page.fill("#card_number", "4242 4242 4242 4242")
    page.fill("#card_expiry", "12/30")
    page.fill("#card_cvc", "123")
    page.click("#pay-button")


def test_overdue_client_picks_signs_and_pays_a_plan_and_run_due_charges_the_first_installment(
        page, live_server, app, session, make, rt, clock, browser_errors):
    update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme.test")
    client = make.client("Lakeside Realty LLC")
    contact = make.contact(client, email="pat@lakeside.test", name="Pat Doe", title="Office Manager")
    sign_in.set_password(session, contact, PASSWORD)
    older = make.invoice(client, 60_000, issue_date=date(2026, 1, 2), due_date=date(2026, 2, 1))
    newer = make.invoice(client, 40_000, issue_date=date(2026, 2, 2), due_date=date(2026, 3, 2))

    page.goto("/login")
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", "pat@lakeside.test")
    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()

    # 1. a card saved for autopay in the sandbox (the existing methods page), with its signed authorization
    page.goto("/autopay")
    page.click("#add-method")
    pay_by_sandbox_card(page)
    page.wait_for_url(re.compile(r"/authorize$"))
    expect(page.locator("#authorization")).to_contain_text("Visa ending 4242")
    sign_like_a_person(page, "Lakeside Realty LLC")
    page.click("#sign-button")
    page.wait_for_url(re.compile(r"/autopay$"))

    # 2. the banner, the options (the schedule follows the number of payments), a 4-payment pick
    page.goto("/")
    expect(page.locator("#plan-banner")).to_contain_text("Set up a payment plan")
    page.locator("#plan-banner-link").click()
    expect(page.locator("#schedule-table tbody tr")).to_have_count(3)
    page.wait_for_load_state("load")  # the live preview (plan_preview.js) listens from here
    page.get_by_role("spinbutton", name="Number of payments").fill("4")
    page.get_by_label("Down payment").fill("100.00")
    page.get_by_label("How often").select_option("monthly")
    page.get_by_label("First payment due").fill("2026-04-01")
    rows = page.locator("#schedule-table tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("$225.00")  # (1,000.00 - 100.00) / 4
    page.get_by_role("button", name="Accept and sign").click()

    # 3. the plan agreement: the schedule and the saved card the installments go on; signed
    expect(page).to_have_url(re.compile(r"/plan-offers/[^/]+/sign$"))
    expect(page.locator("#agreement")).to_contain_text("Installment plan agreement")
    expect(page.locator("#method-note")).to_contain_text("charged to your saved method")
    sign_like_a_person(page, "Lakeside Realty LLC")
    page.click("#sign-button")

    # 4. the down payment at the sandbox checkout
    expect(page.locator("h1")).to_have_text("Pay $100.00")
    pay_by_sandbox_card(page)
    expect(page.locator("h1")).to_contain_text("Payment received")
    expect(page.locator("#payment-state")).to_have_text("Paid")

    session.rollback()  # a fresh read: the server thread committed since
    plan = session.scalar(select(PaymentPlan))
    assert (plan.status, plan.client_id, plan.balance_cents, plan.down_payment_cents) == (
        PlanStatus.CURRENT, client.id, 100_000, 10_000)
    agreement = session.get(Agreement, plan.agreement_id)
    assert (agreement.status, agreement.signer_name) == ("signed", "Pat Doe")
    assert [(i.number, i.due_on, i.amount_cents) for i in plan.installments] == [
        (0, date(2026, 3, 16), 10_000), (1, date(2026, 4, 1), 22_500), (2, date(2026, 5, 1), 22_500),
        (3, date(2026, 6, 1), 22_500), (4, date(2026, 7, 1), 22_500)]
    down = session.get(PaymentRequest, plan.down_payment_request_id)
    assert down.status == "paid" and down.amount_cents == 10_000
    assert ledger.balance_of(session, session.get(Invoice, older.id)) == 50_000  # oldest first

    # 5. the plan page: the schedule with the down payment paid and the first installment next
    page.goto(f"/plans/{plan.id}")
    expect(page.locator("h1")).to_have_text(f"Payment plan {plan.reference}")
    schedule = page.locator("table.plan-schedule")
    expect(schedule.locator("tbody tr")).to_have_count(5)
    expect(schedule.locator("tr[data-row='0']")).to_contain_text("Paid")
    expect(schedule.locator("tr[data-row='1']")).to_contain_text("Upcoming")
    expect(page.locator("[data-next-due]")).to_contain_text("$225.00 on")
    expect(page.locator("[data-paid]")).to_have_text("$100.00")

    # 6. the first due date: run-due charges installment 1 on the saved card, once
    @contextmanager
    def worker():
        with app.app_context():
            yield db.session()

    clock.set(date(2026, 3, 31))
    run_due(session, rt, open_session=worker)  # the day before: nothing to charge
    session.rollback()
    assert session.scalar(select(func.count()).select_from(InstallmentCharge)) == 0
    clock.set(date(2026, 4, 1))
    run_due(session, rt, open_session=worker)
    run_due(session, rt, open_session=worker)  # a second run the same day charges nothing more
    session.rollback()

    charged = session.execute(select(Installment.number, ChargeAttempt.status, ChargeAttempt.charged_cents)
                              .join(InstallmentCharge, InstallmentCharge.installment_id == Installment.id)
                              .join(ChargeAttempt, ChargeAttempt.id == InstallmentCharge.attempt_id)).all()
    assert charged == [(1, "succeeded", 22_500)]  # one charge for the one installment due
    assert ledger.balance_of(session, session.get(Invoice, older.id)) == 27_500
    assert ledger.balance_of(session, session.get(Invoice, newer.id)) == 40_000

    page.reload()
    expect(schedule.locator("tr[data-row='1']")).to_contain_text("Paid")
    expect(schedule.locator("tr[data-row='2']")).to_contain_text("Upcoming")
    expect(page.locator("[data-paid]")).to_have_text("$325.00")
    expect(page.locator("[data-remaining]")).to_have_text("$675.00")
    assert browser_errors == []
