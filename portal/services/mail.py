"""Sending email on the MSP's behalf: its name, address and reply-to come from its settings."""

from __future__ import annotations

from collections.abc import Sequence

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
    return rt.mailer.send(sender=sender(session), to=to, subject=subject, template=template, context=context,
                          attachments=attachments, headers=headers)
