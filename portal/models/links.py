"""Magic links to one invoice, the emails that carried them, and the invoice's delivery timeline.

A link row is what decides whether an emailed link still opens the invoice; the token only names the row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.links import DeliveryStatus

from .base import Base
from .billing import Invoice
from .core import Contact, StaffUser


class InvoiceLink(Base):
    """One contact's passwordless access to one invoice. At most one link per (invoice, contact) is live."""

    __tablename__ = "invoice_links"
    __table_args__ = (
        UniqueConstraint("nonce"),
        Index("ix_invoice_links_invoice_contact", "invoice_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    # A deleted contact takes its links with it: the token then names no row and is refused.
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_links.id"))
    first_opened_at: Mapped[datetime | None]
    last_opened_at: Mapped[datetime | None]
    open_count: Mapped[int] = mapped_column(Integer, default=0)

    invoice: Mapped[Invoice] = relationship()
    contact: Mapped[Contact] = relationship()
    replaced_by: Mapped[InvoiceLink | None] = relationship(remote_side=[id])


class InvoiceDelivery(Base):
    """One email to one contact about one invoice (the invoice itself, a reminder, or a fresh link they asked for).

    The row is written before the message leaves, so a crash or a refused message is on record and can be retried.
    """

    __tablename__ = "invoice_deliveries"
    __table_args__ = (Index("ix_invoice_deliveries_invoice", "invoice_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_links.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # invoice | reminder | fresh_link
    to_email: Mapped[str] = mapped_column(String(320))  # kept even if the contact is later removed
    to_name: Mapped[str] = mapped_column(default="")
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.SENDING)
    transport: Mapped[str] = mapped_column(String(10), default="")  # smtp | outbox
    message_id: Mapped[str] = mapped_column(String(255), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))  # None: the system or a visitor
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_deliveries.id"))
    # Set when a visitor asked for a fresh link from a dead one: counts against that link's cap.
    requested_via_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoice_links.id", ondelete="SET NULL"), index=True
    )

    invoice: Mapped[Invoice] = relationship()
    contact: Mapped[Contact | None] = relationship()
    link: Mapped[InvoiceLink | None] = relationship(foreign_keys=[link_id])
    sent_by: Mapped[StaffUser | None] = relationship()


class InvoiceEvent(Base):
    """The invoice timeline shown to admins: sent, failed, opened, revoked ... Append-only."""

    __tablename__ = "invoice_events"
    __table_args__ = (Index("ix_invoice_events_invoice_at", "invoice_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str] = mapped_column(Text, default="")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_deliveries.id", ondelete="SET NULL"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_links.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    actor: Mapped[StaffUser | None] = relationship()
