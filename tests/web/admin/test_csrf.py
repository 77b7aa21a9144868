"""With CSRF protection on (as in production), staff forms carry a token and a POST without one is refused."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.clock import today
from portal.models import Client, StandingOverride
from portal.services import ledger, standing

from .conftest import count, page


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": True}


def test_forms_need_the_token(admin, make, session):
    client = make.client()
    invoice = make.invoice(client, 1_000)
    for url in ("/admin/clients/new", f"/admin/clients/{client.id}/payments/new", "/admin/settings",
                f"/admin/invoices/{invoice.id}", f"/admin/clients/{client.id}/invoices/new"):
        assert 'name="csrf_token"' in page(admin.get(url)), url

    refused = admin.post("/admin/clients/new", data={"legal_name": "Sneaky LLC", "country": "US",
                                                     "status": "active"})
    assert refused.status_code == 400 and "Your form expired" in page(refused)
    assert count(session, Client) == 1

    for url in (f"/admin/invoices/{invoice.id}/void", f"/admin/clients/{client.id}/apply-credit",
                "/admin/settings/logo/remove", f"/admin/invoices/{invoice.id}/autopay-approval",
                f"/admin/invoices/{invoice.id}/autopay-approval/withdraw"):
        assert admin.post(url, data={"reason": "x"}).status_code == 400, url
    session.expire_all()
    assert invoice.status == "open"


def test_the_client_pages_buttons_carry_a_token_that_is_accepted(admin, make, session):
    """The overview's "Apply to open invoices" and the standing panel's "End now" write the token themselves (no form
    object is built for them on every view): a POST with the token the page gave succeeds, one without is refused."""
    client = make.client()
    make.payment(client, 5_000)
    make.invoice(client, 10_000)
    row = standing.set_override(session, client, standing="good", reason="Wire on its way", staff=None,
                                ends_on=today() + timedelta(days=5), today=today())
    text = page(admin.get(f"/admin/clients/{client.id}"))
    credit = re.search(r'action="/admin/clients/\d+/apply-credit".*?name="csrf_token" value="([^"]+)"', text, re.S)
    end = re.search(r'action="/admin/clients/\d+/standing/override/\d+/end".*?name="csrf_token" value="([^"]+)"',
                    text, re.S)
    assert credit and end

    assert admin.post(f"/admin/clients/{client.id}/standing/override/{row.id}/end").status_code == 400
    assert admin.post(f"/admin/clients/{client.id}/apply-credit").status_code == 400
    session.expire_all()
    assert session.get(StandingOverride, row.id).ended_at is None and ledger.credit_cents(session, client.id) == 5_000

    assert admin.post(f"/admin/clients/{client.id}/standing/override/{row.id}/end",
                      data={"csrf_token": end.group(1)}).status_code == 302
    assert admin.post(f"/admin/clients/{client.id}/apply-credit",
                      data={"csrf_token": credit.group(1)}).status_code == 302
    session.expire_all()
    assert session.get(StandingOverride, row.id).ended_at is not None and ledger.credit_cents(session, client.id) == 0
