"""Every staff page: staff get it, visitors are sent to the staff sign-in, client contacts get 403."""

from __future__ import annotations

import importlib.util
from contextlib import nullcontext
from pathlib import Path

import pytest
from flask import url_for

from portal.gateways.payments import sandbox_token
from portal.services import due, mail, payments
from tests.conftest import sign_in

PUBLIC = {"admin.logo"}  # the logo shows on sign-in pages and PDFs


@pytest.fixture
def records(app, make, rt, session):
    client = make.client("Acme Dental")
    contact = make.contact(client, email="office@acme.test")
    invoice = make.invoice(client, 50_000)
    draft = make.invoice(client, 20_000, issue=False)
    payment = make.payment(client, 10_000, reference="1001")
    delivery = rt.mailer.deliver(rt.mailer.build(sender=mail.sender(session), to=["office@acme.test"],
                                                 subject="Invoice", text="Hello"))
    assert delivery.ok
    name = next((Path(app.instance_path) / "outbox").glob("*.eml")).name
    online = payments.pay(session, rt, payments.create_request(session, client=client, contact=contact,
                                                               amounts={invoice.id: 5_000}),
                          token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    run = due.run_due(session, rt, open_session=lambda: nullcontext(session), steps=())  # a run-due run's log
    return {"client_id": client.id, "contact_id": contact.id, "invoice_id": invoice.id, "payment_id": payment.id,
            "attempt_id": online.id, "name": name, "run_id": run.run_id, "_draft": draft, "_contact": contact}


def admin_urls(app, records) -> list[tuple[str, str, str]]:
    """(method, url, endpoint) for every route of the admin blueprint, with ids of real records."""
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("admin.") or rule.endpoint in PUBLIC:
                continue
            values = {arg: records[arg] for arg in rule.arguments}
            if rule.endpoint == "admin.invoice_edit":  # only a draft can be edited
                values["invoice_id"] = records["_draft"].id
            url = url_for(rule.endpoint, **values)
            urls += [(method, url, rule.endpoint) for method in sorted(rule.methods & {"GET", "POST"})]
    assert len(urls) > 25  # the whole area, not an empty loop
    return urls


def test_visitors_are_sent_to_the_staff_sign_in(app, http, records):
    for method, url, _ in admin_urls(app, records):
        response = http.open(url, method=method)
        assert response.status_code == 302, (method, url)
        assert response.headers["Location"].startswith("/admin/login"), (method, url)


def test_client_contacts_are_forbidden_everywhere(app, http, records, session):
    sign_in(http, records["_contact"])
    for method, url, _ in admin_urls(app, records):
        response = http.open(url, method=method, data={"reason": "x", "amount": "1"})
        assert response.status_code == 403, (method, url)
    session.expire_all()
    assert records["_draft"].status == "draft"  # nothing happened behind the 403


def test_every_staff_page_renders(app, admin, records):
    for method, url, endpoint in admin_urls(app, records):
        if method != "GET" or (endpoint == "admin.invoice_pdf"
                               and importlib.util.find_spec("portal.services.documents") is None):
            continue
        response = admin.get(url)
        assert response.status_code == 200, (url, response.status_code)


def test_staff_navigation_links_every_section(admin):
    text = admin.get("/admin/").get_data(as_text=True)
    for href, label in [("/admin/", "Dashboard"), ("/admin/clients", "Clients"), ("/admin/invoices", "Invoices"),
                        ("/admin/payments", "Payments"), ("/admin/outbox", "Outbox"), ("/admin/settings", "Settings")]:
        assert f'href="{href}"' in text and f">{label}</a>" in text


def test_unknown_records_are_404(admin):
    for url in ("/admin/clients/999", "/admin/invoices/999", "/admin/payments/999", "/admin/clients/999/edit",
                "/admin/clients/999/statement", "/admin/clients/999/invoices/new", "/admin/clients/999/payments/new"):
        assert admin.get(url).status_code == 404, url
