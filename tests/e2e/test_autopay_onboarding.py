"""In headless Chromium on the SANDBOX gateway: a new client's contact opens the onboarding email, signs the payment
terms, saves a card, signs the autopay authorization; `portal run-due` on the due date charges the invoice with the
5% autopay discount, and the receipt and the invoice show the discount as its own line."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal import db
from portal.domain import terms as T
from portal.models import Agreement, LedgerAdjustment, SavedPaymentMethod
from portal.services import agreements, ledger, terms
from portal.services.autopay import onboarding, rules
from portal.services.due import run_due
from portal.services.settings import update_settings
from tests.payments_fixtures import read_outbox

pytestmark = pytest.mark.e2e


def link_in(message, path: str) -> str:
    return re.search(rf"(http://127\.0\.0\.1:\d+{path}\S+)", message.get_body(("plain",)).get_content()).group(1)


def test_onboarding_email_to_autopay_charge_with_the_discount(page, live_server, app, session, make, outbox, rt,
                                                              clock, browser_errors):
    update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme.test")
    admin = make.staff()
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": "the laws of the State of Ohio"}, staff=admin)
    agreements.publish(session, rt, T.TERMS, staff=admin)
    defaults = rules.autopay_settings(session)
    rules.update_settings(session, rules.SettingsInput(
        timing=defaults.timing, offset_days=0, day_of_month=None, cap_cents=None, scope="all",
        method_types=frozenset({"card", "us_bank_account"}), use_fallback=True, notice_days=0, retry_days="3,5,7",
        required_for_new_clients=True, incentive_kind="discount", discount_percent=Decimal("5"),
        stop_after_failures=3))
    client = make.client("New Clinic LLC")
    make.contact(client, email="office@newclinic.test", name="Pat Doe", title="Office Manager")
    invoice = make.invoice(client, 40_000, issue_date=date(2026, 3, 2), due_date=date(2026, 3, 20))

    onboarding.onboard(session, rt, client, None, staff=admin)
    [welcome] = [m for m in read_outbox(outbox) if "set up your billing" in m["Subject"]]
    page.goto(link_in(welcome, "/welcome/"))
    page.click("#start-onboarding")
    page.wait_for_url(re.compile(r"/onboarding$"))
    expect(page.locator("#onboarding-status")).to_have_text("Invited")

    # 1. the payment terms, in the agreement pages; back to the flow afterwards
    page.click("#sign-terms")
    page.get_by_label(re.compile("agree to receive records and sign documents electronically")).check()
    page.get_by_role("button", name="Agree and continue").click()
    page.wait_for_selector("#acknowledge")
    for clause in T.HIGH_RISK_CLAUSES:
        page.locator(f"input[name={clause.key}]").check()
    page.get_by_role("button", name="Continue to signing").click()
    page.get_by_label("Your full name", exact=True).fill("Pat Doe")
    page.get_by_label("Your title", exact=True).fill("Office Manager")
    page.get_by_label(re.compile("authorized to sign on behalf of New Clinic LLC")).check()
    page.get_by_label("Type my name").check()
    page.locator("input[name=typed_signature]").fill("Pat Doe")
    page.get_by_role("button", name="Sign", exact=True).click()
    page.wait_for_url(re.compile(r"/onboarding$"))
    expect(page.locator("#onboarding-status")).to_have_text("Terms signed")
    expect(page.locator("#skip-autopay")).to_have_count(0)  # the MSP requires autopay for new clients

    # 2. a card, saved in the sandbox, and the autopay authorization
    page.click("#add-method")
    expect(page.locator("#sandbox-pay-form")).to_contain_text("SANDBOX")
    page.fill("#card_number", "4242 4242 4242 4242")
    page.fill("#card_expiry", "12/30")
    page.fill("#card_cvc", "123")
    page.click("#pay-button")
    page.wait_for_url(re.compile(r"/authorize$"))
    expect(page.locator("#authorization")).to_contain_text("Visa ending 4242")
    page.get_by_label(re.compile("agree to receive records and sign documents electronically")).check()
    page.get_by_label("Your full name", exact=True).fill("Pat Doe")
    page.get_by_label("Your title", exact=True).fill("Office Manager")
    page.get_by_label(re.compile("authorized to sign on behalf of New Clinic LLC")).check()
    page.get_by_label("Type my name").check()
    page.locator("input[name=typed_signature]").fill("Pat Doe")
    page.click("#sign-button")
    page.wait_for_url(re.compile(r"/onboarding$"))
    expect(page.locator("#onboarding-done")).to_contain_text("Autopay is on")
    expect(page.locator("#onboarding-status")).to_have_text("Complete")

    session.rollback()  # a fresh read: the server thread committed since
    authorization = session.scalar(select(Agreement).where(Agreement.kind == "card_authorization"))
    assert (authorization.status, authorization.signer_name) == ("signed", "Pat Doe")
    assert "HeadlessChrome" in next(e for e in agreements.events(session, authorization) if e.kind == "signed") \
        .user_agent
    assert session.scalar(select(SavedPaymentMethod)).authorization_id == authorization.id

    # 3. the due date: run-due charges the invoice, less the 5% discount
    clock.set(date(2026, 3, 20))

    @contextmanager
    def worker():
        with app.app_context():
            yield db.session()

    run_due(session, rt, open_session=worker)
    session.rollback()
    [discount] = session.scalars(select(LedgerAdjustment)).all()
    assert (discount.invoice_id, discount.amount_cents) == (invoice.id, 2_000)
    assert ledger.balance_of(session, session.get(type(invoice), invoice.id)) == 0
    receipt = next(m for m in read_outbox(outbox) if m["Subject"].startswith("Payment received"))
    text = receipt.get_body(("plain",)).get_content()
    assert "$380.00" in text and "Autopay discount on invoice" in text and "-$20.00" in text

    page.goto(f"/invoices/{invoice.id}")
    expect(page.locator("#autopay-discount")).to_contain_text("$20.00")
    assert browser_errors == []
