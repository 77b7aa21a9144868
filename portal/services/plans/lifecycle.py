"""A plan's end and its reminders, run by `run-due` (and after a payment the admin records).

- completion: when the schedule is paid (``Progress.completed``), or every invoice of the plan is paid after a
  payoff (which charges interest only to its day, so the schedule's total is never reached), the plan is
  "completed" and the client gets a closing note;
- default: an installment still unpaid past its due date and the grace days defaults the plan; the remaining balance
  falls due on the usual rules again (``PlanInvoice.current_key`` cleared, so reminders, late fees and autopay see
  the invoices as ordinary ones), and the client and the MSP are told once;
- reminders: a client with no saved method is emailed a pay link ``PlanPolicy.reminder_days`` before each
  installment, once (``PlanEvent.once_key``).

Each change of status is made under the client's invoices' lock then the plan's row lock (the lock order of
``services/locking.py``), after checking the status again, so two nodes never both default or complete a plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.invoices import InvoiceStatus
from portal.domain.money import format_money
from portal.domain.plan_offers import OfferEvent
from portal.domain.plans import InstallmentStatus, OfferStatus, PlanStatus
from portal.models import Installment, Invoice, PaymentPlan, PlanEvent, PlanInvoice, PlanOffer, PlanPolicy, StaffUser

from .. import billing, ledger, mail
from ..locking import begin_write
from ..payments.autopay_mail import billing_emails
from ..payments.locks import lock_client_invoices
from ..runtime import Runtime
from ..settings import get_settings
from .charging import IN_FLIGHT, Target, target, usable_method
from .negotiation import event as offer_event
from .progress import INTEREST, progress_of

log = logging.getLogger(__name__)


@dataclass
class LifecycleReport:
    completed: int = 0
    defaulted: int = 0
    notices: int = 0


def current_plan_ids(session: Session) -> list[int]:
    return list(session.scalars(select(PaymentPlan.id).where(PaymentPlan.status == PlanStatus.CURRENT)
                                .order_by(PaymentPlan.id)))


def _lock(session: Session, plan_id: int) -> PaymentPlan | None:
    """The client's invoices, then the plan row, as committed now; None when the plan is no longer current."""
    client_id = session.scalar(select(PaymentPlan.client_id).where(PaymentPlan.id == plan_id))
    if client_id is None:
        return None
    begin_write(session)
    lock_client_invoices(session, client_id)
    plan = session.get(PaymentPlan, plan_id, with_for_update=True, populate_existing=True)
    if plan is None or plan.status != PlanStatus.CURRENT:
        session.rollback()
        return None
    session.expire(plan, ["installments", "invoices"])
    return plan


def _release_invoices(session: Session, plan_id: int) -> None:
    """The plan's invoices are no longer collected by it: the usual rules see them again."""
    session.execute(update(PlanInvoice).where(PlanInvoice.plan_id == plan_id).values(current_key=None))


def _supersede_renegotiations(session: Session, plan: PaymentPlan, why: str) -> None:
    """Open offers renegotiating a plan that just ended can no longer be signed (as when the MSP cancels it)."""
    for offer in session.scalars(select(PlanOffer).where(PlanOffer.renegotiates_plan_id == plan.id,
                                                         PlanOffer.status == OfferStatus.OPEN)):
        offer.status, offer.decided_at, offer.decision_note = OfferStatus.SUPERSEDED, now(), why
        offer_event(session, offer, OfferEvent.SUPERSEDED, why)


def _event(plan: PaymentPlan, kind: str, detail: str, once_key: str | None = None) -> PlanEvent:
    return PlanEvent(client_id=plan.client_id, plan_id=plan.id, thread_id=plan.offer.thread_id or plan.offer_id,
                     kind=kind, detail=detail, once_key=once_key, created_at=now())


# --- completion --------------------------------------------------------------------------------------------------

def _looks_done(session: Session, plan_id: int, today: date) -> bool:
    plan = session.get(PaymentPlan, plan_id)
    if plan is None or plan.status != PlanStatus.CURRENT:
        return False
    found = progress_of(session, plan, today)
    return (found.progress.completed or found.settled) and not found.pending_cents


def _looks_missed(session: Session, plan_id: int, today: date) -> bool:
    plan = session.get(PaymentPlan, plan_id)
    if plan is None or plan.status != PlanStatus.CURRENT:
        return False
    found = progress_of(session, plan, today)
    return found.progress.first_missed is not None and not found.pending_cents


def complete_if_done(session: Session, rt: Runtime, plan_id: int, today: date) -> bool:
    """Complete the plan when it is paid; True when this call completed it (and told the client). Checked without
    locks first: most plans on most runs are neither paid nor missed, and need no lock at all."""
    if not _looks_done(session, plan_id, today):
        session.rollback()
        return False
    plan = _lock(session, plan_id)
    if plan is None:
        return False
    found = progress_of(session, plan, today)
    if not (found.progress.completed or found.settled) or found.pending_cents:
        session.rollback()
        return False
    plan.status, plan.completed_at = PlanStatus.COMPLETED, now()
    if found.progress.completed:
        _void_unpaid_payoff_interest(session, plan)
    _release_invoices(session, plan.id)
    _supersede_renegotiations(session, plan, f"Plan {plan.reference} was paid in full.")
    session.add(_event(plan, "completed", f"Paid in full: {format_money(found.paid_cents, plan.currency)} received "
                                          "toward the plan", once_key=f"complete:{plan.id}"))
    session.commit()
    _send(session, rt, billing_emails(plan.client), f"Payment plan {plan.reference} is paid in full", "plan_completed",
          {"plan": plan, "paid_cents": found.paid_cents, "plan_url": rt.url("plans.mine", plan_id=plan.id)})
    return True


def _void_unpaid_payoff_interest(session: Session, plan: PaymentPlan) -> None:
    """The schedule is paid, its interest included: the interest invoice of a payoff the client started and never
    paid (interest to that day, which the installments have paid since) bills nothing, so it is voided rather than
    left open to be collected as an ordinary invoice once the plan lets go of it. Under the caller's locks."""
    invoices = session.scalars(
        select(Invoice).join(PlanInvoice, PlanInvoice.invoice_id == Invoice.id)
        .where(PlanInvoice.plan_id == plan.id, PlanInvoice.role == INTEREST,
               PlanInvoice.installment_number.is_(None), Invoice.status == InvoiceStatus.OPEN)).all()
    paid = ledger.paid_cents(session, [i.id for i in invoices])
    for invoice in invoices:
        if paid[invoice.id] == 0:
            billing.void_invoice(session, invoice, f"Payoff not made: payment plan {plan.reference} was paid as "
                                 "scheduled.", commit=False)


# --- default -----------------------------------------------------------------------------------------------------

def default_if_missed(session: Session, rt: Runtime, plan_id: int, today: date) -> bool:
    """Default the plan when a row is unpaid past its grace days; True when this call defaulted it."""
    if not _looks_missed(session, plan_id, today):
        session.rollback()
        return False
    plan = _lock(session, plan_id)
    if plan is None:
        return False
    found = progress_of(session, plan, today)
    missed = found.progress.first_missed
    if missed is None or found.pending_cents:  # money on its way: wait for it before calling the plan broken
        session.rollback()
        return False
    charge = target(session, rt, plan, today)
    if isinstance(charge, Target) or charge == IN_FLIGHT:
        # the saved method is still to be charged for it (by the installments step, of this run or of another
        # node's that may be charging this plan right now): a plan defaults once the portal could not collect
        session.rollback()
        return False
    what = "the down payment" if missed.number == 0 else f"installment {missed.number}"
    plan.status, plan.defaulted_at = PlanStatus.DEFAULTED, now()
    _release_invoices(session, plan.id)
    _supersede_renegotiations(session, plan, f"Plan {plan.reference} defaulted.")
    session.add(_event(plan, "defaulted", f"Defaulted: {what} of {format_money(missed.amount_cents, plan.currency)} "
                                          f"due {missed.due_on.isoformat()} unpaid after {plan.grace_days} grace "
                                          "days; the remaining balance is due", once_key=f"default:{plan.id}"))
    session.commit()
    return True  # the notices go from default_missed, which retries a refused one on the next run


def send_default_notices(session: Session, rt: Runtime, plan_id: int) -> int:
    """The client's and the MSP's notices of a default, until they went (``default_notice_sent_at``)."""
    plan = session.get(PaymentPlan, plan_id)
    if plan is None or plan.status != PlanStatus.DEFAULTED or plan.default_notice_sent_at is not None:
        return 0
    found = progress_of(session, plan, plan.defaulted_at.date() if plan.defaulted_at else now().date())
    context = {"plan": plan, "remaining_cents": found.open_cents, "missed": found.progress.first_missed,
               "plan_url": rt.url("plans.mine", plan_id=plan.id),
               "admin_url": rt.url("plans.admin_detail", plan_id=plan.id)}
    sent = _send(session, rt, billing_emails(plan.client), f"Payment plan {plan.reference} has ended: balance due",
                 "plan_defaulted", {**context, "to_staff": False})
    staff = _staff_emails(session)
    sent_staff = _send(session, rt, staff, f"{plan.client.legal_name}: payment plan {plan.reference} defaulted",
                       "plan_defaulted", {**context, "to_staff": True}) if staff else True
    if sent and sent_staff:
        begin_write(session)
        session.execute(update(PaymentPlan).where(PaymentPlan.id == plan_id,
                                                  PaymentPlan.default_notice_sent_at.is_(None))
                        .values(default_notice_sent_at=now()))
        session.commit()
        return 2 if staff else 1
    session.rollback()
    return 0


def _staff_emails(session: Session) -> list[str]:
    msp = get_settings(session)
    if msp.email:
        return [msp.email]
    return list(session.scalars(select(StaffUser.email).where(StaffUser.is_active.is_(True)).order_by(StaffUser.id)))


# --- reminders ---------------------------------------------------------------------------------------------------

def reminder_days(session: Session) -> int:
    policy = session.scalar(select(PlanPolicy).order_by(PlanPolicy.id))
    return policy.reminder_days if policy is not None else PlanPolicy.reminder_days.default.arg


def send_reminders(session: Session, rt: Runtime, today: date) -> int:
    """Each unpaid installment due within ``reminder_days`` of a client with no saved method to charge: one email
    with a link to the plan page. Claimed by its ``once_key`` before the email goes; a refused email gives the claim
    back so the next run tries again."""
    days = reminder_days(session)
    rows = session.execute(
        select(Installment.id, Installment.plan_id).join(PaymentPlan, PaymentPlan.id == Installment.plan_id)
        .where(PaymentPlan.status == PlanStatus.CURRENT, Installment.number > 0,
               Installment.due_on >= today, Installment.due_on <= today + timedelta(days=days))
        .order_by(Installment.due_on, Installment.id)).all()
    already = set(session.scalars(select(PlanEvent.once_key).where(
        PlanEvent.once_key.in_([f"remind:{installment_id}" for installment_id, _ in rows]))))
    sent = 0
    for installment_id, plan_id in rows:
        key = f"remind:{installment_id}"
        if key in already:
            continue
        plan = session.get(PaymentPlan, plan_id)
        assert plan is not None
        if usable_method(session, rt, plan.client_id, today) is not None:
            continue  # run-due charges it on its date
        found = progress_of(session, plan, today)
        row = session.get(Installment, installment_id)
        state = next((s for s in found.progress.rows if s.number == row.number), None)
        if state is None or state.status is InstallmentStatus.PAID:
            continue
        if _remind(session, rt, plan, row, state.owing_cents, key):
            sent += 1
    return sent


def _remind(session: Session, rt: Runtime, plan: PaymentPlan, row: Installment, owing_cents: int, key: str) -> bool:
    begin_write(session)
    event = _event(plan, "reminder_sending", f"Reminder for installment {row.number} being sent", once_key=key)
    session.add(event)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # another node claimed it
        return False
    ok = _send(session, rt, billing_emails(plan.client),
               f"Payment plan {plan.reference}: {format_money(owing_cents, plan.currency)} due "
               f"{row.due_on.strftime('%B %-d')}", "plan_reminder",
               {"plan": plan, "installment": row, "owing_cents": owing_cents,
                "plan_url": rt.url("plans.mine", plan_id=plan.id)})
    begin_write(session)
    if ok:
        session.execute(update(PlanEvent).where(PlanEvent.id == event.id).values(
            kind="reminder_sent", detail=f"Reminder sent for installment {row.number} "
                                         f"({format_money(owing_cents, plan.currency)} due {row.due_on.isoformat()})"))
    else:
        session.execute(delete(PlanEvent).where(PlanEvent.id == event.id))  # not sent: the next run tries again
    session.commit()
    return ok


# --- run-due ------------------------------------------------------------------------------------------------------

def complete_done(session: Session, rt: Runtime, today: date) -> LifecycleReport:
    """`run-due`'s "plan completion": every current plan that is paid."""
    report = LifecycleReport()
    for plan_id in current_plan_ids(session):
        if complete_if_done(session, rt, plan_id, today):
            report.completed += 1
            report.notices += 1
    return report


def default_missed(session: Session, rt: Runtime, today: date) -> LifecycleReport:
    """`run-due`'s "plan defaults": every current plan with a row unpaid past its grace days; then the default
    notices still owed (an email refused on an earlier run)."""
    report = LifecycleReport()
    for plan_id in current_plan_ids(session):
        if default_if_missed(session, rt, plan_id, today):
            report.defaulted += 1
    for plan_id in list(session.scalars(select(PaymentPlan.id).where(
            PaymentPlan.status == PlanStatus.DEFAULTED, PaymentPlan.default_notice_sent_at.is_(None)))):
        report.notices += send_default_notices(session, rt, plan_id)
    return report


def _send(session: Session, rt: Runtime, to: list[str], subject: str, template: str, context: dict) -> bool:
    if not to:
        log.warning("%s: nobody to email", template)
        return False
    msp = get_settings(session)
    try:
        delivery = mail.send(session, rt, to=to, subject=subject, template=template,
                             context={"msp": msp, "client": context["plan"].client, **context})
    except Exception:  # an email must never stop run-due; what was decided is already committed
        session.rollback()
        log.exception("%s email not sent", template)
        return False
    if not delivery.ok:
        log.error("%s email refused: %s", template, delivery.error)
    return delivery.ok
