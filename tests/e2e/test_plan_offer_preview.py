"""The offer form's schedule follows the fields as the admin types, without pressing Preview (static/js/
plan_preview.js posting the form to the preview endpoint), and a refused choice shows the reason instead."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def test_the_schedule_updates_as_the_admin_changes_the_offer(page, live_server, make):
    make.staff(email="alex@acme-it.test", password=PASSWORD)
    client = make.client("Northwind Traders")
    make.contact(client, "pat@northwind.test", name="Pat Payable")
    make.invoice(client, 60_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))

    page.goto(f"/admin/clients/{client.id}/plan-offer")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.get_by_label("Email").fill("alex@acme-it.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # The live preview listens only once plan_preview.js has run: a check made before the page's load event (the
    # script is the last thing the page loads) changes nothing, which is what made this test fail now and then.
    expect(page).to_have_url(re.compile(r"/plan-offer$"))
    page.wait_for_load_state("load")

    page.locator("input[name=invoice_ids]").first.check()
    page.get_by_role("spinbutton", name="Number of payments").fill("6")
    rows = page.locator("#schedule-table tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.first).to_contain_text("$100.00")

    page.get_by_label("APR (%)").fill("12")
    expect(page.locator("[data-field=apr]")).to_have_text("12%")
    expect(rows.first).to_contain_text("$103.53")  # 600.00 at 1% a month over 6 months

    page.get_by_label("APR (%)").fill("40")
    expect(page.locator("[data-preview-error]")).to_contain_text("The APR may not exceed 18%")


def test_the_client_plan_pages_are_accessible_and_the_pick_goes_to_signing(page, live_server, session, make):
    from portal.services import sign_in

    from .a11y import assert_accessible

    client = make.client("Harbor Dental Group LLC")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield")
    sign_in.set_password(session, contact, PASSWORD)
    make.invoice(client, 60_000, issue_date=date(2026, 1, 2), due_date=date(2026, 2, 1))
    page.goto("/login")
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", "dana@harbor.test")
    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()

    page.goto("/")
    expect(page.locator("#plan-banner")).to_contain_text("Set up a payment plan")
    page.locator("#plan-banner-link").click()
    expect(page.locator("#schedule-table tbody tr")).to_have_count(3)
    page.wait_for_load_state("load")  # plan_preview.js listening (see above)
    assert_accessible(page, "plan options")
    page.get_by_role("spinbutton", name="Number of payments").fill("5")
    expect(page.locator("#schedule-table tbody tr")).to_have_count(5)
    page.get_by_role("button", name="Accept and sign").click()
    expect(page).to_have_url(re.compile(r"/plan-offers/[^/]+/sign$"))
    expect(page.locator("#agreement")).to_contain_text("Installment plan agreement")
    assert_accessible(page, "plan signing")
    page.get_by_role("link", name="Back").click()
    expect(page.locator("#offer-history")).to_contain_text("Client picked a plan within the policy")
    assert_accessible(page, "plan offer")
