"""What `portal run-due` did: each autopay charge of an invoice, each run's log, the notices it sent once.

The enrollment side (saved methods, rules, authorizations) is in autopay.py; these rows are the collection side.
``AutopayCharge`` is what stops a second charge: one row per (invoice, charge number), inserted in the same
transaction as its payment request and charge attempt, so two `run-due` processes that both decide to charge an
invoice collide on the unique constraint and only one calls the gateway.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Cents
from .billing import Invoice
from .online import ChargeAttempt, PaymentRequest


class AutopayCharge(Base):
    """Autopay charging one invoice once: the first charge is number 1, each retry or fallback the next number."""

    __tablename__ = "autopay_charges"
    __table_args__ = (
        UniqueConstraint("invoice_id", "charge_number"),
        UniqueConstraint("request_id"),
        UniqueConstraint("attempt_id"),
        Index("ix_autopay_charges_unhandled", "handled_at", "id"),
        CheckConstraint("charge_number > 0", name="charge_number_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    charge_number: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[int] = mapped_column(ForeignKey("payment_requests.id"))
    attempt_id: Mapped[int] = mapped_column(ForeignKey("charge_attempts.id"))
    method_id: Mapped[str] = mapped_column(String(255))  # the saved method's gateway id
    method_type: Mapped[str] = mapped_column(String(20))  # card | us_bank_account
    charged_on: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(Cents)  # what was charged (the invoice balance less the discount)
    discount_cents: Mapped[int] = mapped_column(Cents, default=0)
    # Set once the outcome's consequences ran (decline classified, method retired, client told): never twice.
    decline_class: Mapped[str | None] = mapped_column(String(30))  # hard | soft | authentication_required
    decline_code: Mapped[str | None] = mapped_column(String(100))
    handled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    invoice: Mapped[Invoice] = relationship()
    request: Mapped[PaymentRequest] = relationship()
    attempt: Mapped[ChargeAttempt] = relationship()


class AutopayNotice(Base):
    """An email autopay sends once: a pre-charge notice per invoice, an expiring-card email per card and expiry.
    Inserted before the email goes, so a second node (or a rerun) finds it and sends nothing."""

    __tablename__ = "autopay_notices"
    __table_args__ = (UniqueConstraint("kind", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # pre_charge | card_expiring
    subject: Mapped[str] = mapped_column(String(255))  # "invoice:<id>" | "method:<gateway id>:<MM/YYYY>"
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    sent_on: Mapped[date] = mapped_column(Date)
    charge_on: Mapped[date | None] = mapped_column(Date)  # pre-charge notices: the day it said the charge goes
    delivered: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class DueRun(Base):
    """One `portal run-due`: when, where, and what it did. Shown on the admin's run log."""

    __tablename__ = "due_runs"
    __table_args__ = (Index("ix_due_runs_started", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(255))  # host:pid
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    charged: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)  # bank debits on their way, outcome unknown
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    notices: Mapped[int] = mapped_column(Integer, default=0)  # emails sent by the steps (notices, reminders)
    settled: Mapped[int] = mapped_column(Integer, default=0)  # pending payments settled by reconciliation
    problems: Mapped[str] = mapped_column(Text, default="")  # one per line: what needs a person

    skips: Mapped[list[DueRunSkip]] = relationship(back_populates="run", order_by="DueRunSkip.id",
                                                   cascade="all, delete-orphan")


class DueRunSkip(Base):
    """An invoice a run did not charge, and why (the domain's ``Skip`` reason)."""

    __tablename__ = "due_run_skips"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("due_runs.id", ondelete="CASCADE"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(255), default="")

    run: Mapped[DueRun] = relationship(back_populates="skips")
    invoice: Mapped[Invoice] = relationship()


class DueLease(Base):
    """A step of `run-due` that must run on one node at a time (an email sweep with no row to claim per email)
    holds this lease until ``expires_at``; another node skips the step meanwhile."""

    __tablename__ = "due_leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255), default="")
    expires_at: Mapped[datetime]
