"""Sending email on the MSP's behalf: its name, address and reply-to come from its settings."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

from sqlalchemy.orm import Session

from portal.gateways.email import Attachment, Delivery, Sender

from .runtime import Runtime
from .settings import get_settings


def sender(session: Session) -> Sender:
    settings = get_settings(session)
    return Sender(name=settings.name, email=settings.email or None, reply_to=settings.reply_to or None)


def send(session: Session, rt: Runtime, *, to: Sequence[str], subject: str, template: str, context: dict,
         attachments: Sequence[Attachment] = (), headers: dict[str, str] | None = None) -> Delivery:
    """Render templates/email/<template>.{txt,html} and deliver it. Never raises for a delivery problem."""
    return deliver(rt, compose(session, rt, to=to, subject=subject, template=template, context=context,
                               attachments=attachments, headers=headers))


def compose(session: Session, rt: Runtime, *, to: Sequence[str], subject: str, template: str, context: dict,
            attachments: Sequence[Attachment] = (), headers: dict[str, str] | None = None) -> EmailMessage:
    """The message ``send`` would deliver; what it needs from the database is read here, so a caller can end its
    transaction before ``deliver`` waits for the mail relay."""
    text, html = rt.mailer.render(template, **context)
    return rt.mailer.build(sender=sender(session), to=to, subject=subject, text=text, html=html,
                           attachments=attachments, headers=headers)


def deliver(rt: Runtime, message: EmailMessage) -> Delivery:
    return rt.mailer.deliver(message)
