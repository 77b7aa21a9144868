"""Client standing (overrides and the last standing announced), the help-desk API's tokens, and outbound webhooks
(endpoints, the events the portal announced, and each event's delivery to each endpoint)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.webhooks import WebhookDeliveryStatus

from .base import Base, Cents
from .core import Client, StaffUser


class StandingOverride(Base):
    """Staff set a client's standing by hand until ``ends_on`` (inclusive), with a recorded reason. The newest one
    not ended early is the one that applies; rows are never deleted (ending early stamps ``ended_at``)."""

    __tablename__ = "standing_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    standing: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    ends_on: Mapped[date] = mapped_column(Date)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    client: Mapped[Client] = relationship()
    staff: Mapped[StaffUser | None] = relationship(foreign_keys=[staff_id])


class ClientStanding(Base):
    """The standing last announced for a client: run-due compares the computed standing with it, and a difference is
    one change (recorded here and sent as one ``standing.changed`` event)."""

    __tablename__ = "client_standings"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    standing: Mapped[str] = mapped_column(String(10))
    since: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    to_lift_cents: Mapped[int] = mapped_column(Cents, default=0)


class ApiToken(Base):
    """A help-desk / PSA token. Only the SHA-256 of the secret is stored: the secret is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(200))  # space-separated scopes, e.g. "standing:read"
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(20))  # the secret's first characters, to tell tokens apart
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    created_by: Mapped[StaffUser | None] = relationship()


class WebhookEndpoint(Base):
    """A URL the portal POSTs events to. The signing secret is stored in clear because the portal signs with it
    (like Stripe, the admin can reveal it again)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[str] = mapped_column(Text)  # space-separated event types
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class OutboundEvent(Base):
    """An event the portal announced. ``source_key`` names what it is about ("payment:42") so the same fact is
    announced once however many times it is noticed."""

    __tablename__ = "outbound_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)  # evt_...: what receivers deduplicate on
    type: Mapped[str] = mapped_column(String(40))
    source_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    payload: Mapped[str] = mapped_column(Text)  # the JSON body sent, exactly
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event to one endpoint: tried from run-due with backoff until the endpoint answers 2xx."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbound_events.id"))
    event_type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default=WebhookDeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]  # a node sending it now; another node leaves it alone until then
    delivered_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)  # the HTTP status of the last answer
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]

    endpoint: Mapped[WebhookEndpoint] = relationship()
    event: Mapped[OutboundEvent] = relationship()
