"""Autopay, enrollment side: the methods a client saved, the MSP's autopay rules and each client's departures from
them, the incentive's ledger adjustments and rate locks, onboarding invitations and conversion-campaign offers.

The rules themselves live in portal.domain.autopay; these rows only store the choices. A column left NULL on a
client's enrollment inherits the MSP's default (``has_cap_override`` tells "no cap for this client" apart from
"the MSP's cap", because NULL is a real cap value there).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.autopay import OnboardingStatus, SavedMethodStatus

from . import settled
from .agreements import Agreement
from .base import Base, Cents
from .billing import Invoice
from .core import Client, Contact, StaffUser


class SavedPaymentMethod(Base):
    """A card or US bank account a client contact saved on the gateway customer for autopay.

    status: pending_verification (microdeposits still to read back: shown, never charged) → active; active →
    removed (detached on the gateway; the row and its signed authorization stay) or blocked (a hard decline or a
    bank return retired it). ``setup_id`` is unique so a replayed setup confirmation cannot save a method twice.
    """

    __tablename__ = "saved_payment_methods"
    __table_args__ = (
        UniqueConstraint("gateway", "method_id"),
        UniqueConstraint("setup_id"),
        Index("ix_saved_payment_methods_client_status", "client_id", "status"),
        CheckConstraint("method_type IN ('card', 'us_bank_account')", name="method_type_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    gateway: Mapped[str] = mapped_column(String(20))  # stripe | sandbox
    customer_id: Mapped[str] = mapped_column(String(255))  # the gateway customer it is attached to
    method_id: Mapped[str] = mapped_column(String(255))  # pm_...
    setup_id: Mapped[str | None] = mapped_column(String(255))  # seti_... that saved it
    mandate_id: Mapped[str | None] = mapped_column(String(255))
    method_type: Mapped[str] = mapped_column(String(20))  # card | us_bank_account
    brand: Mapped[str | None] = mapped_column(String(30))
    card_funding: Mapped[str | None] = mapped_column(String(20))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    bank_name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30), default=SavedMethodStatus.ACTIVE)
    microdeposit_type: Mapped[str | None] = mapped_column(String(20))  # amounts | descriptor_code
    microdeposits_arrive: Mapped[datetime | None]
    is_default: Mapped[bool] = mapped_column(default=False)
    is_fallback: Mapped[bool] = mapped_column(default=False)
    blocked_code: Mapped[str | None] = mapped_column(String(40))  # R02, lost_card ...
    # The signed autopay authorization this method is charged under (None until the client signed one).
    authorization_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    saved_by_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    expiry_notice_sent_at: Mapped[datetime | None]  # the "your card expires soon" email goes once
    created_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship()
    authorization: Mapped[Agreement | None] = relationship()
    saved_by: Mapped[Contact | None] = relationship()


class AutopaySettings(Base):
    """The MSP's autopay defaults and incentive; a single row (id 1), like PaymentSettings."""

    __tablename__ = "autopay_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    timing: Mapped[str] = mapped_column(String(20), default="on_due_date")  # domain.autopay.Timing
    offset_days: Mapped[int] = mapped_column(Integer, default=0)
    day_of_month: Mapped[int | None] = mapped_column(Integer)
    cap_cents: Mapped[int | None] = mapped_column(Cents)  # None: no cap
    scope: Mapped[str] = mapped_column(String(20), default="all")  # domain.autopay.Scope
    method_types: Mapped[str] = mapped_column(String(60), default="card,us_bank_account")
    use_fallback: Mapped[bool] = mapped_column(default=True)
    notice_days: Mapped[int] = mapped_column(Integer, default=3)
    retry_days: Mapped[str] = mapped_column(String(60), default="3,5,7")  # comma-separated gaps in days
    required_for_new_clients: Mapped[bool] = mapped_column(default=False)
    incentive_kind: Mapped[str] = mapped_column(String(20), default="none")  # none | discount | rate_lock
    discount_percent: Mapped[Decimal | None]
    stop_after_failures: Mapped[int] = mapped_column(Integer, default=3)
    # The MSP's next scheduled price increase, for the rate lock (what it waives) and the savings shown.
    next_increase_on: Mapped[date | None] = mapped_column(Date)
    next_increase_percent: Mapped[Decimal | None]
    updated_at: Mapped[datetime | None]


class AutopayEnrollment(Base):
    """One client's autopay: on or off, locked by the MSP, overrides of the defaults (NULL: inherit), incentive."""

    __tablename__ = "autopay_enrollments"
    __table_args__ = (UniqueConstraint("client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    enrolled: Mapped[bool] = mapped_column(default=False)
    locked: Mapped[bool] = mapped_column(default=False)
    timing: Mapped[str | None] = mapped_column(String(20))
    offset_days: Mapped[int | None] = mapped_column(Integer)
    day_of_month: Mapped[int | None] = mapped_column(Integer)
    has_cap_override: Mapped[bool] = mapped_column(default=False)
    cap_cents: Mapped[int | None] = mapped_column(Cents)
    scope: Mapped[str | None] = mapped_column(String(20))
    method_types: Mapped[str | None] = mapped_column(String(60))
    use_fallback: Mapped[bool | None]
    notice_days: Mapped[int | None] = mapped_column(Integer)
    retry_days: Mapped[str | None] = mapped_column(String(60))
    # Incentive: "active" from enrollment while the MSP offers one, "stopped" with the reason (IncentiveStop).
    incentive_state: Mapped[str] = mapped_column(String(20), default="none")  # none | active | stopped
    incentive_kind: Mapped[str | None] = mapped_column(String(20))  # the kind granted at enrollment
    incentive_stop_reason: Mapped[str | None] = mapped_column(String(30))
    incentive_started_at: Mapped[datetime | None]
    incentive_stopped_at: Mapped[datetime | None]
    incentive_stop_notified_at: Mapped[datetime | None]  # the client was told (once)
    enrolled_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]
    left_reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]

    client: Mapped[Client] = relationship()


class LedgerAdjustment(Base):
    """An amount taken off what an invoice owes without money moving: an autopay discount. Its own row, never an
    edit of the invoice total; a reversal is a new negative row (append-only like allocations)."""

    __tablename__ = "ledger_adjustments"
    __table_args__ = (
        CheckConstraint("amount_cents <> 0", name="amount_not_zero"),
        # One discount per autopay charge attempt, however often the booking is replayed.
        UniqueConstraint("kind", "attempt_id", name="kind_attempt"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # autopay_discount | autopay_discount_reversal
    amount_cents: Mapped[int] = mapped_column(Cents)  # positive: the invoice owes that much less
    percent: Mapped[Decimal | None]
    attempt_id: Mapped[int | None] = mapped_column(Integer)  # the autopay charge attempt that earned it
    memo: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]

    invoice: Mapped[Invoice] = relationship()


settled.install(LedgerAdjustment.__table__)


class RateLock(Base):
    """A rate-lock incentive granted to a client: the next scheduled price increase on or after ``granted_on`` is
    waived. Listed for the MSP so its PSA honours it."""

    __tablename__ = "rate_locks"
    __table_args__ = (Index("ix_rate_locks_client", "client_id", "granted_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    granted_on: Mapped[date] = mapped_column(Date)
    waived_increase_on: Mapped[date | None] = mapped_column(Date)  # None: no increase scheduled yet
    increase_percent: Mapped[Decimal | None]
    ended_on: Mapped[date | None] = mapped_column(Date)  # the incentive stopped before the increase
    end_reason: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime]

    client: Mapped[Client] = relationship()


class OnboardingInvitation(Base):
    """"Checkless from day one": one email to the billing contact opens the guided flow (terms, method,
    authorization). status: invited → terms_signed → autopay_on → complete (complete without autopay_on when the
    MSP does not require autopay and the client skipped it)."""

    __tablename__ = "onboarding_invitations"
    __table_args__ = (UniqueConstraint("token_hash"), Index("ix_onboarding_invitations_client", "client_id", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=OnboardingStatus.INVITED)
    autopay_required: Mapped[bool] = mapped_column(default=False)
    invited_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    sent_at: Mapped[datetime]
    resend_count: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None]
    terms_signed_at: Mapped[datetime | None]
    autopay_on_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    client: Mapped[Client] = relationship()
    contact: Mapped[Contact] = relationship()
    invited_by: Mapped[StaffUser | None] = relationship()


class AutopayOffer(Base):
    """One conversion-campaign email offering autopay (and its incentive) to a client not on it."""

    __tablename__ = "autopay_offers"
    __table_args__ = (UniqueConstraint("token_hash"), Index("ix_autopay_offers_client", "client_id", "sent_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    campaign: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    sent_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    sent_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship()
    contact: Mapped[Contact] = relationship()
