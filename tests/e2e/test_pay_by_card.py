"""In headless Chromium on the SANDBOX gateway: a client opens the emailed invoice link, pays by card, sees the
receipt, and the MSP's admin sees the invoice paid."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import expect

from portal.services import delivery
from tests.payments_fixtures import read_outbox

pytestmark = pytest.mark.e2e


def emailed_link(outbox) -> str:
    [message] = read_outbox(outbox)  # the invoice email
    text = message.get_body(("plain",)).get_content()
    return re.search(r"(http://127\.0\.0\.1:\d+/i/\S+)", text).group(1)


def test_pay_an_invoice_by_card_from_its_emailed_link(page, live_server, session, make, outbox, browser_errors,
                                                    rt):
    staff = make.staff(email="billing@msp.test", password="correct horse battery")
    client = make.client("Acme Dental LLC", region="NY")
    contact = make.contact(client, email="pat@acme-dental.test", name="Pat Doe")
    invoice = make.invoice(client, 48_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))
    delivery.send_invoice(session, rt, invoice, contacts=[contact])

    page.goto(emailed_link(outbox))
    expect(page.locator("h1")).to_contain_text(f"Invoice {invoice.number}")
    page.click("#pay-online")

    expect(page.locator("h1")).to_have_text("Pay online")
    expect(page.locator(f"#amount-{invoice.id}")).to_have_value("480.00")
    page.click("text=Continue to payment")

    expect(page.locator("h1")).to_have_text("Pay $480.00")
    expect(page.locator("#sandbox-pay-form")).to_contain_text("SANDBOX")
    expect(page.locator("#routing_number")).to_be_hidden()  # sandbox-pay.js shows the chosen method's fields only
    page.fill("#card_number", "4242 4242 4242 4242")
    page.fill("#card_expiry", "12/30")
    page.fill("#card_cvc", "123")
    page.click("#pay-button")

    expect(page.locator("h1")).to_contain_text("Payment received")
    expect(page.locator("#payment-state")).to_have_text("Paid")
    expect(page.locator("#receipt")).to_contain_text("Visa credit card ending 4242")
    expect(page.locator("#receipt")).to_contain_text("$480.00")
    subjects = sorted(m["Subject"] for m in read_outbox(outbox))
    assert subjects == [f"Invoice {invoice.number} from Your MSP: $480.00 due Mar 31, 2026",
                        "Payment received: $480.00 to Your MSP"]

    page.goto("/admin/login")
    page.fill("input[name=email]", staff.email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("input[type=submit]")
    page.goto(f"/admin/invoices/{invoice.id}")
    expect(page.locator("h1")).to_contain_text("Paid")
    page.goto("/admin/online-payments")
    expect(page.locator("#online-payments")).to_contain_text("Succeeded")
    expect(page.locator("#online-payments")).to_contain_text("sbx_pi_")
    assert browser_errors == []
