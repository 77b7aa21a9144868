"""The client's collections pages in a real browser: its reminders and promises, and "promise to pay" (signed in,
and from a reminder email's link), refused then accepted, pass axe-core's WCAG 2.1 A/AA rules at desktop and phone
widths with no script or CSP errors."""

from __future__ import annotations

import re
from datetime import date

from playwright.sync_api import expect
from sqlalchemy import select

from portal.clock import today
from portal.models import PaymentPromise
from portal.services import sign_in
from portal.services.collections import reminders
from tests.payments_fixtures import read_outbox

from .a11y import assert_accessible

PASSWORD = "correct horse battery staple"


def test_promise_pages_are_accessible(page, live_server, session, rt, make, outbox, clock, browser_errors):
    client = make.client("Harbor Dental Group, a rather long legal name LLC")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield")
    sign_in.set_password(session, contact, PASSWORD)
    invoice = make.invoice(client, 245_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 15))
    assert reminders.send_due(session, rt, today()).sent == 1  # the day after due: the email with both links
    [message] = read_outbox(outbox)
    promise_url = re.search(r"(http://\S+/i/\S+/promise)", message.get_body(("plain",)).get_content()).group(1)

    page.goto(promise_url)
    assert_accessible(page, "promise from the email link")
    page.fill("input[name=amount]", "9999")
    page.fill("input[name=promised_on]", "2026-03-20")
    page.get_by_role("button", name="Promise to pay").click()
    expect(page.locator(".form-error")).to_contain_text("larger than the balance")
    assert_accessible(page, "promise refused")
    page.fill("input[name=amount]", "2450.00")
    page.get_by_role("button", name="Promise to pay").click()
    expect(page.locator("#promise-recorded")).to_be_visible()
    assert_accessible(page, "promise recorded")
    assert session.scalar(select(PaymentPromise.amount_cents)) == 245_000

    page.goto("/login")
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", contact.email)
    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.goto("/reminders")
    expect(page.locator("#promises")).to_contain_text("$2,450.00")
    assert_accessible(page, "reminders and promises")
    page.goto(f"/reminders/promise?invoice={invoice.id}")
    assert_accessible(page, "promise form (signed in)")
    assert browser_errors == []
