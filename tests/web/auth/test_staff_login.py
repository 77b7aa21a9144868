"""Staff sign in with email + password at /admin/login."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from portal.models import StaffUser
from portal.web.auth.routes import BAD_CREDENTIALS

PASSWORD = "correct horse battery"


@pytest.fixture
def admin(make):
    return make.staff(email="alex@msp.test", password=PASSWORD)


def _post(http, email, password, next_=None):
    url = "/admin/login" + (f"?next={next_}" if next_ is not None else "")
    return http.post(url, data={"email": email, "password": password})


def _error_text(response) -> str:
    return response.get_data(as_text=True)


def test_page_renders(http):
    response = http.get("/admin/login")
    assert response.status_code == 200
    assert "Staff sign-in" in response.get_data(as_text=True)


def test_correct_password_signs_in(http, admin, session, clock):
    response = _post(http, "Alex@MSP.test ", PASSWORD)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/"
    assert http.get("/admin/").status_code == 200
    session.expire_all()
    assert session.get(StaffUser, admin.id).last_sign_in_at == clock.now()


@pytest.mark.parametrize("email, password", [
    ("alex@msp.test", "wrong password here"),
    ("nobody@msp.test", PASSWORD),
])
def test_wrong_password_and_unknown_email_get_the_same_answer(http, admin, email, password):
    response = _post(http, email, password)
    assert response.status_code == 200
    body = _error_text(response)
    assert BAD_CREDENTIALS in body
    assert "unknown" not in body.lower() and "no account" not in body.lower()
    follow = http.get("/admin/")
    assert follow.status_code == 302 and urlsplit(follow.headers["Location"]).path == "/admin/login"


def test_inactive_staff_cannot_sign_in(http, admin, session):
    admin.is_active = False
    session.commit()
    response = _post(http, admin.email, PASSWORD)
    assert BAD_CREDENTIALS in _error_text(response)
    assert http.get("/admin/").status_code == 302


def test_empty_form_shows_field_errors(http, admin):
    response = _post(http, "", "")
    body = _error_text(response)
    assert "Enter your email address." in body and "Enter your password." in body
    assert http.get("/admin/").status_code == 302


@pytest.mark.parametrize("next_, expected", [
    ("/admin/clients", "/admin/clients"),
    ("/admin/invoices?status=open", "/admin/invoices?status=open"),
    ("https://evil.example/admin/", "/admin/"),
    ("//evil.example/admin/", "/admin/"),
    ("/\\evil.example", "/admin/"),
    ("/%09/evil.example", "/admin/"),
    ("javascript:alert(1)", "/admin/"),
    ("", "/admin/"),
])
def test_next_only_goes_to_a_local_path(http, admin, next_, expected):
    response = _post(http, admin.email, PASSWORD, next_=next_)
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost")
    assert (parts.path + (f"?{parts.query}" if parts.query else "")) == expected


def test_staff_page_redirects_anonymous_visitor_to_staff_sign_in_and_back(http, admin):
    response = http.get("/admin/clients")
    assert response.status_code == 302
    login = response.headers["Location"]
    assert urlsplit(login).path == "/admin/login"
    signed = http.post(login, data={"email": admin.email, "password": PASSWORD})
    assert urlsplit(signed.headers["Location"]).path == "/admin/clients"


def test_sign_out_clears_the_session(http, admin):
    _post(http, admin.email, PASSWORD)
    assert http.get("/admin/").status_code == 200
    response = http.post("/logout")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/login"
    with http.session_transaction() as s:
        assert "_user_id" not in s
    assert http.get("/admin/").status_code == 302


def test_sign_out_needs_post(http, admin):
    _post(http, admin.email, PASSWORD)
    assert http.get("/logout").status_code == 405
    assert http.get("/admin/").status_code == 200
