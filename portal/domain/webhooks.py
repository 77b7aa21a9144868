"""Outbound webhooks: the events the portal announces, how each request is signed, and when a failed delivery is
tried again. Pure standard library; `now` is an argument.

Signature (the scheme Stripe uses, so receivers can reuse code they already have):

    Portal-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(endpoint secret, "<t>.<raw body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw request body exactly as received, compares it
in constant time, and refuses a timestamp more than five minutes away from its clock (a replayed request).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from .errors import DomainError

SIGNATURE_HEADER = "Portal-Signature"
EVENT_ID_HEADER = "Portal-Event-Id"
TOLERANCE_SECONDS = 300
TIMEOUT_SECONDS = 2.0  # a slow receiver must never hold up run-due
#: Waits before the 2nd, 3rd ... try; after the last, the delivery is given up (the log shows it; "resend" is there).
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=6), timedelta(hours=12), timedelta(hours=24))
MAX_ATTEMPTS = len(BACKOFF) + 1


class EventType(StrEnum):
    STANDING_CHANGED = "standing.changed"
    PAYMENT_RECEIVED = "payment.received"
    AGREEMENT_SIGNED = "agreement.signed"
    PLAN_DEFAULTED = "plan.defaulted"
    ORDER_CLEARED = "order.cleared"  # an equipment order's deposit settled: the MSP may buy the equipment


class WebhookDeliveryStatus(StrEnum):
    """Where one delivery of one event to one endpoint stands."""

    PENDING = "pending"  # waiting for its next try
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # every try failed; only "resend" sends it again


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: datetime, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does (the tests' receiver does the same independently)."""
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


def next_attempt_at(attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed tries; None once they are used up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + BACKOFF[attempts - 1]


def acknowledged(status_code: int) -> bool:
    return 200 <= status_code < 300


def check_url(url: str) -> str:
    """An endpoint URL the admin may register: http(s) with a host, at most 500 characters."""
    url = (url or "").strip()
    if len(url) > 500:
        raise DomainError("The URL is limited to 500 characters.")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number from 0 to 65535 raises ValueError
    except ValueError:  # e.g. an unclosed or invalid [IPv6] host
        raise DomainError("Enter a full http:// or https:// URL.") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DomainError("Enter a full http:// or https:// URL.")
    return url
