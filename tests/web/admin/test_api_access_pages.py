"""Staff pages of this area: API tokens (shown once, revoked), webhook endpoints (secret shown once and revealable,
disabled), the delivery log with "resend", and the standing panel on the client page with its override form; and
the client's own dashboard banner."""

from __future__ import annotations

import hashlib
import re
import socket
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.webhooks import WebhookDeliveryStatus
from portal.models import ApiToken, StandingOverride, WebhookDelivery, WebhookEndpoint
from portal.services import api_tokens, standing
from portal.services import outbound_webhooks as hooks
from tests.conftest import sign_in, statements_unchanged_as_rows_grow

from .conftest import count, page

SECRET = re.compile(r"<code class=\"secret\" data-secret>([^<]+)</code>")


@pytest.fixture
def overdue_client(make):
    """$123.45 due Feb 1: 43 days past due on March 16 (default terms: on hold after 15)."""
    client = make.client("Harbor Dental LLC", external_id="PSA-100")
    make.invoice(client, 12_345, issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1))
    make.invoice(client, 5_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 10))  # 6 days: not yet
    return client


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens: connection refused at once


# --- tokens -----------------------------------------------------------------------------------------------------------

def test_a_token_is_shown_once_and_only_its_hash_is_kept(admin, session, staff_user, clock):
    response = admin.post("/admin/api/tokens", data={"name": "ConnectWise", "scopes": ["standing:read"]})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    [secret] = SECRET.findall(page(response))
    row = session.scalar(select(ApiToken))
    assert (row.name, row.scope, row.created_by_staff_id) == ("ConnectWise", "standing:read", staff_user.id)
    assert row.token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    listing = page(admin.get("/admin/api/"))
    assert secret not in listing and f"{row.prefix}_…" in listing and "Never" in listing

    assert admin.get("/api/v1/clients/NOPE/standing", headers={"Authorization": f"Bearer {secret}"}).status_code == 404
    assert clock.at.strftime("%b") in page(admin.get("/admin/api/")).split("ConnectWise", 1)[1]  # last used shown

    revoked = admin.post(f"/admin/api/tokens/{row.id}/revoke", follow_redirects=True)
    assert "revoked" in page(revoked)
    session.expire_all()
    assert session.get(ApiToken, row.id).revoked_at is not None
    assert admin.get("/api/v1/clients/NOPE/standing", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "", "scopes": ["standing:read"]}, "Name the token"),
    ({"name": "Desk"}, "Choose at least one scope"),
    ({"name": "Desk", "scopes": ["everything"]}, "is not a valid choice"),
    ({"name": "x" * 101, "scopes": ["standing:read"]}, "100 characters"),
])
def test_a_bad_token_form_is_refused_and_nothing_is_stored(admin, session, data, message):
    response = admin.post("/admin/api/tokens", data=data)
    assert response.status_code == 400 and message in page(response)
    assert not SECRET.findall(page(response))
    assert count(session, ApiToken) == 0


# --- endpoints and deliveries -----------------------------------------------------------------------------------------

def test_an_endpoint_is_added_with_a_secret_shown_then_revealable_and_can_be_disabled(admin, session):
    response = admin.post("/admin/api/endpoints", data={"url": "https://psa.example.test/hooks", "description": "PSA",
                                                        "events": ["standing.changed", "plan.defaulted"]})
    assert response.status_code == 201
    [secret] = SECRET.findall(page(response))
    row = session.scalar(select(WebhookEndpoint))
    assert (row.secret, row.events, row.active) == (secret, "standing.changed plan.defaulted", True)
    assert secret not in page(admin.get("/admin/api/"))
    revealed = admin.post(f"/admin/api/endpoints/{row.id}/secret")
    assert SECRET.findall(page(revealed)) == [secret] and revealed.headers["Cache-Control"] == "no-store"

    admin.post(f"/admin/api/endpoints/{row.id}/disable")
    session.expire_all()
    assert session.get(WebhookEndpoint, row.id).active is False
    admin.post(f"/admin/api/endpoints/{row.id}/enable")
    session.expire_all()
    assert session.get(WebhookEndpoint, row.id).active is True
    assert admin.post("/admin/api/endpoints/999/disable").status_code == 404


@pytest.mark.parametrize(("data", "message"), [
    ({"url": "", "events": ["standing.changed"]}, "Enter the URL."),
    ({"url": "javascript:alert(1)", "events": ["standing.changed"]}, "http:// or https://"),
    ({"url": "https://psa.example.test/", "events": []}, "at least one event"),
])
def test_a_bad_endpoint_form_is_refused_and_nothing_is_stored(admin, session, data, message):
    response = admin.post("/admin/api/endpoints", data=data)
    assert response.status_code == 400 and message in page(response)
    assert count(session, WebhookEndpoint) == 0


def test_the_delivery_log_lists_tries_and_resend_tries_again(admin, session, make):
    endpoint = hooks.add_endpoint(session, url=closed_port_url(), events=["payment.received"])
    hooks.emit(session, "payment.received", {"payment": {"id": 7}}, client=make.client(), source_key="test:7")
    session.commit()
    hooks.deliver_due(session)
    [delivery] = session.scalars(select(WebhookDelivery)).all()
    text = page(admin.get("/admin/api/deliveries"))
    assert "payment.received" in text and endpoint.url in text and "ConnectionRefusedError" in text
    assert page(admin.get(f"/admin/api/deliveries?hook={endpoint.id + 1}")).count("data-delivery=") == 0

    resent = admin.post(f"/admin/api/deliveries/{delivery.id}/resend", follow_redirects=True)
    assert "did not acknowledge" in page(resent)
    session.expire_all()
    delivery = session.get(WebhookDelivery, delivery.id)
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.PENDING, 1)
    assert admin.post("/admin/api/deliveries/999/resend").status_code == 404


def test_the_delivery_log_reads_its_events_and_endpoints_with_the_rows(app, admin, session, make):
    """50 deliveries a page, each naming its event and endpoint: read with the page, not one by one."""
    endpoints = [hooks.add_endpoint(session, url=closed_port_url(), events=["payment.received"]) for _ in range(2)]

    def grow(n: int) -> None:
        for _ in range(n):
            client = make.client()
            hooks.emit(session, "payment.received", {"payment": {"id": client.id}}, client=client,
                       source_key=f"test:{client.id}")
        session.commit()

    grow(1)
    [shown] = statements_unchanged_as_rows_grow(app, [lambda: page(admin.get("/admin/api/deliveries"))],
                                                lambda: grow(4))
    assert shown.count("data-delivery=") == 10  # five events, each to both endpoints
    for delivery in session.scalars(select(WebhookDelivery)):
        assert delivery.event.event_id in shown
    assert all(e.url in shown for e in endpoints)


def test_resend_to_a_disabled_endpoint_is_refused_and_nothing_is_tried(admin, session, make):
    endpoint = hooks.add_endpoint(session, url=closed_port_url(), events=["payment.received"])
    hooks.emit(session, "payment.received", {"payment": {"id": 8}}, client=make.client(), source_key="test:8")
    session.commit()
    hooks.deliver_due(session)
    hooks.set_active(session, endpoint.id, False)
    [delivery] = session.scalars(select(WebhookDelivery)).all()
    before = (delivery.status, delivery.attempts, delivery.last_attempt_at)

    refused = admin.post(f"/admin/api/deliveries/{delivery.id}/resend", follow_redirects=True)

    assert "is disabled: enable it first" in page(refused)
    session.expire_all()
    delivery = session.get(WebhookDelivery, delivery.id)
    assert (delivery.status, delivery.attempts, delivery.last_attempt_at) == before


def test_resend_while_run_due_is_sending_it_says_so_and_tries_nothing(admin, session, make, app, clock):
    hooks.add_endpoint(session, url=closed_port_url(), events=["payment.received"])
    hooks.emit(session, "payment.received", {"payment": {"id": 9}}, client=make.client(), source_key="test:9")
    session.commit()
    hooks.deliver_due(session)
    clock.advance(hours=2)  # its next try is due, and another node's run-due takes it
    with Session(app.extensions["db_engine"]) as node:
        [delivery_id] = hooks._claim(node, 10)
    delivery = session.get(WebhookDelivery, delivery_id)
    before = (delivery.status, delivery.attempts, delivery.last_attempt_at)

    refused = admin.post(f"/admin/api/deliveries/{delivery_id}/resend", follow_redirects=True)

    assert "being sent right now" in page(refused)
    session.expire_all()
    delivery = session.get(WebhookDelivery, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_attempt_at) == before


def test_contacts_and_strangers_do_not_reach_the_pages(http, make):
    assert http.get("/admin/api/").status_code == 302
    contact = make.contact(make.client())
    sign_in(http, contact)
    assert http.get("/admin/api/").status_code == 403
    assert http.post("/admin/api/tokens", data={"name": "x", "scopes": ["standing:read"]}).status_code == 403


# --- the standing on the client pages ---------------------------------------------------------------------------------

def test_the_client_page_shows_the_standing_and_what_lifts_it(admin, overdue_client):
    text = page(admin.get(f"/admin/clients/{overdue_client.id}"))
    panel = text.split('id="standing"', 1)[1].split("</section>", 1)[0]
    assert 'data-standing="on_hold"' in text and "On hold" in panel
    assert 'data-to-lift="12345"' in panel and "Pay $123.45" in panel
    assert "default terms: nothing signed" in panel and "hold after 15 days" in panel


def test_the_client_page_links_to_the_override_form_which_shows_the_standing_it_overrides(admin, overdue_client):
    panel = page(admin.get(f"/admin/clients/{overdue_client.id}")).split('id="standing"', 1)[1].split("</section>")[0]
    assert f'href="/admin/clients/{overdue_client.id}/standing/override"' in panel
    assert 'name="reason"' not in panel  # the form is on its own page

    form = page(admin.get(f"/admin/clients/{overdue_client.id}/standing/override"))
    assert 'data-standing="on_hold"' in form and "On hold" in form
    assert 'name="csrf_token"' in form and 'name="reason"' in form and 'name="ends_on"' in form
    assert admin.get("/admin/clients/99999/standing/override").status_code == 404


def test_an_override_is_set_with_a_reason_and_end_date_and_can_be_ended(admin, session, staff_user, overdue_client):
    ends = date(2026, 3, 20)
    response = admin.post(f"/admin/clients/{overdue_client.id}/standing/override",
                          data={"standing": "good", "reason": "CFO promised a wire", "ends_on": ends.isoformat()},
                          follow_redirects=True)
    text = page(response)
    assert "Standing set to good standing until March 20, 2026." in text
    assert 'data-standing="good"' in text and "CFO promised a wire" in text
    [row] = session.scalars(select(StandingOverride)).all()
    assert (row.staff_id, row.ends_on) == (staff_user.id, ends)
    listed = _history_entry(text, row.id)
    assert "Good until Mar 20, 2026: CFO promised a wire" in listed and f"({staff_user.name}, " in listed
    assert "End now" in listed and "ended" not in listed

    ended = admin.post(f"/admin/clients/{overdue_client.id}/standing/override/{row.id}/end", follow_redirects=True)
    assert 'data-standing="on_hold"' in page(ended)
    listed = _history_entry(page(ended), row.id)
    assert f"({staff_user.name}, " in listed and "; ended " in listed and "End now" not in listed


def test_an_override_set_by_no_one_signed_in_is_listed_as_set_by_staff(admin, session, overdue_client, clock):
    row = standing.set_override(session, overdue_client, standing="warning", reason="Disputed invoice",
                                ends_on=clock.today() + timedelta(days=5), staff=None, today=clock.today())
    listed = _history_entry(page(admin.get(f"/admin/clients/{overdue_client.id}")), row.id)
    assert "Warning until" in listed and "Disputed invoice" in listed and "(staff, " in listed


def _history_entry(text: str, override_id: int) -> str:
    return text.split(f'data-override="{override_id}"', 1)[1].split("</li>", 1)[0]


@pytest.mark.parametrize(("data", "message"), [
    ({"standing": "good", "reason": "", "ends_on": "2026-03-20"}, "Give a reason"),
    ({"standing": "good", "reason": "ok", "ends_on": ""}, "Give an end date"),
    ({"standing": "good", "reason": "ok", "ends_on": "2026-03-01"}, "in the past"),
    ({"standing": "good", "reason": "ok", "ends_on": "2026-12-31"}, "at most 90 days"),
    ({"standing": "frozen", "reason": "ok", "ends_on": "2026-03-20"}, "Not a valid choice"),
    ({"standing": "good", "reason": "ok", "ends_on": "20/03/2026"}, "Not a valid date value"),
])
def test_a_bad_override_is_refused_and_nothing_is_stored(admin, session, overdue_client, data, message):
    response = admin.post(f"/admin/clients/{overdue_client.id}/standing/override", data=data)
    text = page(response)  # the form again, with what was typed
    assert response.status_code == 200 and message in text and "Override the standing" in text
    assert f'{data["reason"]}</textarea>' in text
    assert count(session, StandingOverride) == 0
    assert admin.post("/admin/clients/99999/standing/override", data=data).status_code == 404


def test_the_client_sees_its_hold_and_what_to_pay_on_its_dashboard(http, make, overdue_client, clock):
    contact = make.contact(overdue_client)
    sign_in(http, contact)
    text = page(http.get("/"))
    banner = text.split('id="standing-banner"', 1)[1].split("</div>", 1)[0]
    assert "on service hold" in banner and "$123.45" in banner


def test_a_client_in_good_standing_sees_no_banner_and_never_another_clients(http, make, overdue_client):
    other = make.client("Bayside Law PC")
    make.invoice(other, 10_000, due_date=date(2026, 3, 16) + timedelta(days=30))
    sign_in(http, make.contact(other))
    text = page(http.get("/"))
    assert "standing-banner" not in text and "$123.45" not in text


def test_api_tokens_created_by_the_service_appear_on_the_page(admin, session):
    api_tokens.create(session, name="Nightly sync", scopes=["clients:list"], staff=None)
    assert "List every client with its standing" in page(admin.get("/admin/api/"))
