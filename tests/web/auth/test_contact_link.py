"""Contacts sign in with a one-time link emailed to them."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from portal import db
from portal.models import Contact, SignInLink
from portal.services import clients, sign_in
from portal.services.settings import update_settings
from portal.services.sign_in import INVALID_LINK, InvalidSignInLink

from .conftest import is_signed_in_as_contact, link_path, read_outbox, request_link

SENT = "If that address has portal access, we've emailed a link"


def _links(session) -> list[SignInLink]:
    session.expire_all()
    return list(session.scalars(select(SignInLink).order_by(SignInLink.id)))


def _assert_rejected(response) -> None:
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert INVALID_LINK in body
    assert 'href="/login"' in body and "Request a new link" in body


def test_login_page_offers_the_link_and_the_password_form(http):
    body = http.get("/login").get_data(as_text=True)
    assert 'name="email"' in body and "Email me a sign-in link" in body
    assert 'name="pw-email"' in body and 'name="pw-password"' in body


def test_link_is_emailed_and_signs_the_contact_in(http, session, contact, outbox, clock):
    update_settings(session, name="Northwind IT")
    response = request_link(http, "  PAT@acme-dental.TEST ")
    assert response.status_code == 302
    sent_page = http.get(response.headers["Location"])
    assert SENT in sent_page.get_data(as_text=True)

    [message] = read_outbox(outbox)
    assert message["To"] == "pat@acme-dental.test"
    assert message["Subject"] == "Your sign-in link for Northwind IT"
    path = link_path(message)
    [link] = _links(session)
    assert (link.contact_id, link.used_at, link.requested_ip) == (contact.id, None, "127.0.0.1")
    assert (link.created_at, link.expires_at) == (clock.now(), clock.now() + timedelta(minutes=15))

    landing = http.get(path)
    assert landing.status_code == 200
    assert "pat@acme-dental.test" in landing.get_data(as_text=True)
    assert not is_signed_in_as_contact(http)  # looking at the page signs nobody in

    signed = http.post(path)
    assert signed.status_code == 302 and urlsplit(signed.headers["Location"]).path == "/"
    dashboard = http.get("/")
    assert dashboard.status_code == 200 and "Acme Dental LLC" in dashboard.get_data(as_text=True)
    [link] = _links(session)
    assert link.used_at == clock.now()
    assert session.get(Contact, contact.id).last_sign_in_at == clock.now()


def test_get_does_not_use_up_the_link(http, session, emailed_link):
    for _ in range(3):  # e.g. a mail scanner prefetching, then the person opening it twice
        assert http.get(emailed_link).status_code == 200
    assert _links(session)[0].used_at is None
    assert http.post(emailed_link).status_code == 302
    assert is_signed_in_as_contact(http)


@pytest.mark.parametrize("email", ["stranger@acme-dental.test", "not-an-email"])
def test_unknown_email_gets_the_same_answer_and_nothing_is_sent(http, session, contact, outbox, email):
    response = request_link(http, email)
    if email == "not-an-email":  # a malformed address is a form error, which reveals nothing about accounts
        assert response.status_code == 200
        assert "Enter a valid email address." in response.get_data(as_text=True)
    else:
        assert response.status_code == 302
        known = request_link(http.application.test_client(), contact.email)
        assert response.headers["Location"] == known.headers["Location"]
        assert SENT in http.get(response.headers["Location"]).get_data(as_text=True)
    assert [m["To"] for m in read_outbox(outbox)] == ([] if email == "not-an-email" else [contact.email])
    assert all(link.contact_id == contact.id for link in _links(session))


def test_contact_without_portal_access_gets_no_email(http, session, make, client_co, outbox):
    blocked = make.contact(client_co, email="former@acme-dental.test", portal_access=False)
    response = request_link(http, blocked.email)
    assert response.status_code == 302
    assert read_outbox(outbox) == []
    assert _links(session) == []


def test_at_most_three_links_per_email_per_fifteen_minutes(http, session, contact, outbox, clock):
    for _ in range(4):
        clock.advance(minutes=1)
        assert request_link(http, contact.email).status_code == 302
    assert len(read_outbox(outbox)) == 3
    assert len(_links(session)) == 3
    clock.advance(minutes=12)  # the first link was asked for 15 minutes ago: one slot frees up
    request_link(http, contact.email)
    assert len(read_outbox(outbox)) == 4


def test_the_cap_is_per_contact(http, make, client_co, contact, outbox):
    other = make.contact(client_co, email="sam@acme-dental.test")
    for _ in range(3):
        request_link(http, contact.email)
    request_link(http, other.email)
    assert [m["To"] for m in read_outbox(outbox)].count(other.email) == 1


def _tamper(path: str) -> str:
    token = path.rsplit("/", 1)[1]
    i = len(token) // 2
    return path.rsplit("/", 1)[0] + "/" + token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def test_tampered_link_is_rejected(http, emailed_link, session):
    bad = _tamper(emailed_link)
    _assert_rejected(http.get(bad))
    _assert_rejected(http.post(bad))
    assert not is_signed_in_as_contact(http)
    assert _links(session)[0].used_at is None


def test_expired_link_is_rejected(http, emailed_link, session, clock):
    clock.advance(minutes=16)
    _assert_rejected(http.get(emailed_link))
    _assert_rejected(http.post(emailed_link))
    assert not is_signed_in_as_contact(http)
    assert _links(session)[0].used_at is None


def test_link_still_works_just_before_it_expires(http, emailed_link, clock):
    clock.advance(minutes=14, seconds=59)
    assert http.post(emailed_link).status_code == 302
    assert is_signed_in_as_contact(http)


def test_used_link_cannot_be_used_again(http, app, emailed_link):
    assert http.post(emailed_link).status_code == 302
    other_browser = app.test_client()
    _assert_rejected(other_browser.get(emailed_link))
    _assert_rejected(other_browser.post(emailed_link))
    assert not is_signed_in_as_contact(other_browser)


def _forge(app, payload, salt: str) -> str:
    return "/login/link/" + URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=salt).dumps(payload)


def test_token_made_for_another_purpose_is_rejected(http, app, emailed_link, session):
    link = _links(session)[0]
    other_purpose = _forge(app, {"l": link.id, "n": link.nonce}, salt="invoice-link")
    _assert_rejected(http.get(other_purpose))
    _assert_rejected(http.post(other_purpose))
    assert not is_signed_in_as_contact(http)


@pytest.mark.parametrize("payload", [
    "wrong-nonce", ["a", "list"], {"l": "1", "n": "x"}, {"l": 999999, "n": "x"},
])
def test_genuinely_signed_but_wrong_tokens_are_rejected(http, app, emailed_link, session, payload):
    link = _links(session)[0]
    if payload == "wrong-nonce":
        payload = {"l": link.id, "n": "not-the-nonce"}
    forged = _forge(app, payload, salt=sign_in.SALT)
    _assert_rejected(http.post(forged))
    assert not is_signed_in_as_contact(http)
    assert _links(session)[0].used_at is None


def test_link_of_a_contact_whose_access_was_removed_is_rejected(http, session, contact, emailed_link):
    clients.update_contact(session, contact, portal_access=False)
    _assert_rejected(http.get(emailed_link))
    _assert_rejected(http.post(emailed_link))
    assert not is_signed_in_as_contact(http)


def test_removing_access_ends_an_open_session(http, session, contact, emailed_link):
    http.post(emailed_link)
    assert is_signed_in_as_contact(http)
    clients.update_contact(session, contact, portal_access=False)
    assert not is_signed_in_as_contact(http)


def test_two_simultaneous_clicks_cannot_both_sign_in(app, rt, session, emailed_link):
    """The second browser read the link while it was still unused; the conditional UPDATE still stops it."""
    token = emailed_link.rsplit("/", 1)[1]
    first = app.extensions["db_sessionmaker"]()
    second = app.extensions["db_sessionmaker"]()
    try:
        second.get(SignInLink, _links(session)[0].id)  # loaded as unused into the second session
        assert sign_in.consume(first, rt, token).email == "pat@acme-dental.test"
        with pytest.raises(InvalidSignInLink):
            sign_in.consume(second, rt, token)
    finally:
        first.close()
        second.close()


def test_signing_in_replaces_whoever_was_signed_in(http, make, client_co, session, outbox, app):
    """A link opened in a browser where someone else is signed in signs in the link's owner only."""
    from tests.conftest import sign_in as put_identity

    put_identity(http, make.staff())
    other = make.contact(client_co, email="owner@acme-dental.test")
    request_link(app.test_client(), other.email)
    path = link_path(read_outbox(outbox)[0])
    http.post(path)
    assert http.get("/admin/").status_code == 403  # now a contact, no longer staff
    with http.session_transaction() as s:
        assert s["_user_id"].startswith(f"contact:{other.id}:")


def test_the_service_refuses_an_unknown_token(app, rt):
    with pytest.raises(InvalidSignInLink, match="invalid or has expired"):
        sign_in.consume(db.session(), rt, "garbage")


def test_the_email_leaves_after_the_response(http, contact, outbox):
    """A known address must not answer slower than an unknown one, so the mail is sent after the response."""
    response = http.post("/login", data={"email": contact.email})
    assert response.status_code == 302
    assert read_outbox(outbox) == []
    response.close()  # what the WSGI server does once the response is out
    assert [m["To"] for m in read_outbox(outbox)] == [contact.email]


class TestOverSmtp:
    @pytest.fixture
    def app_config(self, app_config, smtp_server):
        app_config["SMTP_URL"] = smtp_server.url
        return app_config

    def test_link_is_delivered_by_smtp_and_works(self, http, contact, smtp_server, session):
        update_settings(session, name="Northwind IT", reply_to="help@northwind.test")
        request_link(http, contact.email)
        [received] = smtp_server.messages
        assert received.rcpt_tos == [contact.email]
        assert received.message["Subject"] == "Your sign-in link for Northwind IT"
        assert received.message["Reply-To"] == "help@northwind.test"
        assert http.post(link_path(received.message)).status_code == 302
        assert is_signed_in_as_contact(http)

    def test_a_refusing_mail_server_changes_nothing_the_visitor_sees(self, http, contact, smtp_server, caplog):
        smtp_server.reply_next("550 5.7.1 Relay denied")
        response = request_link(http, contact.email)
        assert response.status_code == 302
        assert SENT in http.get(response.headers["Location"]).get_data(as_text=True)
        assert smtp_server.messages == []
        assert "sign-in link email to contact" in caplog.text and "550" in caplog.text


def test_the_link_brings_the_contact_back_to_the_page_they_asked_for(http, session, make, contact, outbox):
    invoice = make.invoice(contact.client)
    asked_for = http.get(f"/invoices/{invoice.id}")
    assert asked_for.headers["Location"] == f"/login?next=/invoices/{invoice.id}"  # no stray "?" on the path

    http.post(asked_for.headers["Location"], data={"email": contact.email}).close()

    [message] = read_outbox(outbox)
    body = message.get_body(("plain",)).get_content()
    url = next(word for word in body.split() if "/login/link/" in word)
    assert url.endswith(f"?next=/invoices/{invoice.id}")
    signed = http.post(url.removeprefix("http://localhost"))
    assert signed.headers["Location"] == f"/invoices/{invoice.id}"


def test_a_link_edited_to_leave_the_site_lands_on_the_dashboard(http, emailed_link):
    signed = http.post(emailed_link + "?next=//evil.example/phish")
    assert urlsplit(signed.headers["Location"]).path == "/"
