"""The client's overview page."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from portal.services import payments


def _figure(body: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', body)
    assert match, name
    return match.group(1).strip()


def test_anonymous_visitor_is_sent_to_sign_in(http):
    response = http.get("/")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_dashboard_figures(portal, account):
    response = portal.get("/")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Acme Dental LLC" in body
    assert _figure(body, "balance") == "$320.00"
    assert _figure(body, "overdue") == "$70.00"
    assert _figure(body, "next-due") == "Mar 31, 2026"
    assert _figure(body, "credit") == "$30.00"
    assert "ACME-1001" in body and "ACME-1002" in body  # the open invoices
    assert "ACME-1003" not in body  # paid
    assert "ACME-DRAFT" not in body
    assert "routing 011000015" in body  # how to pay, since something is owed


def test_dashboard_after_everything_is_paid(portal, account, session):
    payments.apply_credit(session, account.client)  # $30.00 credit goes to the oldest invoice
    payments.record_payment(session, account.client, amount_cents=29_000, method="check")
    body = portal.get("/").get_data(as_text=True)
    assert _figure(body, "balance") == "$0.00"
    assert _figure(body, "overdue") == "$0.00"
    assert _figure(body, "next-due") == "—"
    assert _figure(body, "credit") == "$0.00"
    assert "You have no open invoices" in body


def test_navigation_links(portal, account):
    body = portal.get("/").get_data(as_text=True)
    for label, path in [("Overview", "/"), ("Invoices", "/invoices"), ("Payments", "/payments"),
                        ("Statement", "/statement"), ("Password", "/password")]:
        assert re.search(rf'<a href="{re.escape(path)}"[^>]*>{label}</a>', body), label
