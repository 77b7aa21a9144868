"""Security properties every page shares: CSRF on every POST, strict headers, safe cookies, the health probe."""

from __future__ import annotations

import re
from datetime import date

import pytest
from flask import url_for
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select
from werkzeug.routing import IntegerConverter

from portal.models import Base, SignInLink
from portal.services.sign_in import SALT, request_link
from tests.conftest import sign_in

# Endpoints that take POSTs from other systems and prove who sent them by verifying a signature on the raw body,
# so they cannot carry a CSRF token. Nothing else belongs here.
CSRF_EXEMPT_ENDPOINTS: set[str] = {
    "payments.stripe_webhook",  # Stripe-Signature header, checked by the gateway before anything is read
}


@pytest.fixture
def app_config(app_config):
    app_config["WTF_CSRF_ENABLED"] = True
    return app_config


@pytest.fixture
def world(make, session, app, rt):
    """One of every record a POST might change, so a forged POST has something to damage."""
    admin = make.staff()
    client = make.client("Acme Dental LLC")
    contact = make.contact(client, email="pat@acme-dental.test")
    invoice = make.invoice(client, 10_000, issue_date=date(2026, 3, 1))
    draft = make.invoice(client, 5_000, issue=False)
    payment = make.payment(client, 2_000)
    request_link(session, rt, contact.email, "127.0.0.1")  # the email is built, not sent: the token is rebuilt
    link = session.scalar(select(SignInLink))  # emailed to the outbox; rebuild its token rather than parse the mail
    token = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT).dumps({"l": link.id, "n": link.nonce})
    ids = {"client_id": client.id, "contact_id": contact.id, "invoice_id": invoice.id, "payment_id": payment.id,
           "staff_id": admin.id, "draft_id": draft.id}
    return {"admin": admin, "contact": contact, "ids": ids, "token": token}


def _snapshot(session) -> dict[str, list[tuple]]:
    session.expire_all()
    state = {}
    for table in Base.metadata.sorted_tables:
        rows = session.execute(select(table)).all()
        state[table.name] = sorted((tuple(r) for r in rows), key=repr)
    session.commit()  # end the read transaction so the app's requests see a quiet database
    return state


def _post_urls(app, world) -> list[tuple[str, str]]:
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()) or rule.endpoint in CSRF_EXEMPT_ENDPOINTS:
            continue
        values = {}
        for name in rule.arguments:
            if isinstance(rule._converters[name], IntegerConverter):
                values[name] = world["ids"].get(name, world["ids"]["invoice_id"])
                if name == "invoice_id" and ("issue" in rule.endpoint or "edit" in rule.endpoint):
                    values[name] = world["ids"]["draft_id"]  # a draft is what these would change
            else:
                values[name] = world["token"] if rule.endpoint == "auth.sign_in_link" else "x"
        with app.test_request_context():
            urls.append((rule.endpoint, url_for(rule.endpoint, **values)))
    return urls


def test_the_allow_list_names_real_endpoints(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert CSRF_EXEMPT_ENDPOINTS.issubset(endpoints)


def test_exempt_endpoints_refuse_an_unsigned_post(app, http, session, world):
    before = _snapshot(session)
    for rule in app.url_map.iter_rules():
        if rule.endpoint in CSRF_EXEMPT_ENDPOINTS:
            response = http.post(rule.rule, data=b'{"id": "evt_forged", "type": "payment_intent.succeeded"}',
                                 content_type="application/json")
            assert 400 <= response.status_code < 500, rule.endpoint
    assert _snapshot(session) == before


@pytest.mark.parametrize("who", ["anonymous", "staff", "contact"])
def test_every_post_without_a_csrf_token_is_rejected_and_changes_nothing(app, http, session, world, who):
    if who != "anonymous":
        sign_in(http, world["admin"] if who == "staff" else world["contact"])
    urls = _post_urls(app, world)
    assert len(urls) >= 8  # sign-in forms, sign-out, password, and the admin area's actions
    before = _snapshot(session)
    for endpoint, url in urls:
        response = http.post(url, data={"email": "pat@acme-dental.test", "password": "correct horse battery",
                                         "amount": "1.00", "reason": "forged", "name": "Forged"})
        assert response.status_code == 400, f"{endpoint} {url} answered {response.status_code}"
        assert "Your form expired or was sent from elsewhere" in response.get_data(as_text=True), endpoint
    assert _snapshot(session) == before
    # and whoever was signed in still is: the forged sign-out did nothing
    with http.session_transaction() as s:
        assert ("_user_id" in s) == (who != "anonymous")


def _csrf_token(body: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)


def test_the_same_post_with_its_token_goes_through(app, http, session, world, outbox):
    """The positive control: CSRF is on, and a real form with its token works."""
    token = _csrf_token(http.get("/login").get_data(as_text=True))
    response = http.post("/login", data={"csrf_token": token, "email": "pat@acme-dental.test"})
    assert response.status_code == 302
    response.close()  # the email goes out once the response is sent
    # only this one: the fixture made its link inside a bare request context, which never sends a response
    assert len(list(outbox.glob("*.eml"))) == 1

    page = http.get(f"/login/link/{world['token']}").get_data(as_text=True)
    assert http.post(f"/login/link/{world['token']}").status_code == 400  # no token: link not used
    assert http.post(f"/login/link/{world['token']}", data={"csrf_token": _csrf_token(page)}).status_code == 302
    assert http.get("/").status_code == 200


def test_security_headers(http, world):
    sign_in(http, world["contact"])
    for url in ("/", "/invoices", "/login", "/admin/login", "/healthz", "/no-such-page"):
        response = http.get(url)
        h = response.headers
        csp = h["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, url
        assert h["X-Frame-Options"] == "DENY", url
        assert h["X-Content-Type-Options"] == "nosniff", url
        assert h["Referrer-Policy"] == "no-referrer", url
        assert h["Cache-Control"] == "no-store", url


def test_pages_have_no_inline_scripts_or_styles(app, http, world):
    """The CSP blocks them, so one slipping into a template would silently break the page."""
    urls = ["/login", "/admin/login", "/login/sent", f"/login/link/{world['token']}", "/login/link/bad-token"]
    contact_urls = ["/", "/invoices", f"/invoices/{world['ids']['invoice_id']}", "/payments",
                    f"/payments/{world['ids']['payment_id']}", "/statement", "/password"]
    for url in urls:
        _assert_clean(http.get(url).get_data(as_text=True), url)
    sign_in(http, world["contact"])
    for url in contact_urls:
        response = http.get(url)
        assert response.status_code == 200, url
        _assert_clean(response.get_data(as_text=True), url)


def _assert_clean(body: str, url: str) -> None:
    assert not re.search(r"\sstyle=", body), url
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), url
    assert not re.search(r"\son[a-z]+=", body), url  # onclick= and friends are inline script too


def _session_cookie(response) -> str:
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return cookie


def test_session_cookie_flags_over_http(http, world):
    sign_in(http, world["contact"])
    response = http.post("/logout", data={"csrf_token": _csrf_token(http.get("/password").get_data(as_text=True))})
    assert response.status_code == 302
    cookie = _session_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain-http BASE_URL: a Secure cookie would never come back


class TestOverHttps:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["WTF_CSRF_ENABLED"] = True
        app_config["BASE_URL"] = "https://billing.example.com"
        return app_config

    def test_session_cookie_is_secure(self, app, http):
        response = http.get("/login", base_url="https://billing.example.com")
        cookie = _session_cookie(response)  # the CSRF token lives in the session
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_healthz(http):
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}
    assert http.head("/healthz").status_code == 200


def test_healthz_reports_an_unreachable_database(app, tmp_path):
    from portal import create_app

    broken = create_app({**{k: app.config[k] for k in ("ENV", "SECRET_KEY", "INSTANCE_PATH")},
                         "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/db.sqlite",
                         "RATELIMIT_ENABLED": False})
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "unreachable"}
    broken.extensions["db_engine"].dispose()
