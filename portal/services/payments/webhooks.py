"""Gateway webhooks, already verified by the gateway adapter: store each event once, then act on it.

The event row is stored *after* its effects: a redelivered event (same id) finds its row and does nothing, and an
event whose handling failed is not stored and is handled again when the gateway retries. Handling an event twice
(two deliveries at once) is harmless: events carry the object's full current state, every handler moves things only
forward under locks, and the second event row is refused by its unique key. Handlers own their transactions.
"""

from __future__ import annotations

import json
import logging
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.gateways.payments import WebhookEvent
from portal.models import ChargeAttempt
from portal.models import WebhookEvent as StoredEvent

from ..locking import begin_write
from ..runtime import Runtime
from .disputes import record_dispute
from .refunds import record_gateway_refund
from .results import apply_result

log = logging.getLogger(__name__)

CHARGE_EVENTS = frozenset({
    "payment_intent.processing", "payment_intent.succeeded", "payment_intent.payment_failed",
    "payment_intent.canceled", "payment_intent.requires_action",
})


def handle_event(session: Session, rt: Runtime, event: WebhookEvent, payload: bytes = b"") -> str:
    """Process one verified event once; returns what was done (for the log and the response)."""
    gateway_name = rt.gateway.name
    seen = select(StoredEvent.id).where(StoredEvent.gateway == gateway_name, StoredEvent.event_id == event.id)
    if session.scalar(seen) is not None:
        return "duplicate: already processed"
    try:
        outcome = _dispatch(session, rt, event, payload)
    except Exception:
        session.rollback()  # not stored: the gateway retries and we try again
        raise
    begin_write(session)
    session.add(StoredEvent(gateway=gateway_name, event_id=event.id, type=event.type, object_id=event.object_id,
                            event_created_at=event.created, received_at=now(), outcome=outcome[:255]))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return "duplicate: processed by a delivery at the same time"
    log.info("webhook %s %s: %s", event.type, event.id, outcome)
    return outcome


def _dispatch(session: Session, rt: Runtime, event: WebhookEvent, payload: bytes) -> str:
    if event.type in CHARGE_EVENTS and event.charge is not None:
        attempt = _attempt_for(session, event.charge.gateway_id, payload)
        if attempt is None:
            return "ignored: not a portal payment"
        attempt = apply_result(session, rt, attempt.id, event.charge, source="webhook")
        return f"charge attempt {attempt.id} is {attempt.status}"
    if event.type == "charge.refunded" and event.refund is not None:
        return record_gateway_refund(session, event.refund)
    if event.type.startswith("charge.dispute.") and event.dispute is not None:
        return record_dispute(session, event.dispute)
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
    if not (isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value) and isinstance(key, str)):
        return None, None
    return int(value), key
