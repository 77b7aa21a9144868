"""What the plan pages show: the client's own plans (always scoped to the signed-in contact's client: another
client's plan is NotFound), the admin's list with the outstanding totals, and one plan's detail (schedule with paid
and remaining per row, payments, timeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session, selectinload

from portal.domain import payments as payment_rules
from portal.domain.plans import OfferStatus, PlanStatus, RowState
from portal.models import Allocation, Installment, Payment, PaymentPlan, PaymentRequest, PlanEvent, PlanOffer

from ..errors import NotFound
from .collection import PayoffQuote, next_installment_cents, payoff_quote, small_remainder_cents
from .offers import all_open
from .progress import PlanProgress, counted, owed, plan_invoice_ids, plan_invoices, progress_for, progress_of

FILTERS = ("current", "offered", "completed", "defaulted", "canceled", "all")


# --- the client's side ---------------------------------------------------------------------------------------------

def plan_for_client(session: Session, client_id: int, plan_id: int) -> PaymentPlan:
    plan = session.scalar(select(PaymentPlan).where(PaymentPlan.id == plan_id, PaymentPlan.client_id == client_id))
    if plan is None:
        raise NotFound()
    return plan


def client_plans(session: Session, client_id: int) -> list[PaymentPlan]:
    return list(session.scalars(_CLIENT_PLANS, {"client_id": client_id}))


_CLIENT_PLANS = (select(PaymentPlan).where(PaymentPlan.client_id == bindparam("client_id"))
                 .order_by(PaymentPlan.id.desc()))


def current_plan(session: Session, client_id: int) -> PaymentPlan | None:
    return session.scalar(_CURRENT_PLAN, {"client_id": client_id})


# Built once: the portal's home reads it on every view.
_CURRENT_PLAN = (select(PaymentPlan).where(PaymentPlan.client_id == bindparam("client_id"),
                                           PaymentPlan.status == PlanStatus.CURRENT)
                 .order_by(PaymentPlan.id.desc()).limit(1))


# --- one plan --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScheduleLine:
    installment: Installment
    state: RowState


@dataclass(frozen=True)
class PlanPaymentRow:
    payment: Payment
    cents: int  # net applied to the plan's invoices


@dataclass(frozen=True)
class PlanPage:
    plan: PaymentPlan
    progress: PlanProgress
    lines: list[ScheduleLine]
    next_cents: int  # "Pay next installment"
    payoff: PayoffQuote | None  # only while current
    down_payment_request: PaymentRequest | None  # the acceptance's down payment checkout, while it is unpaid
    scheduled_cents: int
    small_remainder_cents: int  # less than a card can take, left for the MSP to write off

    @property
    def is_current(self) -> bool:
        return self.plan.status == PlanStatus.CURRENT


def plan_page(session: Session, plan: PaymentPlan, today: date) -> PlanPage:
    found = progress_of(session, plan, today)
    states = {s.number: s for s in found.progress.rows}
    lines = [ScheduleLine(i, states[i.number]) for i in plan.installments]
    current = plan.status == PlanStatus.CURRENT
    down = None
    if current and plan.down_payment_request_id and found.progress.down_payment_owing:
        request = session.get(PaymentRequest, plan.down_payment_request_id)
        if request is not None and request.status == payment_rules.PaymentRequestStatus.OPEN:
            down = request
    return PlanPage(plan=plan, progress=found, lines=lines,
                    next_cents=next_installment_cents(session, plan) if current else 0,
                    payoff=payoff_quote(session, plan, today) if current and not found.settled else None,
                    down_payment_request=down, scheduled_cents=sum(i.amount_cents for i in plan.installments),
                    small_remainder_cents=small_remainder_cents(found))


def plan_payments(session: Session, plan: PaymentPlan) -> list[PlanPaymentRow]:
    """The payments that count toward the plan (``progress.counted``), newest first."""
    ids = plan_invoice_ids(session, plan.id)
    if not ids:
        return []
    rows = session.execute(
        select(Payment, func.sum(Allocation.amount_cents)).join(Allocation, Allocation.payment_id == Payment.id)
        .where(*counted(plan, ids))
        .group_by(Payment.id).order_by(Payment.received_on.desc(), Payment.id.desc())).all()
    return [PlanPaymentRow(payment, int(cents)) for payment, cents in rows]


def timeline(session: Session, plan: PaymentPlan) -> list[PlanEvent]:
    """The plan's events and its offer thread's (the negotiation that led to it), oldest first."""
    thread = plan.offer.thread_id or plan.offer_id
    return list(session.scalars(select(PlanEvent).where(or_(PlanEvent.plan_id == plan.id,
                                                            PlanEvent.thread_id == thread))
                                .order_by(PlanEvent.created_at, PlanEvent.id)))


# --- the admin's list -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanListRow:
    plan: PaymentPlan
    paid_cents: int
    open_cents: int
    next_due: RowState | None


@dataclass(frozen=True)
class PlanList:
    status: str
    plans: list[PlanListRow]
    offers: list[PlanOffer]
    counts: dict[str, int]
    outstanding_cents: int  # what the invoices of current plans still owe


def plan_list(session: Session, status: str, today: date) -> PlanList:
    counts = {s: int(n) for s, n in session.execute(select(PaymentPlan.status, func.count())
                                                     .group_by(PaymentPlan.status))}
    counts["offered"] = int(session.scalar(select(func.count()).select_from(PlanOffer)
                                           .where(PlanOffer.status == OfferStatus.OPEN)) or 0)
    offers: list[PlanOffer] = []
    rows: list[PlanListRow] = []
    if status == "offered":
        offers = all_open(session)
    else:
        query = (select(PaymentPlan).options(selectinload(PaymentPlan.client), selectinload(PaymentPlan.installments))
                 .order_by(PaymentPlan.accepted_at.desc(), PaymentPlan.id.desc()))
        if status != "all":
            query = query.where(PaymentPlan.status == status)
        plans = list(session.scalars(query.limit(500)))
        progress = progress_for(session, plans, today)
        rows = [PlanListRow(plan, progress[plan.id].paid_cents, progress[plan.id].open_cents,
                            progress[plan.id].progress.next_due) for plan in plans]
    current = plan_invoices(session, list(session.scalars(select(PaymentPlan.id).where(
        PaymentPlan.status == PlanStatus.CURRENT))))
    return PlanList(status, rows, offers, counts, sum(owed(session, current).values()))
