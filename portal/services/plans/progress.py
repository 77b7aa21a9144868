"""How far a plan has got: derived from the ledger every time, never stored on an installment.

What was paid toward a plan is the net money applied (allocations, less their reversals) to the plan's invoices (the
covered ones and the interest invoices it raised) since the plan was accepted, from payments that succeeded: the
same rows the ledger counts in ``balance_expr``. Money still on its way (a bank debit clearing, a charge not
finished) is *pending*, shown as such and never as paid. The domain's ``progress`` fills the schedule's rows in
order with what was paid (row 0 is the down payment).

``current_plan_invoice_ids`` / ``on_current_plan`` are for later collection rules (reminders, late fees, service
hold): an invoice on a current plan is collected by its installments, not by them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from portal.domain import payments as payment_rules
from portal.domain import plans as rules
from portal.domain.ledger import invoice_balance
from portal.domain.payments import PaymentStatus
from portal.models import (
    Allocation,
    ChargeAttempt,
    Installment,
    Invoice,
    Payment,
    PaymentPlan,
    PaymentRequest,
    PaymentRequestItem,
    PlanInvoice,
)

from .. import ledger
from ..keysets import among

#: PlanInvoice.role: an invoice the plan took over, or an interest invoice the plan raised for an installment.
COVERED, INTEREST = "covered", "interest"


def due_rows(plan: PaymentPlan) -> list[rules.DueRow]:
    """The signed schedule as the domain reads it: row 0 is the down payment (when there is one)."""
    return [rules.DueRow(i.number, i.due_on, i.amount_cents) for i in plan.installments]


def plan_invoice_ids(session: Session, plan_id: int, role: str | None = None) -> list[int]:
    query = select(PlanInvoice.invoice_id).where(PlanInvoice.plan_id == plan_id).order_by(PlanInvoice.id)
    if role is not None:
        query = query.where(PlanInvoice.role == role)
    return list(session.scalars(query))


def paid_toward(session: Session, plan: PaymentPlan) -> int:
    """Net money from succeeded payments applied to the plan's invoices since it was accepted."""
    ids = plan_invoice_ids(session, plan.id)
    if not ids:
        return 0
    total = session.scalar(
        select(func.coalesce(func.sum(Allocation.amount_cents), 0))
        .join(Payment, Payment.id == Allocation.payment_id).where(*counted(plan, ids)))
    # a reversal after acceptance of money applied before it (a refund of an older payment) must not read as
    # negative progress: the plan started from the balance owed then
    return max(0, int(total or 0))


def counted(plan: PaymentPlan, invoice_ids: Iterable[int]) -> tuple:
    """What makes an allocation (joined with its payment) count toward the plan: money from a succeeded payment
    applied to the plan's invoices since it was signed, not from a charge started before (see below)."""
    return Allocation.invoice_id.in_(invoice_ids), *_since_signed(plan)


def _since_signed(plan: PaymentPlan | type[PaymentPlan]) -> tuple:
    """``counted`` but for the invoices: of one plan (its values), or of the PaymentPlan rows a statement joins (the
    class: its columns), which is how ``progress_for`` counts many plans in one statement."""
    return (Allocation.created_at >= plan.accepted_at, Payment.status == PaymentStatus.SUCCEEDED,
            Allocation.payment_id.not_in(_started_before(plan)))


def _started_before(plan: PaymentPlan | type[PaymentPlan]):
    """Payments from online charges started before the plan was signed. The offer covered only what the invoices
    owed less such money on its way, so when it arrives (booked after the signature) it is not the plan's: counted
    again it would read as installments paid while the invoices still owe the whole plan."""
    return (select(ChargeAttempt.payment_id).join(PaymentRequest, PaymentRequest.id == ChargeAttempt.request_id)
            .where(PaymentRequest.client_id == plan.client_id, ChargeAttempt.payment_id.is_not(None),
                   ChargeAttempt.created_at < plan.accepted_at))


def pending_toward(session: Session, plan: PaymentPlan) -> int:
    """Money on its way to the plan's invoices (not paid until it arrives): what ``checkout.in_flight_by_invoice``
    counts, from charges started since the plan was signed (see ``_started_before``)."""
    ids = plan_invoice_ids(session, plan.id)
    if not ids:
        return 0
    total = session.scalar(
        select(func.coalesce(func.sum(PaymentRequestItem.amount_cents), 0))
        .join(PaymentRequest, PaymentRequest.id == PaymentRequestItem.request_id)
        .where(PaymentRequestItem.invoice_id.in_(ids), *_on_its_way(plan)))
    return int(total or 0)


def _on_its_way(plan: PaymentPlan | type[PaymentPlan]) -> tuple:
    """What makes a checkout's item (joined with its checkout) money on its way to the plan, but for the invoices:
    of one plan (its values) or of the PaymentPlan rows a statement joins (the class), as ``_since_signed``."""
    busy = select(ChargeAttempt.request_id).where(
        ChargeAttempt.status.in_(payment_rules.IN_FLIGHT | {payment_rules.SUCCEEDED}),
        ChargeAttempt.created_at >= plan.accepted_at)
    return (PaymentRequest.client_id == plan.client_id, PaymentRequest.id.in_(busy),
            # paid: booked, so paid_toward already counts it
            PaymentRequest.status != payment_rules.PaymentRequestStatus.PAID)


@dataclass(frozen=True)
class PlanProgress:
    plan: PaymentPlan
    progress: rules.Progress
    paid_cents: int
    pending_cents: int
    open_cents: int  # what the plan's invoices still owe in the ledger (covered and interest invoices)

    @property
    def settled(self) -> bool:
        """Every invoice of the plan is paid: after a payoff (interest only to the payoff date) the schedule's total
        is never reached, yet nothing is owed."""
        return self.open_cents == 0 and self.pending_cents == 0


def progress_of(session: Session, plan: PaymentPlan, today: date) -> PlanProgress:
    paid = paid_toward(session, plan)
    found = rules.progress(due_rows(plan), paid, today=today, grace_days=plan.grace_days)
    open_cents = owed(session, {plan.id: plan_invoice_ids(session, plan.id)}).get(plan.id, 0)
    return PlanProgress(plan, found, paid, pending_toward(session, plan), open_cents)


def progress_for(session: Session, plans: Sequence[PaymentPlan], today: date) -> dict[int, PlanProgress]:
    """``progress_of`` of many plans (the admin's list) in five statements, not six for each plan. The plans'
    installments are read through ``plan.installments`` (load them with the plans)."""
    if not plans:
        return {}
    ids = [plan.id for plan in plans]
    invoices = plan_invoices(session, ids)
    paid = dict(session.execute(
        select(PlanInvoice.plan_id, func.sum(Allocation.amount_cents))
        .join(PaymentPlan, PaymentPlan.id == PlanInvoice.plan_id)
        .join(Allocation, Allocation.invoice_id == PlanInvoice.invoice_id)
        .join(Payment, Payment.id == Allocation.payment_id)
        .where(among(session, PlanInvoice.plan_id, ids), *_since_signed(PaymentPlan))
        .group_by(PlanInvoice.plan_id)).all())
    pending = dict(session.execute(
        select(PlanInvoice.plan_id, func.sum(PaymentRequestItem.amount_cents))
        .join(PaymentPlan, PaymentPlan.id == PlanInvoice.plan_id)
        .join(PaymentRequestItem, PaymentRequestItem.invoice_id == PlanInvoice.invoice_id)
        .join(PaymentRequest, PaymentRequest.id == PaymentRequestItem.request_id)
        .where(among(session, PlanInvoice.plan_id, ids), *_on_its_way(PaymentPlan))
        .group_by(PlanInvoice.plan_id)).all())
    still_owed = owed(session, invoices)
    found = {}
    for plan in plans:
        toward = max(0, int(paid.get(plan.id) or 0))  # as paid_toward: never negative progress
        found[plan.id] = PlanProgress(plan, rules.progress(due_rows(plan), toward, today=today,
                                                           grace_days=plan.grace_days),
                                      toward, int(pending.get(plan.id) or 0), still_owed.get(plan.id, 0))
    return found


def plan_invoices(session: Session, plan_ids: Sequence[int]) -> dict[int, list[int]]:
    """Each plan's invoice ids (``plan_invoice_ids`` of many plans in one statement)."""
    found: dict[int, list[int]] = defaultdict(list)
    for plan_id, invoice_id in session.execute(select(PlanInvoice.plan_id, PlanInvoice.invoice_id).where(
            among(session, PlanInvoice.plan_id, plan_ids)).order_by(PlanInvoice.id)):
        found[plan_id].append(invoice_id)
    return found


def owed(session: Session, invoices: dict[int, list[int]]) -> dict[int, int]:
    """What each plan's invoices still owe in the ledger (the ledger's balance, never below zero)."""
    ids = [i for found in invoices.values() for i in found]
    if not ids:
        return {}
    paid_by = ledger.paid_cents(session, ids)
    balance = {i.id: max(0, invoice_balance(i.status, i.total_cents, paid_by[i.id]))
               for i in session.scalars(select(Invoice).where(among(session, Invoice.id, ids)))}
    return {plan_id: sum(balance[i] for i in found) for plan_id, found in invoices.items()}


def installment(session: Session, plan_id: int, number: int) -> Installment | None:
    return session.scalar(select(Installment).where(Installment.plan_id == plan_id, Installment.number == number))


# --- for other collection rules ------------------------------------------------------------------------------------

def on_current_plan() -> ColumnElement[bool]:
    """SQL: the Invoice in the query is on a current plan (collected by installments: no reminders, late fees or
    full-invoice autopay for it). ``current_key`` is set only while the plan is current."""
    return Invoice.id.in_(select(PlanInvoice.current_key).where(PlanInvoice.current_key.is_not(None)))


def current_plan_invoice_ids(session: Session, client_id: int | None = None,
                             invoice_ids: Iterable[int] | None = None) -> set[int]:
    """The ids of invoices on a current plan (of one client, or among ``invoice_ids``)."""
    query = select(PlanInvoice.current_key).where(PlanInvoice.current_key.is_not(None))
    if client_id is not None:
        query = query.join(PaymentPlan, PaymentPlan.id == PlanInvoice.plan_id).where(
            PaymentPlan.client_id == client_id)
    if invoice_ids is not None:
        query = query.where(PlanInvoice.current_key.in_(list(invoice_ids)))
    return {int(i) for i in session.scalars(query)}
