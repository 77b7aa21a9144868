"""The receivables dashboard and the aging page in a real browser: axe-core's WCAG 2.1 A/AA rules at desktop and
phone widths (the trend chart is an SVG image with a title, a description and a table of its figures), no money
cut off, and no script or CSP errors."""

from __future__ import annotations

from datetime import date

from playwright.sync_api import expect

from .a11y import assert_accessible


def test_dashboard_and_aging_page_are_accessible(page, live_server, make, browser_errors):
    staff = make.staff()
    for n, (issued, due, cents) in enumerate([(date(2025, 11, 1), date(2025, 12, 1), 100_000),
                                              (date(2026, 2, 1), date(2026, 3, 3), 300_000),
                                              (date(2026, 3, 1), date(2026, 3, 31), 600_000)]):
        make.invoice(make.client(f"Client {n} of a rather long legal name, LLC"), cents, issue_date=issued,
                     due_date=due)

    page.goto("/admin/login")
    page.fill("input[name=email]", staff.email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("input[type=submit]")
    page.goto("/admin/")
    expect(page.locator("#lending h2")).to_contain_text("You are lending your clients $4,000.00")
    expect(page.locator("svg[role=img] title")).to_have_text("Open receivables at each month end")
    assert_accessible(page, "receivables dashboard")
    page.goto("/admin/receivables?min=lots")
    expect(page.locator("#min-error")).to_be_visible()
    assert_accessible(page, "aging by client, a refused filter")
    page.goto("/admin/receivables/settings")
    assert_accessible(page, "collection settings")
    assert browser_errors == []
