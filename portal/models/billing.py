"""Invoices and the ledger: payments, their allocations to invoices, refunds.

Nothing here is edited or deleted once money moved; corrections are new rows. Balances are derived from those
rows; ``Invoice.settled_cents``, ``Payment.applied_cents`` and ``Payment.refunded_cents`` are their sums kept by the
database for reports (see settled.py).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    cast,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.invoices import InvoiceStatus
from portal.domain.payments import PaymentStatus, RefundStatus

from . import settled
from .base import Base, Cents
from .core import Client
from .search import search_index

# A payment holding credit: money that arrived and is neither applied nor refunded (domain.payments.payment_credit).
# The index below and the credit's query (ledger.credit_cents) are written with this one text, so the database can
# tell that the index serves the query.
HOLDS_CREDIT = f"status = '{PaymentStatus.SUCCEEDED}' AND amount_cents > applied_cents + refunded_cents"

# The invoice numbers the portal gives (services.billing.next_invoice_number): the prefix and 1-12 ASCII digits. The
# next is one past the highest of that shape, found through the index below (its condition this text, the query's
# too) instead of reading every number: 310 ms at a million invoices, under a lock every new invoice waits on.
NUMBER_PREFIX = "INV-"
OUR_NUMBER = {
    "postgresql": f"number ~ '^{NUMBER_PREFIX}[0-9]{{1,12}}$'",
    # (not GLOB 'INV-...': SQLite would then read the prefix's range of the unique index of numbers instead)
    "sqlite": f"substr(number, 1, {len(NUMBER_PREFIX)}) = '{NUMBER_PREFIX}' "
              f"AND length(number) BETWEEN {len(NUMBER_PREFIX) + 1} AND {len(NUMBER_PREFIX) + 12} "
              f"AND substr(number, {len(NUMBER_PREFIX) + 1}) NOT GLOB '*[^0-9]*'",
}


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_client_issue", "client_id", "issue_date", "id"),
        # covers the reports over owing invoices (aging, dashboard, client lists): no table rows read
        Index("ix_invoices_status_due", "status", "due_date", "client_id", "total_cents", "settled_cents"),
        # one client's owing invoices and what each still owes (its balances on every client list and page, what
        # a payment is applied to) without reading its paid ones: no table rows read
        Index("ix_invoices_client_status_due", "client_id", "status", "due_date", "total_cents", "settled_cents"),
        # a bill's twins, same client and total (the duplicate-bill check of every new invoice, an import's chunk
        # by chunk): only those rows, not every invoice of the client in the window
        Index("ix_invoices_client_total_issue", "client_id", "total_cents", "issue_date"),
        # the admin list, newest first, without a sort; what was billed lately (DSO) without a table scan
        Index("ix_invoices_issue_date_id", "issue_date", "id"),
        CheckConstraint("total_cents >= 0", name="total_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    number: Mapped[str] = mapped_column(String(50), unique=True)
    status: Mapped[str] = mapped_column(String(10), default=InvoiceStatus.DRAFT)
    currency: Mapped[str] = mapped_column(String(3))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    tax_rate: Mapped[Decimal] = mapped_column(default=Decimal("0"))  # percent, applied to taxable lines
    subtotal_cents: Mapped[int] = mapped_column(Cents, default=0)
    tax_cents: Mapped[int] = mapped_column(Cents, default=0)
    total_cents: Mapped[int] = mapped_column(Cents, default=0)
    # allocations + ledger adjustments, kept by triggers (settled.py); reports only: charges use the derived sum
    settled_cents: Mapped[int] = mapped_column(Cents, default=0, server_default="0")
    memo: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20), default="manual")  # manual | import
    created_at: Mapped[datetime]
    issued_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str] = mapped_column(Text, default="")

    client: Mapped[Client] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )


search_index(Invoice.__table__.c.number)  # the invoice list's search (PostgreSQL)
#: What one of our numbers counts to (INV-000123: 123), indexed for the rows that are ours (OUR_NUMBER)
NUMBER_VALUE = cast(func.substr(Invoice.__table__.c.number, literal_column(str(len(NUMBER_PREFIX) + 1))), BigInteger())
Index("ix_invoices_our_number", NUMBER_VALUE, postgresql_where=text(OUR_NUMBER["postgresql"]),
      sqlite_where=text(OUR_NUMBER["sqlite"]))


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    unit_price_cents: Mapped[int] = mapped_column(Cents)
    amount_cents: Mapped[int] = mapped_column(Cents)
    taxable: Mapped[bool] = mapped_column(default=True)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class Payment(Base):
    """Money received from a client. What is not allocated to invoices is the client's credit."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        Index("ix_payments_received", "received_on", "id"),  # the payments list, newest first, without a sort
        # a client's payments by date: its statement's range and its payment lists (also every lookup by client)
        Index("ix_payments_client_received", "client_id", "received_on", "id"),
        # the payments that hold credit, and only those: a client's credit reads them, not its whole history
        Index("ix_payments_credit", "client_id", postgresql_where=text(HOLDS_CREDIT), sqlite_where=text(HOLDS_CREDIT)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    method: Mapped[str] = mapped_column(String(20))  # check | wire | cash | ach | card
    # Only succeeded money is allocated or counted.
    status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.SUCCEEDED)
    amount_cents: Mapped[int] = mapped_column(Cents)
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(100), default="")
    memo: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]
    # its allocations (net of reversals) and its refunds but failed ones, kept by triggers (settled.py); reports and
    # the credit shown only: what moves money derives them from the rows
    applied_cents: Mapped[int] = mapped_column(Cents, default=0, server_default="0")
    refunded_cents: Mapped[int] = mapped_column(Cents, default=0, server_default="0")

    client: Mapped[Client] = relationship()
    allocations: Mapped[list[Allocation]] = relationship(back_populates="payment", order_by="Allocation.id")
    refunds: Mapped[list[Refund]] = relationship(back_populates="payment", order_by="Refund.id")


search_index(Payment.__table__.c.reference)  # the payment list's search (PostgreSQL)


class Allocation(Base):
    """Applies part of a payment to an invoice. A negative amount reverses an earlier allocation (append-only)."""

    __tablename__ = "allocations"
    __table_args__ = (CheckConstraint("amount_cents <> 0", name="amount_not_zero"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Cents)
    created_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(255), default="")

    payment: Mapped[Payment] = relationship(back_populates="allocations")
    invoice: Mapped[Invoice] = relationship()


settled.install(Allocation.__table__)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Cents)
    refunded_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=RefundStatus.SUCCEEDED)
    gateway_ref: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]

    payment: Mapped[Payment] = relationship(back_populates="refunds")


settled.install(Refund.__table__)
