"""Collections: the MSP's reminder schedule and what was sent, promises to pay, the call log, late fees, likely
duplicate bills, and the cash forecasts kept so they can be compared with what came in.

The rules (which step is due, when a promise is broken, what a late fee is) live in portal.domain.dunning and
portal.domain.late_fees; these rows store choices and facts. Rows that record something sent or charged are never
edited except to record its outcome; a waived fee keeps its row and gains the waiver.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Cents
from .billing import Invoice
from .core import Client, Contact, StaffUser


class CollectionSettings(Base):
    """The MSP's collection settings (one row)."""

    __tablename__ = "collection_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    borrowing_rate_percent: Mapped[Decimal] = mapped_column(default=Decimal("8"))  # what lending to clients costs
    call_after_days: Mapped[int] = mapped_column(Integer, default=3)  # a call this long after the day-after-due email
    duplicate_window_days: Mapped[int] = mapped_column(Integer, default=5)
    updated_at: Mapped[datetime | None]


class DunningStep(Base):
    """One step of the reminder schedule: days relative to the due date (negative: before it), with its own
    subject and template. ``offset_days`` is unique: two steps on the same day would send two emails at once."""

    __tablename__ = "dunning_steps"
    __table_args__ = (UniqueConstraint("offset_days"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offset_days: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(60))  # "Friendly reminder", "Final notice" ...
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # the email text with {placeholders}
    attach_invoice: Mapped[bool] = mapped_column(default=False)  # the original invoice PDF
    pause_new_work: Mapped[bool] = mapped_column(default=False)  # "new work paused until cleared"
    pay_within_days: Mapped[int] = mapped_column(Integer, default=7)  # the pay-by date the email names
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime | None]


class ReminderSend(Base):
    """A reminder step for one invoice. Claimed (unique invoice + step) in the transaction that decides to send it,
    so no step goes twice; ``sent_at`` is set only once the message left. A failed send keeps the row with its
    error and is retried by the next run."""

    __tablename__ = "reminder_sends"
    __table_args__ = (UniqueConstraint("invoice_id", "step_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("dunning_steps.id"))
    to_email: Mapped[str] = mapped_column(String(320), default="")
    pay_by: Mapped[date] = mapped_column(Date)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    claimed_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    invoice: Mapped[Invoice] = relationship()
    step: Mapped[DunningStep] = relationship()


class ClientCollection(Base):
    """A client's collection state the admin sets: reminders paused (with why and until when), and the next call."""

    __tablename__ = "client_collections"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)
    paused_reason: Mapped[str] = mapped_column(Text, default="")
    paused_until: Mapped[date | None] = mapped_column(Date)
    next_call_on: Mapped[date | None] = mapped_column(Date)  # set by a call's outcome
    updated_at: Mapped[datetime | None]


class PaymentPromise(Base):
    """"We will pay $X by <date>", recorded by the admin after a call or by the client in the portal.

    status: open → kept (paid by the date) | broken (the date passed unpaid) | canceled. While open, reminders
    for the client's promised invoices pause until the date."""

    __tablename__ = "payment_promises"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))  # None: the client's past-due balance
    amount_cents: Mapped[int] = mapped_column(Cents)
    promised_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10))
    note: Mapped[str] = mapped_column(Text, default="")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship()
    invoice: Mapped[Invoice | None] = relationship()
    staff: Mapped[StaffUser | None] = relationship()
    contact: Mapped[Contact | None] = relationship()


class CollectionNote(Base):
    """The call log and notes per client: a reason code, the call's outcome, and the next step it scheduled."""

    __tablename__ = "collection_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reason: Mapped[str] = mapped_column(String(30))  # did_not_receive | dispute | cash_flow | waiting_approval | other
    outcome: Mapped[str] = mapped_column(String(30), default="")  # reached | voicemail | no_answer | wrong_number | ""
    note: Mapped[str] = mapped_column(Text, default="")
    next_step_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]

    staff: Mapped[StaffUser | None] = relationship()


class LateFee(Base):
    """A late fee for one period of one late invoice, charged as its own invoice and citing the terms clause.
    Unique (late invoice, period): `run-due` adds each period's fee once, however many runs race."""

    __tablename__ = "late_fees"
    __table_args__ = (UniqueConstraint("late_invoice_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    late_invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    fee_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))  # the signed terms it cites
    period: Mapped[int] = mapped_column(Integer)  # 1 = the first month after the grace days
    period_start: Mapped[date] = mapped_column(Date)
    basis_cents: Mapped[int] = mapped_column(Cents)  # the overdue balance the percentage was taken of
    percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    amount_cents: Mapped[int] = mapped_column(Cents)
    clause: Mapped[str] = mapped_column(Text, default="")  # the clause quoted on the fee invoice
    created_at: Mapped[datetime]
    waived_at: Mapped[datetime | None]
    waived_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    waiver_reason: Mapped[str] = mapped_column(Text, default="")

    late_invoice: Mapped[Invoice] = relationship(foreign_keys=[late_invoice_id])
    fee_invoice: Mapped[Invoice | None] = relationship(foreign_keys=[fee_invoice_id])


class DuplicateFlag(Base):
    """A likely duplicate bill (same client, same amount, issue dates close, different numbers) held for the admin:
    status flagged → distinct (send it) | duplicate (void it)."""

    __tablename__ = "duplicate_flags"
    __table_args__ = (UniqueConstraint("invoice_id", "duplicate_of_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    duplicate_of_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    status: Mapped[str] = mapped_column(String(10))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    invoice: Mapped[Invoice] = relationship(foreign_keys=[invoice_id])
    duplicate_of: Mapped[Invoice] = relationship(foreign_keys=[duplicate_of_id])


class DashboardFigures(Base):
    """The dashboard's slow figures for a day (the trend's past month ends, the cash forecast, autopay adoption),
    computed by `run-due` so that no page view pays for them at a million invoices. ``payload`` is JSON written and
    read by services.collections.figures; the live figures (aging, today's point of the trend) are never stored."""

    __tablename__ = "dashboard_figures"
    __table_args__ = (UniqueConstraint("made_on", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    made_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))  # trend | forecast | adoption
    payload: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime]


class ForecastSnapshot(Base):
    """What the cash forecast expected on a day for the next ``horizon_days``, kept so next month's dashboard can
    show how it compared with what actually came in."""

    __tablename__ = "forecast_snapshots"
    __table_args__ = (UniqueConstraint("made_on", "horizon_days"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    made_on: Mapped[date] = mapped_column(Date)
    horizon_days: Mapped[int] = mapped_column(Integer)
    expected_cents: Mapped[int] = mapped_column(Cents)
    created_at: Mapped[datetime]
