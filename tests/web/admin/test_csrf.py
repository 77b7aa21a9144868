"""With CSRF protection on (as in production), staff forms carry a token and a POST without one is refused."""

from __future__ import annotations

import pytest

from portal.models import Client

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
