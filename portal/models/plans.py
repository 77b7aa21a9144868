"""Installment plans: the MSP's self-service policy, offers and their negotiation, accepted plans, their schedule
and the rows that make collecting them safe.

The arithmetic lives in portal.domain.schedules and the rules in portal.domain.plans; these rows store choices and
facts. An offer is never edited once sent: a counter-offer is a new row in the same thread (``thread_id``), and
the thread read in order is the negotiation's history. An accepted offer becomes a ``PaymentPlan`` whose
installments are copied from the schedule the client signed. What was paid toward a plan is derived from the
ledger (allocations to its invoices after acceptance), never stored on an installment.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.plans import OfferStatus, PlanStatus

from .agreements import Agreement
from .base import Base, Cents
from .billing import Invoice
from .core import Client, Contact, StaffUser
from .online import ChargeAttempt, PaymentRequest


class PlanPolicy(Base):
    """The MSP's limits for plans (one row). Self-service offers must fit them; staff offers must respect
    ``max_apr_percent`` (usury limits differ by state) and may go beyond the rest."""

    __tablename__ = "plan_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    self_service: Mapped[bool] = mapped_column(default=True)  # overdue clients see plan options in the portal
    max_balance_cents: Mapped[int] = mapped_column(Cents, default=1_000_000)
    max_installments: Mapped[int] = mapped_column(Integer, default=6)
    min_down_percent: Mapped[Decimal] = mapped_column(default=Decimal("10"))
    frequencies: Mapped[str] = mapped_column(String(60), default="weekly,biweekly,monthly")  # comma separated
    apr_percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))  # offered to self-service plans
    max_apr_percent: Mapped[Decimal] = mapped_column(default=Decimal("18"))
    grace_days: Mapped[int] = mapped_column(Integer, default=5)  # after an installment's due date, then default
    reminder_days: Mapped[int] = mapped_column(Integer, default=3)  # pay-link reminder before an unpaid-by-card due
    updated_at: Mapped[datetime | None]


class PlanOffer(Base):
    """One proposal of a plan: by the MSP (an offer or a counter), or by the client (a proposal or a counter).

    status: open → accepted | rejected | countered (a newer row in the thread replaced it) | withdrawn |
    superseded (the client accepted another thread, or the plan it renegotiates changed). Only an open offer can
    be accepted, and only by its client's contact; ``accept_key`` (the thread id while an acceptance is being
    made) is unique so two tabs cannot accept the same thread twice.
    """

    __tablename__ = "plan_offers"
    __table_args__ = (
        CheckConstraint("installments >= 1", name="installments_positive"),
        CheckConstraint("down_payment_cents >= 0", name="down_payment_not_negative"),
        UniqueConstraint("accept_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # in links: ids are not guessable
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("plan_offers.id"), index=True)  # first offer's id
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("plan_offers.id"))  # the offer this one counters
    # the plan this offer would replace; no foreign key: plans reference their offer, and a cycle between the two
    # tables would leave their creation order ambiguous
    renegotiates_plan_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=OfferStatus.OPEN)
    proposed_by: Mapped[str] = mapped_column(String(10))  # msp | client
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    message: Mapped[str] = mapped_column(Text, default="")
    currency: Mapped[str] = mapped_column(String(3))
    balance_cents: Mapped[int] = mapped_column(Cents)  # what the covered invoices owed when it was made
    down_payment_cents: Mapped[int] = mapped_column(Cents, default=0)
    pay_now_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))  # "pay this one now"
    installments: Mapped[int] = mapped_column(Integer)
    frequency: Mapped[str] = mapped_column(String(10))  # weekly | biweekly | monthly | custom
    custom_dates: Mapped[str] = mapped_column(Text, default="")  # ISO dates, comma separated, for custom
    first_due_on: Mapped[date] = mapped_column(Date)
    apr_percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    as_note: Mapped[bool] = mapped_column(default=False)  # issued as a formal promissory note
    accept_key: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str] = mapped_column(Text, default="")  # why it was rejected or withdrawn

    client: Mapped[Client] = relationship()
    staff: Mapped[StaffUser | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    pay_now_invoice: Mapped[Invoice | None] = relationship()
    invoices: Mapped[list[PlanOfferInvoice]] = relationship(back_populates="offer", order_by="PlanOfferInvoice.id",
                                                            cascade="all, delete-orphan")


class PlanOfferInvoice(Base):
    """An invoice an offer covers, with what it owed when the offer was made."""

    __tablename__ = "plan_offer_invoices"
    __table_args__ = (UniqueConstraint("offer_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("plan_offers.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    balance_cents: Mapped[int] = mapped_column(Cents)

    offer: Mapped[PlanOffer] = relationship(back_populates="invoices")
    invoice: Mapped[Invoice] = relationship()


class PaymentPlan(Base):
    """An accepted, signed plan. status: current → completed | defaulted | canceled | superseded."""

    __tablename__ = "payment_plans"
    __table_args__ = (
        UniqueConstraint("offer_id"),
        CheckConstraint("principal_cents >= 0", name="principal_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)  # PLAN-000123, shown to people
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("plan_offers.id"))
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    status: Mapped[str] = mapped_column(String(12), default=PlanStatus.CURRENT)
    currency: Mapped[str] = mapped_column(String(3))
    balance_cents: Mapped[int] = mapped_column(Cents)  # covered balance at acceptance
    down_payment_cents: Mapped[int] = mapped_column(Cents, default=0)
    principal_cents: Mapped[int] = mapped_column(Cents)  # balance less the down payment: what the schedule repays
    apr_percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    total_interest_cents: Mapped[int] = mapped_column(Cents, default=0)  # as scheduled
    frequency: Mapped[str] = mapped_column(String(10))
    grace_days: Mapped[int] = mapped_column(Integer)
    as_note: Mapped[bool] = mapped_column(default=False)
    down_payment_request_id: Mapped[int | None] = mapped_column(ForeignKey("payment_requests.id"))
    accepted_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    defaulted_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    ended_reason: Mapped[str] = mapped_column(Text, default="")  # why canceled or superseded (and by whom)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("payment_plans.id"))
    default_notice_sent_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship()
    offer: Mapped[PlanOffer] = relationship(foreign_keys=[offer_id])
    agreement: Mapped[Agreement | None] = relationship()
    installments: Mapped[list[Installment]] = relationship(back_populates="plan", order_by="Installment.number",
                                                           cascade="all, delete-orphan")
    invoices: Mapped[list[PlanInvoice]] = relationship(back_populates="plan", order_by="PlanInvoice.id",
                                                       cascade="all, delete-orphan")


class PlanInvoice(Base):
    """An invoice a plan collects: a covered invoice, or an interest invoice the plan raised.

    ``current_key`` is the invoice id while the plan is current and NULL afterwards; it is unique, so the database
    itself refuses an invoice on two current plans.
    """

    __tablename__ = "plan_invoices"
    __table_args__ = (UniqueConstraint("plan_id", "invoice_id"), UniqueConstraint("current_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    role: Mapped[str] = mapped_column(String(10))  # covered | interest
    installment_number: Mapped[int | None] = mapped_column(Integer)  # interest invoices: the installment (NULL: payoff)
    current_key: Mapped[int | None] = mapped_column(Integer)

    plan: Mapped[PaymentPlan] = relationship(back_populates="invoices")
    invoice: Mapped[Invoice] = relationship()


class Installment(Base):
    """One row of the signed schedule. Paid or not is derived: plan payments fill installments in order."""

    __tablename__ = "installments"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id"))
    number: Mapped[int] = mapped_column(Integer)  # 1-based
    due_on: Mapped[date] = mapped_column(Date, index=True)
    amount_cents: Mapped[int] = mapped_column(Cents)
    principal_cents: Mapped[int] = mapped_column(Cents)
    interest_cents: Mapped[int] = mapped_column(Cents, default=0)
    balance_after_cents: Mapped[int] = mapped_column(Cents)  # principal still owed after this row

    plan: Mapped[PaymentPlan] = relationship(back_populates="installments")


class InstallmentCharge(Base):
    """An automatic charge of an installment by `run-due` on the client's saved method, numbered per installment
    (retries after soft declines are 2, 3 ...). Unique (installment, charge number): of two processes that decided
    to charge, one insert fails and that process charges nothing."""

    __tablename__ = "installment_charges"
    __table_args__ = (UniqueConstraint("installment_id", "charge_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installment_id: Mapped[int] = mapped_column(ForeignKey("installments.id"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id"), index=True)
    charge_number: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[int] = mapped_column(ForeignKey("payment_requests.id"))
    attempt_id: Mapped[int] = mapped_column(ForeignKey("charge_attempts.id"))
    method_id: Mapped[str] = mapped_column(String(255))
    charged_on: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(Cents)
    decline_class: Mapped[str | None] = mapped_column(String(30))
    handled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    installment: Mapped[Installment] = relationship()
    request: Mapped[PaymentRequest] = relationship()
    attempt: Mapped[ChargeAttempt] = relationship()


class PlanEvent(Base):
    """The plan's and the offer thread's timeline, in the words shown to the admin (offered, countered, accepted,
    down payment received, installment charged or missed, reminder sent, defaulted, canceled ...).

    ``once_key``, when set, is unique: a notice or reminder that must go once (an installment reminder, the
    default notice) claims its key in the same transaction that records it.
    """

    __tablename__ = "plan_events"
    __table_args__ = (UniqueConstraint("once_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("plan_offers.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("payment_plans.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str] = mapped_column(Text, default="")
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    once_key: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]
