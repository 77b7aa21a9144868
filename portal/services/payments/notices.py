"""Emails about online payments: the receipt when money arrives, a notice when a payment fails after the client
left the page (a bank debit returned days later). Sent after the payment is booked. Nothing here ever raises into
the caller: a refused email, or a failure to note that it went, is logged and left for reconciliation to retry
(``reconciliation.finish``), because the client has paid whatever happens to the email."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.money import format_money
from portal.domain.payments import AttemptOrigin
from portal.gateways.email import Delivery
from portal.models import ChargeAttempt, Contact

from .. import mail
from ..autopay import incentives
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from .locks import end_reads
from .rate_limit import Turns

log = logging.getLogger(__name__)


def recipients(attempt: ChargeAttempt) -> list[str]:
    """The contact who paid; when that contact is gone, the client's billing contacts."""
    payer = attempt.request.contact
    if payer is not None and payer.client_id == attempt.request.client_id:
        return [payer.email]
    contacts: list[Contact] = attempt.request.client.contacts
    return [c.email for c in contacts if c.is_billing]


def describe_method(attempt: ChargeAttempt) -> str:
    """'Visa credit card ending 4242' / 'bank account ending 6789'."""
    if attempt.method_type == "us_bank_account":
        return f"bank account ending {attempt.last4 or '????'}"
    brand = (attempt.brand or "card").capitalize()
    funding = f" {attempt.card_funding}" if attempt.card_funding in ("credit", "debit", "prepaid") else ""
    return f"{brand}{funding} card ending {attempt.last4 or '????'}"


def _context(session: Session, rt: Runtime, attempt: ChargeAttempt) -> dict:
    return {
        "msp": get_settings(session),
        "client": attempt.request.client,
        "attempt": attempt,
        "items": [(item.invoice.number, item.amount_cents) for item in attempt.request.items],
        "method": describe_method(attempt),
        "portal_url": rt.url("client.dashboard"),
        "discounts": incentives.discounts_for_attempt(session, attempt.id),  # autopay's, each its own line
    }


def send_receipt(session: Session, rt: Runtime, attempt: ChargeAttempt) -> None:
    _send(session, rt, attempt, template="receipt", stamp="receipt_sent_at",
          subject=lambda: f"Payment received: {_money(attempt)} to {get_settings(session).name}")


def send_failure_notice(session: Session, rt: Runtime, attempt: ChargeAttempt) -> None:
    if attempt.origin == AttemptOrigin.AUTOPAY:
        return  # autopay's decline handling tells the client what happens next (a retry, the fallback, a link)
    _send(session, rt, attempt, template="payment_failed", stamp="failure_notice_sent_at",
          subject=lambda: f"Your payment of {_money(attempt)} to {get_settings(session).name} did not go through")


def _money(attempt: ChargeAttempt) -> str:
    return format_money(attempt.charged_cents, attempt.currency)


def _send(session: Session, rt: Runtime, attempt: ChargeAttempt, *, template: str, stamp: str,
          subject: Callable[[], str]) -> None:
    try:
        to = recipients(attempt)
        if not to:
            log.warning("no one to email about charge attempt %s", attempt.id)
            return
        delivery = deliver_off_turn(session, rt, to=to, subject=subject(), template=template,
                                    context=_context(session, rt, attempt))
    except SQLAlchemyError:
        session.rollback()
        log.exception("%s email for charge attempt %s not sent; reconciliation retries it", template, attempt.id)
        return
    if not delivery.ok:
        log.error("%s email for charge attempt %s was refused: %s", template, attempt.id, delivery.error)
        return
    note_sent(session, attempt, stamp, template)


def deliver_off_turn(session: Session, rt: Runtime, *, to: list[str], subject: str, template: str,
                     context: dict) -> Delivery:
    """Compose the email, end the reads it was built from, then hand it to the relay with the database turn given
    back: in run-due's charging threads the relay's wait is not a database turn. The caller rolls back on a
    database error while composing."""
    message = mail.compose(session, rt, to=to, subject=subject, template=template, context=context)
    end_reads(session)
    with Turns.given_back():
        return mail.deliver(rt, message)


def note_sent(session: Session, attempt: ChargeAttempt, stamp: str, template: str) -> None:
    """Stamp the attempt (``stamp``: the column saying the email went). Logged, never raised: the email went; at
    worst reconciliation sends it again, which beats an error page after paying."""
    try:
        # a fresh write transaction (begin_write ends the reads the email was built from): on SQLite a read
        # transaction cannot become a write once another request wrote while the email went out ("database is
        # locked"), and the email would go again
        begin_write(session)
        setattr(attempt, stamp, now())
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        log.exception("could not note the %s email for charge attempt %s", template, attempt.id)
