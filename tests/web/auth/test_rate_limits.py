"""Sign-in POSTs are rate-limited per IP (and password guesses per account). GETs are never limited."""

from __future__ import annotations

import pytest

from portal.web.auth.routes import BAD_CREDENTIALS

from .conftest import read_outbox


@pytest.fixture
def app_config(app_config):
    app_config["RATELIMIT_ENABLED"] = True
    return app_config


def test_staff_sign_in_allows_ten_attempts_a_minute(http, make):
    admin = make.staff(email="alex@msp.test")
    for _ in range(10):
        response = http.post("/admin/login", data={"email": admin.email, "password": "wrong wrong wrong"})
        assert response.status_code == 200 and BAD_CREDENTIALS in response.get_data(as_text=True)
    blocked = http.post("/admin/login", data={"email": admin.email, "password": "correct horse battery"})
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.get_data(as_text=True)
    assert http.get("/admin/").status_code == 302  # even the right password did not get through
    assert http.get("/admin/login").status_code == 200  # the page itself still loads


def test_link_requests_are_limited_per_ip(http, contact, outbox):
    for i in range(5):
        assert http.post("/login", data={"email": f"someone{i}@example.test"}).status_code == 302
    blocked = http.post("/login", data={"email": contact.email})
    assert blocked.status_code == 429
    assert read_outbox(outbox) == []
    assert http.get("/login").status_code == 200


def test_password_guesses_are_limited_per_account(http, contact):
    for _ in range(5):
        response = http.post("/login/password", data={"pw-email": contact.email, "pw-password": "guess guess guess"})
        assert response.status_code == 200
    assert http.post("/login/password",
                     data={"pw-email": contact.email.upper(), "pw-password": "guess guess guess"}).status_code == 429
    # another account from the same IP is still below the per-IP limit
    other = http.post("/login/password", data={"pw-email": "other@acme-dental.test", "pw-password": "guess guess"})
    assert other.status_code == 200


def test_password_guesses_are_limited_per_ip(http):
    for i in range(10):
        response = http.post("/login/password", data={"pw-email": f"u{i}@example.test", "pw-password": "guess guess"})
        assert response.status_code == 200
    assert http.post("/login/password", data={"pw-email": "u99@example.test", "pw-password": "x"}).status_code == 429
