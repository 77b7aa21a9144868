"""An admin emails an invoice from the admin page in a real browser; the email is read from a real SMTP server;
its link opens the invoice in another browser (no account, no session) and the PDF downloads."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import select

from portal.models import InvoiceDelivery, InvoiceLink
from portal.services.settings import update_settings
from tests.smtp_fixtures import mail_through_smtp  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def test_admin_sends_an_invoice_and_the_client_opens_it_from_the_email(page, live_server, make, session,
                                                                        smtp_server, tmp_path: Path):
    update_settings(session, name="Acme IT", email="billing@acme-it.test",
                    payment_instructions="Mail a check to Acme IT, 1 Main St, Springfield.")
    make.staff(email="alex@acme-it.test", password=PASSWORD)
    client = make.client("Northwind Traders")
    make.contact(client, "pat@northwind.test", name="Pat Payable")
    invoice = make.invoice(client, 48_250, due_date=date(2026, 4, 15), number="INV-004711")
    other = make.invoice(client, 12_000, number="INV-004712")

    # The admin signs in through the real staff sign-in page and sends the invoice from its admin page.
    page.goto(f"/admin/invoices/{invoice.id}")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.get_by_label("Email").fill("alex@acme-it.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("Invoice INV-004711"))).to_be_visible()
    delivery_card = page.locator("#delivery")
    expect(delivery_card.get_by_label(re.compile("Pat Payable"))).to_be_checked()
    delivery_card.get_by_role("button", name="Send invoice").click()
    expect(page.get_by_text("Invoice INV-004711 emailed to pat@northwind.test.")).to_be_visible()
    expect(page.locator("#delivery .deliveries").get_by_text("Accepted")).to_be_visible()

    # The email, as the SMTP server received it.
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["pat@northwind.test"]
    assert received.message["Subject"] == "Invoice INV-004711 from Acme IT: $482.50 due Apr 15, 2026"
    text = received.message.get_body(("plain",)).get_content()
    [link] = re.findall(re.escape(live_server.url) + r"/i/\S+", text)

    # The client opens it in a browser of their own: no account, no session.
    visitor = page.context.browser.new_context(base_url=live_server.url, locale="en-US", timezone_id="UTC",
                                               accept_downloads=True)
    try:
        tab = visitor.new_page()
        response = tab.goto(link)
        assert response is not None and response.status == 200
        expect(tab.get_by_role("heading", name=re.compile("Invoice INV-004711"))).to_be_visible()
        expect(tab.locator("[data-figure=balance]")).to_have_text("$482.50")
        expect(tab.get_by_text("Mail a check to Acme IT")).to_be_visible()
        assert other.number not in tab.content()
        expect(tab.get_by_role("button", name="Sign out")).to_have_count(0)

        with tab.expect_download() as download_info:
            tab.get_by_role("link", name="Download PDF").click()
        download = download_info.value
        assert download.suggested_filename == "INV-004711.pdf"
        saved = tmp_path / "invoice.pdf"
        download.save_as(saved)
        pdf = PdfReader(io.BytesIO(saved.read_bytes()))
        assert "INV-004711" in pdf.pages[0].extract_text()
    finally:
        visitor.close()

    # Back in the admin: the open is tracked.
    session.expire_all()
    link_row = session.scalars(select(InvoiceLink)).one()
    assert link_row.open_count == 1 and link_row.first_opened_at is not None
    assert session.scalars(select(InvoiceDelivery.status)).all() == ["accepted"]
    page.reload()
    expect(page.get_by_text("Opened by Pat Payable <pat@northwind.test> for the first time.")).to_be_visible()
