"""Contacts may set a password and sign in with it on /login; and sign out."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from portal.models import Contact
from portal.services import clients
from portal.services.sign_in import set_password
from portal.web.auth.routes import BAD_CREDENTIALS
from tests.conftest import sign_in as put_identity

from .conftest import is_signed_in_as_contact

GOOD = "a long enough passphrase"


def _set(http, password, confirm=None):
    return http.post("/password", data={"password": password, "confirm": password if confirm is None else confirm})


def _login(http, email, password, next_=None):
    url = "/login/password" + (f"?next={next_}" if next_ else "")
    return http.post(url, data={"pw-email": email, "pw-password": password})


@pytest.fixture
def signed_in(http, contact):
    put_identity(http, contact)
    return http


def test_password_page_needs_a_signed_in_contact(http):
    response = http.get("/password")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


def test_staff_cannot_use_the_contact_password_page(staff_http):
    assert staff_http.get("/password").status_code == 403


def test_set_password(signed_in, session, contact):
    page = signed_in.get("/password")
    assert "Set a password" in page.get_data(as_text=True)
    epoch = contact.session_epoch
    response = _set(signed_in, GOOD)
    assert response.status_code == 302
    page = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your password is saved" in page and "Change your password" in page
    session.expire_all()
    saved = session.get(Contact, contact.id)
    assert saved.password_hash and GOOD not in saved.password_hash
    assert saved.session_epoch == epoch  # nothing else changes: this browser and others stay signed in
    assert is_signed_in_as_contact(signed_in)


@pytest.mark.parametrize("password, confirm, message", [
    ("short pass", None, "Use a password of at least 12 characters."),
    (GOOD, GOOD + "x", "The two passwords do not match."),
    ("", "", "Enter a password."),
])
def test_bad_passwords_are_refused_and_change_nothing(signed_in, session, contact, password, confirm, message):
    response = _set(signed_in, password, confirm)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Contact, contact.id).password_hash is None


def test_change_password(signed_in, session, contact, app):
    _set(signed_in, GOOD)
    _set(signed_in, "another long passphrase")
    fresh = app.test_client()
    assert BAD_CREDENTIALS in _login(fresh, contact.email, GOOD).get_data(as_text=True)
    assert _login(fresh, contact.email, "another long passphrase").status_code == 302


def test_sign_in_with_password(http, session, contact, clock):
    set_password(session, contact, GOOD)
    response = _login(http, " PAT@acme-dental.test", GOOD)
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/"
    assert is_signed_in_as_contact(http)
    session.expire_all()
    assert session.get(Contact, contact.id).last_sign_in_at == clock.now()


def test_password_sign_in_follows_a_local_next_only(http, session, contact, app):
    set_password(session, contact, GOOD)
    response = _login(http, contact.email, GOOD, next_="/invoices")
    assert urlsplit(response.headers["Location"]).path == "/invoices"
    other = app.test_client()
    response = _login(other, contact.email, GOOD, next_="https://evil.example/")
    assert urlsplit(response.headers["Location"]).path == "/"
    assert urlsplit(response.headers["Location"]).netloc in ("", "localhost")


def test_anonymous_visit_keeps_next_through_the_password_form(http, session, contact):
    response = http.get("/invoices?status=paid")
    login_url = response.headers["Location"]
    page = http.get(login_url).get_data(as_text=True)
    assert 'action="/login/password?next=/invoices?status%3Dpaid"' in page
    set_password(session, contact, GOOD)
    signed = http.post("/login/password?next=/invoices?status%3Dpaid",
                       data={"pw-email": contact.email, "pw-password": GOOD})
    assert signed.headers["Location"] == "/invoices?status=paid"


@pytest.mark.parametrize("case", ["wrong password", "no password set", "unknown email", "no portal access"])
def test_failed_password_sign_in_says_the_same_thing(http, session, make, client_co, contact, case):
    set_password(session, contact, GOOD)
    email, password = contact.email, GOOD
    if case == "wrong password":
        password = "not the right one at all"
    elif case == "no password set":
        email = make.contact(client_co, email="nopw@acme-dental.test").email
    elif case == "unknown email":
        email = "ghost@acme-dental.test"
    else:
        clients.update_contact(session, contact, portal_access=False)
    response = _login(http, email, password)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert BAD_CREDENTIALS in body
    assert "<details class=\"password-login\" open>" in body  # the password form stays open with its error
    assert not is_signed_in_as_contact(http)


def test_empty_password_form_shows_field_errors(http):
    body = _login(http, "", "").get_data(as_text=True)
    assert "Enter your email address." in body and "Enter your password." in body


def test_contact_sign_out(http, contact):
    put_identity(http, contact)
    assert is_signed_in_as_contact(http)
    response = http.post("/logout")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"
    assert "You are signed out." in http.get("/login").get_data(as_text=True)
    assert not is_signed_in_as_contact(http)
    with http.session_transaction() as s:
        assert "_user_id" not in s
