"""Gateway webhooks, already verified by the gateway adapter: store each event once, then act on it.

The event row and its effects commit together, so a redelivered event (same id) finds its row and does nothing,
and an event that failed half-way is not stored and will be processed when the gateway retries. Events carry the
object's full current state and every handler moves things only forward, so any order is fine.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.gateways.payments import WebhookEvent
from portal.models import ChargeAttempt
from portal.models import WebhookEvent as StoredEvent

from . import online_payments, online_refunds

log = logging.getLogger(__name__)

CHARGE_EVENTS = frozenset({
    "payment_intent.processing", "payment_intent.succeeded", "payment_intent.payment_failed",
    "payment_intent.canceled", "payment_intent.requires_action",
})


def handle_event(session: Session, gateway_name: str, event: WebhookEvent, payload: bytes = b"") -> str:
    """Process one verified event exactly once; returns what was done (for the log and the response)."""
    stored = StoredEvent(gateway=gateway_name, event_id=event.id, type=event.type, object_id=event.object_id,
                         event_created_at=event.created, received_at=now())
    session.add(stored)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return "duplicate: already processed"
    try:
        outcome = _dispatch(session, event, payload)
    except Exception:
        session.rollback()  # not stored: the gateway retries and we try again
        raise
    # handlers commit their own changes (which included the event row); note what happened on it
    stored = session.merge(stored)
    stored.outcome = outcome[:255]
    session.commit()
    log.info("webhook %s %s: %s", event.type, event.id, outcome)
    return outcome


def _dispatch(session: Session, event: WebhookEvent, payload: bytes) -> str:
    if event.type in CHARGE_EVENTS and event.charge is not None:
        attempt = _attempt_for(session, event.charge.gateway_id, payload)
        if attempt is None:
            return "ignored: not a portal payment"
        attempt = online_payments.apply_result(session, attempt.id, event.charge, source="webhook")
        return f"charge attempt {attempt.id} is {attempt.status}"
    if event.type == "charge.refunded" and event.refund is not None:
        return online_refunds.record_gateway_refund(session, event.refund)
    if event.type.startswith("charge.dispute.") and event.dispute is not None:
        return online_refunds.record_dispute(session, event.dispute)
    return "ignored: event type not used"


def _attempt_for(session: Session, gateway_id: str | None, payload: bytes) -> ChargeAttempt | None:
    """By the gateway's id; failing that by our attempt id in the charge's metadata, which is how an event that
    beats the paying browser's own request back (the attempt has no gateway id yet) still finds its attempt."""
    if gateway_id:
        attempt = session.scalar(select(ChargeAttempt).where(ChargeAttempt.gateway_id == gateway_id))
        if attempt is not None:
            return attempt
    attempt_id, key = _metadata_reference(payload)
    if attempt_id is None:
        return None
    attempt = session.get(ChargeAttempt, attempt_id)
    # the key's random part proves the charge is this install's attempt, not another one's sharing the account
    if attempt is None or attempt.idempotency_key != key or (attempt.gateway_id and attempt.gateway_id != gateway_id):
        return None
    return attempt


def _metadata_reference(payload: bytes) -> tuple[int | None, str | None]:
    try:
        metadata = json.loads(payload)["data"]["object"]["metadata"]
        value, key = metadata["portal_charge_attempt"], metadata["portal_charge_key"]
    except (ValueError, KeyError, TypeError):
        return None, None
    if not (isinstance(value, str) and value.isdigit() and isinstance(key, str)):
        return None, None
    return int(value), key
