"""Autopay's emails to the client: a declined charge (what happened, what happens next, links to fix it), the
pre-charge notice, and the expiring-card reminder. Sending never raises into `run-due`: a refused email is logged
and the run goes on (the notice rows say what was claimed and whether it went)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from portal.clock import today
from portal.domain import autopay as policy
from portal.domain import declines
from portal.models import AutopayCharge, ChargeAttempt, Client, Contact, Invoice, SavedPaymentMethod

from ..autopay.methods import label
from ..runtime import Runtime
from ..settings import get_settings
from .notices import deliver_off_turn, note_sent, recipients

log = logging.getLogger(__name__)


def billing_emails(client: Client) -> list[str]:
    contacts: list[Contact] = client.contacts
    return [c.email for c in contacts if c.is_billing and c.email]


def update_method_url(rt: Runtime) -> str:
    """Where the client updates the saved method (the autopay pages)."""
    return rt.url("autopay.methods")


def send_decline(session: Session, rt: Runtime, charge_id: int, decline: declines.Decline, *,
                 confirm_url: str | None) -> bool:
    from .autopay_charging import plan_client
    from .autopay_setup import enrolled_clients

    row = session.get(AutopayCharge, charge_id)
    assert row is not None
    attempt = session.get(ChargeAttempt, row.attempt_id)
    invoice = session.get(Invoice, row.invoice_id)
    assert attempt is not None and invoice is not None
    setups = enrolled_clients(session, rt.gateway.name, client_ids=[row.client_id])
    plan = next((p for p in plan_client(session, setups[0], today()) if p.invoice_id == invoice.id), None) \
        if setups else None
    context = {
        "msp": get_settings(session), "client": invoice.client, "invoice": invoice, "attempt": attempt,
        "charge": row, "decline": decline.kind.value, "method": _method_label(session, row),
        "next_step": _next_step(plan, decline), "update_url": update_method_url(rt), "confirm_url": confirm_url,
        "portal_url": rt.url("client.dashboard"),
    }
    subject = (f"Please approve your payment to {context['msp'].name}" if confirm_url else
               f"Your automatic payment to {context['msp'].name} did not go through")
    sent = _send(session, rt, recipients(attempt), subject, "autopay_declined", context)
    if sent:
        note_sent(session, attempt, "failure_notice_sent_at", "autopay_declined")
    return sent


def _method_label(session: Session, row: AutopayCharge) -> str:
    method = session.scalar(select(SavedPaymentMethod).where(SavedPaymentMethod.client_id == row.client_id,
                                                             SavedPaymentMethod.method_id == row.method_id))
    return label(method) if method is not None else "your saved payment method"


def _next_step(plan, decline: declines.Decline) -> dict:
    """What autopay does next, in the words of the email: a retry date, the fallback method, or nothing more."""
    if decline.kind is declines.AUTHENTICATION_REQUIRED:
        return {"kind": "approve"}
    if plan is None:
        return {"kind": "stopped"}
    if plan.decision.skip is policy.Skip.RETRY_SCHEDULED and plan.decision.charge_on:
        return {"kind": "retry", "on": plan.decision.charge_on}
    if plan.reason is None and plan.method is not None:
        return {"kind": "fallback", "method": plan.method.label}
    return {"kind": "stopped"}


def send_pre_charge(session: Session, rt: Runtime, client: Client, lines: Sequence[tuple[Invoice, int, date]],
                    method_label: str) -> bool:
    """One email per client listing each invoice, the amount and the day it will be charged."""
    context = {"msp": get_settings(session), "client": client, "lines": lines, "method": method_label,
               "portal_url": rt.url("client.dashboard"), "update_url": update_method_url(rt)}
    return _send(session, rt, billing_emails(client), f"Upcoming automatic payment to {context['msp'].name}",
                 "autopay_pre_charge", context)


def send_card_expiring(session: Session, rt: Runtime, method: SavedPaymentMethod) -> bool:
    context = {"msp": get_settings(session), "client": method.client, "method": method, "label": label(method),
               "update_url": update_method_url(rt)}
    return _send(session, rt, billing_emails(method.client), f"Your card on file with {context['msp'].name} "
                 "expires soon", "autopay_card_expiring", context)


def _send(session: Session, rt: Runtime, to: list[str], subject: str, template: str, context: dict) -> bool:
    if not to:
        log.warning("%s: no billing contact to email", template)
        return False
    try:
        delivery = deliver_off_turn(session, rt, to=to, subject=subject, template=template, context=context)
    except SQLAlchemyError:
        session.rollback()
        log.exception("%s email not sent", template)
        return False
    if not delivery.ok:
        log.error("%s email refused: %s", template, delivery.error)
    return delivery.ok
