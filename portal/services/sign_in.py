"""How client contacts sign in: a one-time emailed link, or an optional password they set themselves.

A link token is signed with the app's secret key (so it cannot be forged) and names a SignInLink row (so it can be
used once and expires on our clock). Nothing here tells a caller whether an email address has portal access.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.errors import DomainError
from portal.gateways.email import Mailer
from portal.models import Contact, SignInLink

from . import mail
from .agreements.invitations import terms_to_sign_expr
from .clients import find_contact_by_email
from .locking import begin_write
from .runtime import Runtime
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


def _serializer(rt: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(rt.secret_key, salt=SALT)


def _minutes(rt: Runtime) -> int:
    return int(rt.config["SIGN_IN_LINK_MINUTES"])


def link_url(rt: Runtime, token: str, next_path: str = "") -> str:
    """The absolute URL of the landing page, on the public BASE_URL (a request's Host header is not trusted).
    ``next_path`` (a local path the caller has already checked) brings the contact back to where they were going;
    it is checked again when the link is used, since anyone can edit a URL."""
    extra = {"next": next_path} if next_path else {}
    return rt.url("auth.sign_in_link", token=token, **extra)


@dataclass(frozen=True)
class LinkEmail:
    """A sign-in link email, built and not yet sent. An SMTP round trip is long enough to time: sent before
    answering, a known address would answer measurably slower than an unknown one. So the web layer sends it once
    the response has gone out; a command or a test calls ``send()`` itself."""

    message: EmailMessage
    contact_id: int
    mailer: Mailer

    def send(self) -> None:
        delivery = self.mailer.deliver(self.message)  # never raises for a delivery problem
        if not delivery.ok:
            log.warning("sign-in link email to contact %s failed: %s", self.contact_id, delivery.error)


def request_link(session: Session, rt: Runtime, email_address: str, ip: str, next_path: str = "") -> LinkEmail | None:
    """A sign-in link email to send if the address belongs to a contact with portal access; otherwise None.

    Callers always answer the same way, so the form cannot be used to find out which addresses exist, and send
    the email after answering (see LinkEmail).
    """
    begin_write(session)  # links are counted, then one is written: two requests must not both pass the limit
    contact = find_contact_by_email(session, email_address)
    if contact is None or not contact.portal_access:
        return None
    at = now()
    recent = session.scalar(
        select(func.count(SignInLink.id)).where(
            SignInLink.contact_id == contact.id, SignInLink.created_at > at - LINK_WINDOW
        )
    )
    if (recent or 0) >= MAX_LINKS_PER_EMAIL:
        log.info("sign-in link not sent to contact %s: %s links in the last 15 minutes", contact.id, recent)
        return None
    msp = get_settings(session)
    link = SignInLink(contact_id=contact.id, nonce=secrets.token_urlsafe(32), created_at=at,
                      expires_at=at + timedelta(minutes=_minutes(rt)), requested_ip=(ip or "")[:64])
    session.add(link)
    session.commit()
    token = _serializer(rt).dumps({"l": link.id, "n": link.nonce})
    message = mail.compose(session, rt, to=[contact.email], subject=f"Your sign-in link for {msp.name}",
                           template="sign_in_link", context={"contact": contact, "url": link_url(rt, token, next_path),
                                                             "msp": msp, "minutes": _minutes(rt)})
    return LinkEmail(message, contact.id, rt.mailer)


def _open(session: Session, rt: Runtime, token: str) -> tuple[SignInLink, Contact]:
    """The link and contact a token names, if it is genuine, unused and unexpired. Changes nothing."""
    try:
        data = _serializer(rt).loads(token, max_age=_minutes(rt) * 60)
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


def check(session: Session, rt: Runtime, token: str) -> Contact:
    """Validate without using the link: the landing page's GET, which mail scanners may prefetch."""
    return _open(session, rt, token)[1]


def consume(session: Session, rt: Runtime, token: str) -> Contact:
    """Use the link once and return its contact. Raises InvalidSignInLink for every kind of bad link."""
    begin_write(session)  # a read snapshot from before another click used the link could not write on SQLite
    link, contact = _open(session, rt, token)
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


def signed_in_contact(session: Session, contact_id: int, epoch: int) -> tuple[Contact, int | None] | None:
    """The contact a session cookie names, if it may still use the portal and was not signed out everywhere since
    (``epoch``), with the payment terms version its client still has to sign (None: nothing to sign). One query:
    every page view of a signed-in contact starts here."""
    row = session.execute(_SIGNED_IN, {"contact_id": contact_id}).first()
    if row is None or not (row[0].portal_access and row[0].session_epoch == epoch):
        return None
    return row[0], row[1]


# Built once: a statement's construction costs about as much as running it through SQLAlchemy's compiled cache.
_SIGNED_IN = select(Contact, terms_to_sign_expr(Contact.client_id)).where(Contact.id == bindparam("contact_id"))
