"""How client contacts sign in: a one-time emailed link, or an optional password they set themselves.

A link token is signed with the app's secret key (so it cannot be forged) and names a SignInLink row (so it can be
used once and expires on our clock). Nothing here tells a caller whether an email address has portal access.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta
from email.message import EmailMessage

from flask import Response, after_this_request, current_app, has_request_context, url_for
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.errors import DomainError
from portal.gateways import email
from portal.models import Contact, SignInLink

from .clients import find_contact_by_email
from .settings import get_settings
from .staff import hash_password, verify_password

SALT = "contact-sign-in"
MAX_LINKS_PER_EMAIL = 3  # per LINK_WINDOW: stops the form being used to flood someone's inbox
LINK_WINDOW = timedelta(minutes=15)
INVALID_LINK = "This sign-in link is invalid or has expired — request a new one."

log = logging.getLogger(__name__)


class InvalidSignInLink(DomainError):
    """Tampered, expired, used, foreign or for a contact without portal access: one message for all of them."""

    def __init__(self, message: str = INVALID_LINK):
        super().__init__(message)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _lifetime() -> timedelta:
    return timedelta(minutes=int(current_app.config["SIGN_IN_LINK_MINUTES"]))


def link_url(token: str, next_path: str = "") -> str:
    """The absolute URL of the landing page, on the public BASE_URL (a request's Host header is not trusted).
    ``next_path`` (a local path the caller has already checked) brings the contact back to where they were going;
    it is checked again when the link is used, since anyone can edit a URL."""
    extra = {"next": next_path} if next_path else {}
    return current_app.config["BASE_URL"].rstrip("/") + url_for("auth.sign_in_link", token=token, **extra)


def request_link(session: Session, email_address: str, ip: str, next_path: str = "") -> None:
    """Email a sign-in link if the address belongs to a contact with portal access; otherwise do nothing.

    Callers always answer the same way, so the form cannot be used to find out which addresses exist. Inside a
    request the email leaves after the response (see _deliver_after_response); outside one, at once.
    """
    contact = find_contact_by_email(session, email_address)
    if contact is None or not contact.portal_access:
        return
    at = now()
    recent = session.scalar(
        select(func.count(SignInLink.id)).where(
            SignInLink.contact_id == contact.id, SignInLink.created_at > at - LINK_WINDOW
        )
    )
    if (recent or 0) >= MAX_LINKS_PER_EMAIL:
        log.info("sign-in link not sent to contact %s: %s links in the last 15 minutes", contact.id, recent)
        return
    msp = get_settings(session)
    link = SignInLink(contact_id=contact.id, nonce=secrets.token_urlsafe(32), created_at=at,
                      expires_at=at + _lifetime(), requested_ip=(ip or "")[:64])
    session.add(link)
    session.commit()
    token = _serializer().dumps({"l": link.id, "n": link.nonce})
    text, html = email.render("sign_in_link", contact=contact, url=link_url(token, next_path), msp=msp,
                              minutes=current_app.config["SIGN_IN_LINK_MINUTES"])
    message = email.build(to=[contact.email], subject=f"Your sign-in link for {msp.name}", text=text, html=html,
                          reply_to=msp.reply_to or None)
    _deliver_after_response(message, contact.id)


def _deliver_after_response(message: EmailMessage, contact_id: int) -> None:
    """An SMTP round trip is long enough to time: sent before answering, a known address would answer measurably
    slower than an unknown one. So the message goes out once the response has been sent (WSGI close)."""
    transport = email.transport()

    def deliver() -> None:
        try:
            delivery = transport.deliver(message)
        except OSError as e:  # an unwritable outbox folder
            log.warning("sign-in link email to contact %s failed: %s", contact_id, e)
            return
        if not delivery.ok:
            log.warning("sign-in link email to contact %s failed: %s", contact_id, delivery.error)

    if not has_request_context():  # a command or a test calling the service directly
        deliver()
        return

    @after_this_request
    def _send_when_closed(response: Response) -> Response:
        response.call_on_close(deliver)
        return response


def _open(session: Session, token: str) -> tuple[SignInLink, Contact]:
    """The link and contact a token names, if it is genuine, unused and unexpired. Changes nothing."""
    try:
        data = _serializer().loads(token, max_age=int(_lifetime().total_seconds()))
    except BadData:
        raise InvalidSignInLink() from None
    if not (isinstance(data, dict) and isinstance(data.get("l"), int) and isinstance(data.get("n"), str)):
        raise InvalidSignInLink()
    link = session.get(SignInLink, data["l"])
    # itsdangerous' max_age runs on the real clock; the row's expiry runs on ours (the one tests can move)
    if link is None or not hmac.compare_digest(link.nonce, data["n"]) or link.used_at is not None \
            or link.expires_at <= now():
        raise InvalidSignInLink()
    contact = session.get(Contact, link.contact_id)
    if contact is None or not contact.portal_access:
        raise InvalidSignInLink()
    return link, contact


def check(session: Session, token: str) -> Contact:
    """Validate without using the link: the landing page's GET, which mail scanners may prefetch."""
    return _open(session, token)[1]


def consume(session: Session, token: str) -> Contact:
    """Use the link once and return its contact. Raises InvalidSignInLink for every kind of bad link."""
    link, contact = _open(session, token)
    at = now()
    # The conditional UPDATE is the real guard: of two simultaneous clicks only one changes the row.
    used = session.execute(
        update(SignInLink)
        .where(SignInLink.id == link.id, SignInLink.used_at.is_(None), SignInLink.expires_at > at)
        .values(used_at=at)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        session.rollback()
        raise InvalidSignInLink()
    contact.last_sign_in_at = at
    session.commit()
    return contact


def authenticate_contact(session: Session, email_address: str, password: str) -> Contact | None:
    """A contact with portal access whose password matches, else None (same cost whether or not it exists)."""
    contact = find_contact_by_email(session, email_address)
    stored = contact.password_hash if contact else None
    if not verify_password(stored, password) or contact is None or not contact.portal_access:
        return None
    contact.last_sign_in_at = now()
    session.commit()
    return contact


def set_password(session: Session, contact: Contact, password: str) -> None:
    """Set or change the contact's optional password. Other sessions stay signed in: the emailed link, not the
    password, is what proves who the contact is, so a password change is not a security reset."""
    contact.password_hash = hash_password(password)
    session.commit()
