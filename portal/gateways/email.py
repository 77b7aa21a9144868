"""Outgoing email. With ``PORTAL_SMTP_URL`` messages go to that server; without it they are written as .eml
files to the instance outbox (listed on the admin Outbox page), so the demo and a fresh install never lose one.

Services send through ``portal.services.mail`` (which adds the MSP's name and addresses); they never import
smtplib. The web layer builds the one ``Mailer`` at startup (portal/web/runtime.py).
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from portal.clock import now

RETRY_DELAYS = (0.5, 2.0)  # seconds between attempts for temporary failures (4xx replies, dropped connections)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


@dataclass(frozen=True)
class Delivery:
    """What happened to one message. ``ok`` means the SMTP server (or the outbox) accepted it."""

    ok: bool
    message_id: str
    error: str = ""
    transport: str = "outbox"
    recipients: tuple[str, ...] = field(default_factory=tuple)


class Outbox:
    def __init__(self, folder: Path):
        self.folder = folder

    def deliver(self, message: EmailMessage) -> Delivery:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = now().strftime("%Y%m%dT%H%M%S%f")
        token = message["Message-ID"].strip("<>").split("@")[0][-12:]
        (self.folder / f"{stamp}-{token}.eml").write_bytes(bytes(message))
        return Delivery(True, message["Message-ID"], transport="outbox", recipients=_recipients(message))


class Smtp:
    """smtp://user:pass@host:587 (STARTTLS when offered; ?starttls=require to insist) or smtps://host:465."""

    def __init__(self, url: str, timeout: float = 20.0):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("PORTAL_SMTP_URL must start with smtp:// or smtps://")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.require_starttls = "starttls=require" in (parts.query or "")
        self.timeout = timeout

    def deliver(self, message: EmailMessage) -> Delivery:
        last_error = ""
        for delay in (*RETRY_DELAYS, None):
            try:
                self._send_once(message)
                return Delivery(True, message["Message-ID"], transport="smtp", recipients=_recipients(message))
            except smtplib.SMTPResponseException as e:
                detail = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else e.smtp_error
                last_error = f"{e.smtp_code} {detail}"
                if not 400 <= e.smtp_code < 500:
                    break  # a permanent refusal will not change on retry
            except smtplib.SMTPRecipientsRefused as e:
                last_error = "; ".join(f"{rcpt}: {code} {msg!r}" for rcpt, (code, msg) in e.recipients.items())
                break
            except (OSError, smtplib.SMTPException) as e:
                last_error = f"{type(e).__name__}: {e}"
            if delay is not None:
                time.sleep(delay)
        return Delivery(False, message["Message-ID"], error=last_error, transport="smtp",
                        recipients=_recipients(message))

    def _send_once(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.implicit_tls:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with conn:
            conn.ehlo()
            if not self.implicit_tls and (conn.has_extn("starttls") or self.require_starttls):
                conn.starttls(context=context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
            conn.send_message(message)


class Transport(Protocol):
    def deliver(self, message: EmailMessage) -> Delivery: ...


def transport_from_config(smtp_url: str | None, outbox: Path) -> Transport:
    return Smtp(smtp_url) if smtp_url else Outbox(outbox)


@dataclass(frozen=True)
class Sender:
    """Who a message is from, per the MSP's settings (a service looks them up)."""

    name: str
    email: str | None = None  # the MSP's billing address; PORTAL_MAIL_FROM wins over it
    reply_to: str | None = None


class Mailer:
    """Renders templates/email/<template>.txt and .html and delivers the message through one transport."""

    def __init__(self, transport: Transport, *, render: Callable[..., str], host: str, mail_from: str | None = None):
        self.transport = transport
        self._render = render
        self.host = host
        self.mail_from = mail_from

    def render(self, template: str, **context) -> tuple[str, str]:
        return self._render(f"email/{template}.txt", **context), self._render(f"email/{template}.html", **context)

    def build(self, *, sender: Sender, to: Sequence[str], subject: str, text: str, html: str | None = None,
              attachments: Sequence[Attachment] = (), headers: dict[str, str] | None = None) -> EmailMessage:
        address = self.mail_from or sender.email or f"billing@{self.host}"
        message = EmailMessage()
        message["From"] = formataddr((sender.name, parseaddr(address)[1]))
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = now().strftime("%a, %d %b %Y %H:%M:%S +0000")
        message["Message-ID"] = make_msgid(domain=self.host)
        if sender.reply_to:
            message["Reply-To"] = sender.reply_to
        for key, value in (headers or {}).items():
            message[key] = value
        message.set_content(text)
        if html:
            message.add_alternative(html, subtype="html")
        for a in attachments:
            message.add_attachment(a.content, maintype=a.maintype, subtype=a.subtype, filename=a.filename)
        return message

    def deliver(self, message: EmailMessage) -> Delivery:
        """Never raises for a delivery problem: the caller records the outcome."""
        try:
            return self.transport.deliver(message)
        except OSError as e:  # the outbox folder is unwritable: report it like an SMTP failure
            return Delivery(False, message["Message-ID"], error=str(e), recipients=_recipients(message))


def _recipients(message: EmailMessage) -> tuple[str, ...]:
    return tuple(a.strip() for a in (message["To"] or "").split(",") if a.strip())


__all__ = ["Attachment", "Delivery", "Mailer", "Outbox", "Sender", "Smtp", "Transport", "transport_from_config"]
