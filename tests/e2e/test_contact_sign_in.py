"""A client contact signs in with an emailed link in a real browser and sees its invoices."""

from __future__ import annotations

import re
import time
from datetime import date
from email import policy
from email.parser import BytesParser

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.models import SignInLink

pytestmark = pytest.mark.e2e


def _emailed_link(outbox, base_url: str) -> str:
    deadline = time.monotonic() + 10  # the server sends the email just after its response has gone out
    while not list(outbox.glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [eml] = sorted(outbox.glob("*.eml"))
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert message["To"] == "pat@acme-dental.test"
    text = message.get_body(("plain",)).get_content()
    [link] = re.findall(re.escape(base_url) + r"/login/link/\S+", text)
    return link


def test_contact_signs_in_with_an_emailed_link(page, live_server, make, session, outbox, browser_errors):
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test", name="Pat Doe")
    make.invoice(client, 42_000, issue_date=date(2026, 3, 2), due_date=date(2026, 4, 1), number="ACME-3001")
    make.invoice(client, 9_950, issue_date=date(2026, 1, 5), due_date=date(2026, 2, 4), number="ACME-2990")
    other = make.client("Bayside Law PC")
    make.invoice(other, 77_700, number="BAYS-0001")

    page.goto("/login")
    page.locator("#email").fill("Pat@Acme-Dental.test")  # the password form (folded away) has one too
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.get_by_text("If that address has portal access, we've emailed a link")).to_be_visible()

    link = _emailed_link(outbox, live_server.url)
    page.goto(link)
    expect(page.get_by_role("heading", name=re.compile("Sign in to"))).to_be_visible()
    assert session.scalar(select(SignInLink.used_at)) is None  # opening the page did not use the link

    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_role("heading", name="Acme Dental LLC")).to_be_visible()
    expect(page.get_by_text("$519.50").first).to_be_visible()  # balance due: $420.00 + $99.50
    expect(page.get_by_role("link", name="ACME-3001")).to_be_visible()

    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.get_by_role("link", name="ACME-2990")).to_be_visible()
    expect(page.get_by_text("overdue").first).to_be_visible()
    assert "BAYS-0001" not in page.content()

    page.get_by_role("link", name="ACME-3001").click()
    expect(page.get_by_role("heading", name=re.compile("Invoice ACME-3001"))).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    assert download.value.suggested_filename == "ACME-3001.pdf"
    with open(download.value.path(), "rb") as pdf:  # waits for the whole file, so no request is left running
        assert pdf.read(5) == b"%PDF-"

    # The same link cannot be used twice, even in this browser after signing out.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    response = page.goto(link)
    assert response is not None and response.status == 400
    expect(page.get_by_text("This sign-in link is invalid or has expired — request a new one.")).to_be_visible()
    assert [e for e in browser_errors if "status of 400" not in e] == []  # Chromium logs the 400 page load
    browser_errors.clear()
    page.get_by_role("link", name="Request a new link").click()
    expect(page).to_have_url(re.compile(r"/login$"))
