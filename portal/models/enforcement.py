"""Enforcing the signed terms: formal notices (remote disable, equipment recovery), the equipment register,
equipment orders with their deposits, credit limits, one-off charge authorizations before urgent service, and
deliverable files released on payment.

The portal never disables anything itself: a notice records that the MSP told the client, quoting the clause the
client signed, and the earliest date the terms permit remote disable. Rules live in portal.domain.enforcement.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .agreements import Agreement
from .base import Base, Cents
from .billing import Invoice
from .core import Client, StaffUser
from .online import PaymentRequest


class EnforcementNotice(Base):
    """A formal notice to a client past the threshold in its signed terms: the amount due, the clause quoted, the
    equipment concerned and the earliest date remote disable may occur. Issuing, delivery, opening and withdrawal
    are also events on the client's terms agreement (its evidence chain).

    status: issued → withdrawn (paid, or withdrawn by the admin). ``open_key`` (the client id while issued) is
    unique: one live notice per client and kind."""

    __tablename__ = "enforcement_notices"
    __table_args__ = (UniqueConstraint("open_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # the portal link in the email
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"))  # the signed terms it relies on
    kind: Mapped[str] = mapped_column(String(20))  # remote_disable | equipment_recovery
    status: Mapped[str] = mapped_column(String(12))
    open_key: Mapped[str | None] = mapped_column(String(40))  # "<client>:<kind>" while issued
    amount_due_cents: Mapped[int] = mapped_column(Cents)
    currency: Mapped[str] = mapped_column(String(3))
    clause: Mapped[str] = mapped_column(Text)  # quoted from the signed document
    equipment: Mapped[str] = mapped_column(Text, default="")  # the equipment listed, as shown (JSON list)
    disable_permitted_on: Mapped[date] = mapped_column(Date)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    issued_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_reason: Mapped[str] = mapped_column(Text, default="")
    withdrawal_sent_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship()
    agreement: Mapped[Agreement] = relationship()


class Equipment(Base):
    """An item at a client's site, possibly owned by the MSP until the invoice or deposit that pays for it is paid."""

    __tablename__ = "equipment"
    __table_args__ = (UniqueConstraint("client_id", "serial_number"),
                      CheckConstraint("value_cents >= 0", name="value_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    item: Mapped[str] = mapped_column(String(200))
    serial_number: Mapped[str] = mapped_column(String(100))
    value_cents: Mapped[int] = mapped_column(Cents, default=0)
    installed_on: Mapped[date | None] = mapped_column(Date)
    location: Mapped[str] = mapped_column(String(200), default="")
    owned_until_paid: Mapped[bool] = mapped_column(default=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("equipment_orders.id"))
    created_at: Mapped[datetime]

    client: Mapped[Client] = relationship()
    invoice: Mapped[Invoice | None] = relationship()


class EquipmentOrder(Base):
    """A quote for equipment with the deposit the client pays before the MSP orders it.

    status: requested → accepted (the client signed the deposit agreement; a payment request exists) → cleared
    (the deposit settled: ACH included, never while pending) | canceled. Only a cleared order may be ordered."""

    __tablename__ = "equipment_orders"
    __table_args__ = (CheckConstraint("deposit_cents >= 0", name="deposit_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)  # ORD-000123
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    quote_reference: Mapped[str] = mapped_column(String(100), default="")
    items: Mapped[str] = mapped_column(Text)  # JSON list of {description, quantity, unit_price_cents}
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(Cents)
    deposit_percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    deposit_cents: Mapped[int] = mapped_column(Cents)
    status: Mapped[str] = mapped_column(String(12))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    deposit_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("payment_requests.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship()
    agreement: Mapped[Agreement | None] = relationship()
    deposit_invoice: Mapped[Invoice | None] = relationship()
    request: Mapped[PaymentRequest | None] = relationship()


class CreditLimit(Base):
    """A client's credit limit: new orders and deposit requests are blocked while open A/R plus the order exceeds it."""

    __tablename__ = "credit_limits"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    limit_cents: Mapped[int] = mapped_column(Cents)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    updated_at: Mapped[datetime]


class ChargeAuthorization(Base):
    """"Charge $X to the card on file (or a new card) now for the overdue balance": sent by the admin when an
    on-hold client asks for urgent service, signed by the client (agreement machinery) and charged at once.

    status: sent → signed → charged | failed; sent → canceled | expired."""

    __tablename__ = "charge_authorizations"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Cents)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text, default="")  # e.g. the urgent service asked for
    status: Mapped[str] = mapped_column(String(12))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("payment_requests.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    signed_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship()
    agreement: Mapped[Agreement | None] = relationship()
    request: Mapped[PaymentRequest | None] = relationship()
    created_by: Mapped[StaffUser | None] = relationship()


class Deliverable(Base):
    """A file attached to an invoice (a report, a tax return, a config backup), listed to the client but downloadable
    only once the invoice is paid (settled). Stored under the instance folder by ``stored_name``, never by the
    uploaded name."""

    __tablename__ = "deliverables"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))  # shown and used for download, sanitised
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]

    invoice: Mapped[Invoice] = relationship()
