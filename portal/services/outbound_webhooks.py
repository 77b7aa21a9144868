"""Outbound webhooks: endpoints the admin registers, events the portal announces, and their delivery.

Other areas announce a fact with ``emit(session, event_type, payload, client=..., source_key=...)`` inside their own
transaction (it flushes, never commits): one ``OutboundEvent`` and one pending ``WebhookDelivery`` per active endpoint
subscribed to the type. ``source_key`` names the fact ("payment:42"); a second emit with the same key is ignored,
so a fact noticed twice (by the service that made it and by the sweep below) is announced once.

Events: standing.changed (services.standing.record_changes), payment.received, agreement.signed, plan.defaulted and
order.cleared (noticed by ``discover`` from run-due with the keys payment:<id>, agreement:<id>, plan-defaulted:<id>,
order-cleared:<id>).

``deliver_due`` runs from run-due: each POST has a short timeout and the step a time budget, so a slow or dead
receiver never holds up run-due; a failure is tried again later with backoff (domain.webhooks.BACKOFF).
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, cast, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain import webhooks as W
from portal.domain.errors import DomainError
from portal.domain.evidence import AgreementStatus
from portal.domain.orders import OrderStatus
from portal.domain.payments import PaymentStatus
from portal.domain.plans import PlanStatus
from portal.domain.webhooks import EventType, WebhookDeliveryStatus
from portal.models import (
    Agreement,
    Client,
    EquipmentOrder,
    OutboundEvent,
    Payment,
    PaymentPlan,
    WebhookDelivery,
    WebhookEndpoint,
)

from .errors import NotFound
from .locking import begin_write
from .reports import Page, paginate

CLAIM_SECONDS = 60  # a node sending a delivery holds it this long; a node that died lets go by itself
STEP_BUDGET_SECONDS = 20.0  # what one run-due spends on deliveries at most; the rest wait for the next run
USER_AGENT = "MSP-Portal-Webhooks/1"


# --- endpoints -------------------------------------------------------------------------------------------------------

def _check_events(events: list[str]) -> str:
    chosen = [e for e in EventType if e.value in set(events)]
    if not chosen or len(chosen) != len(set(events)):
        raise DomainError("Choose at least one event, from the list.")
    return " ".join(chosen)


def add_endpoint(session: Session, *, url: str, events: list[str], description: str = "") -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=W.check_url(url), events=_check_events(events),
                               description=" ".join(description.split())[:200],
                               secret="whsec_" + secrets.token_urlsafe(24), active=True, created_at=now())
    session.add(endpoint)
    session.commit()
    return endpoint


def endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    found = session.get(WebhookEndpoint, endpoint_id)
    if found is None:
        raise NotFound()
    return found


def set_active(session: Session, endpoint_id: int, active: bool) -> WebhookEndpoint:
    row = endpoint(session, endpoint_id)
    row.active = active
    row.disabled_at = None if active else now()
    session.commit()
    return row


def endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


# --- announcing ------------------------------------------------------------------------------------------------------

def client_ref(client: Client) -> dict:
    return {"id": client.id, "external_id": client.external_id, "name": client.legal_name}


def emit(session: Session, event_type: EventType | str, payload: dict, *, client: Client | None = None,
         source_key: str | None = None) -> OutboundEvent | None:
    """Announce ``event_type`` with ``payload`` (the event's ``data``; ``client`` is added as data.client) to every
    active endpoint subscribed to it. Flushes in the caller's transaction; returns None when ``source_key`` was
    already announced."""
    kind = EventType(event_type)
    if source_key is not None and session.scalar(
            select(OutboundEvent.id).where(OutboundEvent.source_key == source_key)) is not None:
        return None
    stamp = now()
    event_id = "evt_" + secrets.token_hex(12)
    data = {**({"client": client_ref(client)} if client is not None else {}), **payload}
    body = json.dumps({"id": event_id, "type": kind.value, "created": int(stamp.timestamp()), "data": data},
                      separators=(",", ":"), sort_keys=True, default=str)
    event = OutboundEvent(event_id=event_id, type=kind.value, source_key=source_key,
                          client_id=client.id if client is not None else None, payload=body, created_at=stamp)
    try:
        with session.begin_nested():  # another node announcing the same fact at the same moment: theirs stands
            session.add(event)
            session.flush()
    except IntegrityError:
        return None
    for endpoint in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True))):
        if kind.value in endpoint.events.split():
            session.add(WebhookDelivery(endpoint_id=endpoint.id, event_id=event.id, event_type=kind.value,
                                        status=WebhookDeliveryStatus.PENDING, attempts=0, next_attempt_at=stamp,
                                        created_at=stamp))
    session.flush()
    return event


def _subscribed_since(session: Session, kind: EventType) -> datetime | None:
    """When the first active endpoint that wants ``kind`` was added (facts older than that are not announced)."""
    rows = session.execute(select(WebhookEndpoint.created_at, WebhookEndpoint.events)
                           .where(WebhookEndpoint.active.is_(True))).all()
    times = [created for created, events in rows if kind.value in events.split()]
    return min(times) if times else None


def discover(session: Session) -> int:
    """Announce payments received, agreements signed, plans defaulted and equipment orders cleared that no one
    announced yet (only those since an endpoint wanted them). Returns how many events were emitted; commits."""
    emitted = 0
    begin_write(session)
    announced = select(OutboundEvent.source_key).where(OutboundEvent.source_key.is_not(None))

    since = _subscribed_since(session, EventType.PAYMENT_RECEIVED)
    if since is not None:
        key = literal("payment:") + cast(Payment.id, String)
        for payment in session.scalars(select(Payment).where(Payment.status == PaymentStatus.SUCCEEDED,
                                                             Payment.created_at >= since,
                                                             key.not_in(announced)).order_by(Payment.id)):
            emitted += emit(session, EventType.PAYMENT_RECEIVED, {"payment": {
                "id": payment.id, "amount_cents": payment.amount_cents, "currency": payment.currency,
                "method": payment.method, "received_on": payment.received_on.isoformat(),
                "reference": payment.reference}}, client=payment.client, source_key=f"payment:{payment.id}") is not None

    since = _subscribed_since(session, EventType.AGREEMENT_SIGNED)
    if since is not None:
        key = literal("agreement:") + cast(Agreement.id, String)
        for agreement in session.scalars(select(Agreement).where(
                Agreement.signed_at.is_not(None), Agreement.signed_at >= since,
                Agreement.status.in_((AgreementStatus.SIGNED, AgreementStatus.SUPERSEDED)),
                key.not_in(announced)).order_by(Agreement.id)):
            client = session.get(Client, agreement.client_id)
            emitted += emit(session, EventType.AGREEMENT_SIGNED, {"agreement": {
                "reference": agreement.reference, "kind": agreement.kind,
                "signed_at": agreement.signed_at.isoformat()}}, client=client,
                source_key=f"agreement:{agreement.id}") is not None

    since = _subscribed_since(session, EventType.PLAN_DEFAULTED)
    if since is not None:
        key = literal("plan-defaulted:") + cast(PaymentPlan.id, String)
        for plan in session.scalars(select(PaymentPlan).where(
                PaymentPlan.status == PlanStatus.DEFAULTED,
                or_(PaymentPlan.defaulted_at.is_(None), PaymentPlan.defaulted_at >= since),
                key.not_in(announced)).order_by(PaymentPlan.id)):
            emitted += emit(session, EventType.PLAN_DEFAULTED, {"plan": {
                "reference": plan.reference, "currency": plan.currency,
                "defaulted_at": plan.defaulted_at.isoformat() if plan.defaulted_at else None}},
                client=plan.client, source_key=f"plan-defaulted:{plan.id}") is not None

    since = _subscribed_since(session, EventType.ORDER_CLEARED)
    if since is not None:  # the PSA's purchasing may place the order now
        key = literal("order-cleared:") + cast(EquipmentOrder.id, String)
        for order in session.scalars(select(EquipmentOrder).where(
                EquipmentOrder.status == OrderStatus.CLEARED, EquipmentOrder.cleared_at >= since,
                key.not_in(announced)).order_by(EquipmentOrder.id)):
            emitted += emit(session, EventType.ORDER_CLEARED, {"order": {
                "reference": order.reference, "quote_reference": order.quote_reference, "currency": order.currency,
                "total_cents": order.total_cents, "deposit_cents": order.deposit_cents,
                "cleared_at": order.cleared_at.isoformat()}},
                client=order.client, source_key=f"order-cleared:{order.id}") is not None
    session.commit()
    return emitted


# --- delivering ------------------------------------------------------------------------------------------------------

@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # tries that failed this run (tried again later, or given up)
    left: int = 0  # due but not tried this run (the time budget ran out)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is not an acknowledgement: report the 3xx
        return None


# Direct connections (no proxy from the environment) and no redirects: the receiver at this URL must answer itself.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str]:
    # the URL passed domain.webhooks.check_url (http or https only) when the admin registered it
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(1024)
            return response.status, ""
    except urllib.error.HTTPError as e:
        return e.code, f"HTTP {e.code}"
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        return None, f"{type(reason).__name__}: {reason}"[:500]


def _send(session: Session, delivery: WebhookDelivery, timeout: float) -> bool:
    """One try; records the outcome and commits. True when acknowledged."""
    endpoint, event = delivery.endpoint, delivery.event
    body = event.payload.encode()
    stamp = now()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, W.EVENT_ID_HEADER: event.event_id,
               W.SIGNATURE_HEADER: W.sign(endpoint.secret, int(stamp.timestamp()), body)}
    code, error = _post(endpoint.url, body, headers, timeout)
    finished = now()
    # a fresh write transaction for the outcome (begin_write ends the reads above): on SQLite a read transaction
    # cannot become a write once another request wrote while the endpoint answered ("database is locked")
    begin_write(session)
    delivery.attempts += 1
    delivery.last_attempt_at = finished
    delivery.last_status = code
    delivery.claimed_until = None
    if code is not None and W.acknowledged(code):
        delivery.status = WebhookDeliveryStatus.DELIVERED
        delivery.delivered_at = finished
        delivery.next_attempt_at = None
        delivery.last_error = ""
    else:
        delivery.last_error = error or f"HTTP {code}"
        delivery.next_attempt_at = W.next_attempt_at(delivery.attempts, finished)
        if delivery.next_attempt_at is None:
            delivery.status = WebhookDeliveryStatus.FAILED
    session.commit()
    return delivery.status == WebhookDeliveryStatus.DELIVERED


def _claim(session: Session, limit: int) -> list[int]:
    """Due deliveries this node may send, stamped claimed so another node running run-due skips them."""
    begin_write(session)
    stamp = now()
    ids = list(session.scalars(
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.status == WebhookDeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= stamp,
               or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < stamp),
               WebhookEndpoint.active.is_(True))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)))
    if ids:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                        .values(claimed_until=stamp + timedelta(seconds=CLAIM_SECONDS)))
    session.commit()
    return ids


def deliver_due(session: Session, *, timeout: float = W.TIMEOUT_SECONDS, budget: float = STEP_BUDGET_SECONDS,
                batch: int = 50) -> DeliveryReport:
    report = DeliveryReport()
    started = time.monotonic()
    unreachable: set[int] = set()  # endpoints that did not answer this run: their other deliveries wait
    while True:
        ids = _claim(session, batch)
        if not ids:
            return report
        for n, delivery_id in enumerate(ids):
            if time.monotonic() - started > budget:
                _release(session, ids[n:])
                report.left += len(ids) - n
                return report
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery.endpoint_id in unreachable:  # stays claimed a minute: the next run tries it
                report.left += 1
                continue
            if _send(session, delivery, timeout):
                report.delivered += 1
            else:
                report.failed += 1
                if delivery.last_status is None:
                    unreachable.add(delivery.endpoint_id)
        if len(ids) < batch:
            return report


def _release(session: Session, ids: list[int]) -> None:
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(claimed_until=None))
    session.commit()


def resend(session: Session, delivery_id: int, *, timeout: float = W.TIMEOUT_SECONDS) -> WebhookDelivery:
    """The admin's "resend": the same event (same id and body, newly signed) tried now; the backoff starts over.

    Claimed like run-due's sends (``claimed_until``), in one conditional update: while a node is sending it (or a
    resend a moment ago, a double click) it is refused and nothing is sent, so the receiver never gets the same
    delivery twice at once; and run-due leaves a delivery alone while a resend holds it."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound()
    if not delivery.endpoint.active:  # the admin was told nothing goes to a disabled endpoint until it is enabled
        raise DomainError(f"{delivery.endpoint.url} is disabled: enable it first to resend to it.")
    begin_write(session)
    stamp = now()
    claimed = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id,
               or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < stamp))
        .values(status=WebhookDeliveryStatus.PENDING, attempts=0, next_attempt_at=stamp,
                claimed_until=stamp + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        session.rollback()
        raise DomainError("This event is being sent right now (by run-due or another resend). "
                          "The delivery log shows the outcome in a minute.")
    session.commit()
    session.refresh(delivery)
    _send(session, delivery, timeout)
    return delivery


# --- the log ---------------------------------------------------------------------------------------------------------

def delivery_log(session: Session, *, page: int = 1, per_page: int = 50, endpoint_id: int | None = None) -> Page:
    """Newest first; ``endpoint_id`` narrows it to one endpoint."""
    where = [WebhookDelivery.endpoint_id == endpoint_id] if endpoint_id else []
    query = (select(WebhookDelivery)  # each row names its event and endpoint: read with the page, not one by one
             .options(selectinload(WebhookDelivery.event), selectinload(WebhookDelivery.endpoint))
             .where(*where).order_by(WebhookDelivery.id.desc()))
    found = paginate(session, query, page, per_page)
    return found.with_items([row for (row,) in found.items])
