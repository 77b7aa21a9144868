"""Online payments: what a client chose to pay, each attempt to charge it, what the gateway told us since.

A ``ChargeAttempt`` row is committed before the gateway is called; its idempotency key comes from the row, and
the unique (request, attempt number) pair means a double-clicked or replayed form can never charge twice.
The ledger (payments, allocations, refunds in billing.py) only hears about money once the gateway confirms it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.payments import AttemptOrigin, AttemptStatus, GatewayRefundStatus, PaymentRequestStatus

from .base import Base, Cents
from .billing import Invoice, Payment, Refund
from .core import Client, Contact, StaffUser
from .links import InvoiceLink


class PaymentSettings(Base):
    """The MSP's online-payment choices; a single row (id 1). The surcharge is off (0%) until the MSP sets it."""

    __tablename__ = "payment_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    surcharge_percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    # Billing states (client.region codes, comma-separated) where card surcharges are not allowed.
    surcharge_blocked_regions: Mapped[str] = mapped_column(Text, default="")
    partial_minimum_cents: Mapped[int] = mapped_column(Cents, default=1000)
    updated_at: Mapped[datetime | None]


class GatewayCustomer(Base):
    """The gateway's customer for a client, created once and reused for every payment (and saved methods)."""

    __tablename__ = "gateway_customers"
    __table_args__ = (UniqueConstraint("client_id", "gateway"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    gateway: Mapped[str] = mapped_column(String(20))  # stripe | sandbox
    customer_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class PaymentRequest(Base):
    """A checkout: the invoices and amounts a client chose to pay together. Paid by one successful attempt."""

    __tablename__ = "payment_requests"
    __table_args__ = (
        UniqueConstraint("public_id"),
        Index("ix_payment_requests_client", "client_id", "id"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The unguessable name of this checkout in URLs and the pay form's one-time nonce.
    public_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    # Set when the client came from an emailed invoice link: that link must still be valid at every step.
    link_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_links.id", ondelete="SET NULL"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_cents: Mapped[int] = mapped_column(Cents)
    status: Mapped[str] = mapped_column(String(20), default=PaymentRequestStatus.OPEN)
    created_at: Mapped[datetime]

    client: Mapped[Client] = relationship()
    contact: Mapped[Contact | None] = relationship()
    link: Mapped[InvoiceLink | None] = relationship()
    items: Mapped[list[PaymentRequestItem]] = relationship(
        back_populates="request", order_by="PaymentRequestItem.id", cascade="all, delete-orphan"
    )
    attempts: Mapped[list[ChargeAttempt]] = relationship(back_populates="request",
                                                         order_by="ChargeAttempt.attempt_number")


class PaymentRequestItem(Base):
    __tablename__ = "payment_request_items"
    __table_args__ = (
        UniqueConstraint("request_id", "invoice_id"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("payment_requests.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Cents)

    request: Mapped[PaymentRequest] = relationship(back_populates="items")
    invoice: Mapped[Invoice] = relationship()


class ChargeAttempt(Base):
    """One try at charging a payment request. Written (and committed) before the gateway is called."""

    __tablename__ = "charge_attempts"
    __table_args__ = (
        UniqueConstraint("request_id", "attempt_number"),
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("payment_id"),
        Index("ix_charge_attempts_gateway_id", "gateway_id"),
        Index("ix_charge_attempts_status", "status", "created_at"),
        CheckConstraint("attempt_number > 0", name="attempt_number_positive"),
        CheckConstraint("charged_cents = amount_cents + surcharge_cents", name="charged_is_sum"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("payment_requests.id"))
    attempt_number: Mapped[int] = mapped_column(Integer)
    # "portal-charge-<id>-<random>": deterministic from the row once written; the random part keeps keys of two
    # installs (or a reset demo) sharing one Stripe account apart.
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_id: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[str] = mapped_column(String(255), default="")
    method_token: Mapped[str] = mapped_column(String(255))  # the confirmation token (or saved method), to replay
    # checkout: a confirmation token the client entered | autopay: a saved method charged with the client away |
    # confirm: a saved method the client approves on-session after autopay needed them. Replays send the same kind.
    origin: Mapped[str] = mapped_column(String(20), default=AttemptOrigin.CHECKOUT, server_default="checkout")
    # created | unknown | pending | requires_action | processing | succeeded | failed | canceled
    status: Mapped[str] = mapped_column(String(20), default=AttemptStatus.CREATED)
    method_type: Mapped[str] = mapped_column(String(20))  # card | us_bank_account
    card_funding: Mapped[str | None] = mapped_column(String(20))
    brand: Mapped[str | None] = mapped_column(String(30))
    last4: Mapped[str | None] = mapped_column(String(4))
    amount_cents: Mapped[int] = mapped_column(Cents)  # to the invoices
    # The card surcharge is its own line: not invoice money, never allocated, refunded in proportion.
    surcharge_cents: Mapped[int] = mapped_column(Cents, default=0)
    surcharge_percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    charged_cents: Mapped[int] = mapped_column(Cents)
    currency: Mapped[str] = mapped_column(String(3))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(Text)
    decline_code: Mapped[str | None] = mapped_column(String(100))  # the issuer's reason / NACHA return, for autopay
    next_action_url: Mapped[str | None] = mapped_column(Text)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
    receipt_sent_at: Mapped[datetime | None]
    failure_notice_sent_at: Mapped[datetime | None]

    request: Mapped[PaymentRequest] = relationship(back_populates="attempts")
    payment: Mapped[Payment | None] = relationship()
    refunds: Mapped[list[GatewayRefund]] = relationship(back_populates="attempt", order_by="GatewayRefund.id")
    disputes: Mapped[list[Dispute]] = relationship(back_populates="attempt", order_by="Dispute.id")


class GatewayRefund(Base):
    """Money sent back through the gateway, written before the gateway call (same idea as ChargeAttempt).

    ``amount_cents`` is invoice money (it becomes a ledger Refund); ``surcharge_cents`` is the matching part of
    the surcharge. A refund made in the gateway's own dashboard arrives by webhook with ``source`` "gateway".
    """

    __tablename__ = "gateway_refunds"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("form_nonce"),
        UniqueConstraint("gateway_refund_id"),
        CheckConstraint("amount_cents + surcharge_cents > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("charge_attempts.id"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))  # the ledger row, once it exists
    amount_cents: Mapped[int] = mapped_column(Cents)
    surcharge_cents: Mapped[int] = mapped_column(Cents, default=0)
    status: Mapped[str] = mapped_column(String(20), default=GatewayRefundStatus.REQUESTED)
    source: Mapped[str] = mapped_column(String(20), default="portal")  # portal | gateway
    reason: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    form_nonce: Mapped[str | None] = mapped_column(String(64))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]

    attempt: Mapped[ChargeAttempt] = relationship(back_populates="refunds")
    refund: Mapped[Refund | None] = relationship()
    requested_by: Mapped[StaffUser | None] = relationship()

    @property
    def gateway_cents(self) -> int:
        return self.amount_cents + self.surcharge_cents


class Dispute(Base):
    """A chargeback: the client's bank pulls the money back unless the MSP wins. Lost -> the ledger reverses it."""

    __tablename__ = "disputes"
    __table_args__ = (UniqueConstraint("dispute_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[str] = mapped_column(String(255))
    attempt_id: Mapped[int] = mapped_column(ForeignKey("charge_attempts.id"), index=True)
    status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(String(100), default="")
    amount_cents: Mapped[int] = mapped_column(Cents)  # as charged by the gateway (surcharge included)
    currency: Mapped[str] = mapped_column(String(3))
    reversal_refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))  # set when lost
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]

    attempt: Mapped[ChargeAttempt] = relationship(back_populates="disputes")
    reversal: Mapped[Refund | None] = relationship()


class WebhookEvent(Base):
    """Every verified gateway event, stored once by its id: a redelivered event finds its row and does nothing."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("gateway", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gateway: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(255), default="")
    event_created_at: Mapped[datetime]
    received_at: Mapped[datetime]
