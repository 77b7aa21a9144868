"""`run-due` charging installments on the client's saved method, with autopay's safety and autopay's pieces.

An installment (or an unpaid down payment) due today, or whose retry day has come, is charged off-session when its
plan is current and the client has a usable default (or fallback) method. The charge is an ordinary payment request
for what the row still owes (split over interest and covered invoices like any plan payment, ``collection.split``)
with a ChargeAttempt of origin "autopay", so booking, receipts, webhooks and reconciliation treat it as they treat
autopay. What this module adds is the claim:

- one transaction that first locks the client's invoices (on PostgreSQL with SKIP LOCKED: a client another process
  is charging is left to it), decides under that lock, and inserts the request, the attempt (its idempotency key
  from its id) and an ``InstallmentCharge`` numbered per installment, then commits, all before the gateway call;
- the unique (installment, charge number) pair is the last word: of two processes that both decided to charge, one
  insert fails and that process charges nothing;
- the call itself is ``payments.charging.send_call``: no answer leaves the attempt for reconciliation to replay
  with the same key, never a new charge.

After a decline (``handle``, once, under the charge row's lock): a hard decline blocks the method, so the next round
charges the fallback the same day; a soft one is retried on the MSP's autopay retry schedule
(``declines.next_retry``); the client is emailed what happened and what happens next each time.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import autopay as policy
from portal.domain import declines
from portal.domain import payments as rules
from portal.domain import plans as plans_domain
from portal.domain.money import format_money
from portal.domain.payments import GATEWAY_MINIMUM_CENTS, AttemptOrigin
from portal.domain.plans import PlanStatus
from portal.models import ChargeAttempt, Installment, InstallmentCharge, PaymentPlan, PlanEvent, SavedPaymentMethod

from .. import mail
from ..autopay import methods
from ..autopay import rules as autopay_rules
from ..locking import begin_write
from ..payments import autopay_declines, charging
from ..payments.autopay_charging import LOCKED_ELSEWHERE, Claim, lock_client_invoices_now
from ..payments.autopay_mail import billing_emails
from ..payments.locks import end_reads, lock_client_invoices
from ..runtime import Runtime
from ..settings import get_settings
from . import collection
from .progress import paid_toward, pending_toward

log = logging.getLogger(__name__)

#: Why a due installment was not charged on a run (not charged is never an error: the plan's reminders and default
#: rules take over).
NO_METHOD, IN_FLIGHT, RETRY_LATER, GAVE_UP, NOT_DUE, BELOW_MINIMUM = (
    "no_usable_method", "payment_in_flight", "retry_scheduled", "gave_up", "not_due_yet", "below_gateway_minimum")


@dataclass
class PlanChargeReport:
    charged: int = 0
    outcomes: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """The one schedule row to charge now, for how much, on which saved method, as which charge number."""

    installment_id: int
    number: int
    amount_cents: int
    method_row_id: int
    customer_id: str
    charge_number: int


def usable_method(session: Session, rt: Runtime, client_id: int, today: date
                  ) -> tuple[SavedPaymentMethod, str] | None:
    """The client's default (or, when the rules allow, fallback) method autopay would charge, and its customer."""
    customer = methods.customer_of(session, client_id, rt.gateway.name)
    if customer is None:
        return None
    rows = [m for m in methods.methods_of(session, client_id) if m.gateway == rt.gateway.name]
    usable = policy.usable_methods(methods.domain_methods(rows), autopay_rules.rules_for(session, client_id), today)
    if not usable:
        return None
    return next(m for m in rows if m.method_id == usable[0].method_id), customer


def target(session: Session, rt: Runtime, plan: PaymentPlan, today: date) -> Target | str | None:
    """What to charge on this plan today (None: nothing due; a reason string: due but not charged now)."""
    if plan.status != PlanStatus.CURRENT:
        return None
    installments = plan.installments
    charge = plans_domain.next_charge([i.amount_cents for i in installments], paid_toward(session, plan))
    # the rows it reaches must all be due (a few cents left on a row wait for the next row's date)
    if charge is None or installments[charge.last].due_on > today:
        return None
    row = installments[charge.first]
    if row.number == 0 and row.due_on >= today:
        # acceptance day: the client is at the down payment's checkout right now, and a charge on the saved method
        # as well would take it twice; from the next day an unpaid down payment is charged like an installment
        return None
    if pending_toward(session, plan):
        return IN_FLIGHT
    amount = charge.cents
    history = session.execute(
        select(InstallmentCharge, ChargeAttempt.status)
        .join(ChargeAttempt, ChargeAttempt.id == InstallmentCharge.attempt_id)
        .where(InstallmentCharge.installment_id == row.id).order_by(InstallmentCharge.charge_number)).all()
    if any(status in rules.IN_FLIGHT or (c.handled_at is None and status in rules.FINAL - {rules.SUCCEEDED})
           for c, status in history):
        return IN_FLIGHT  # still on its way, or a decline whose consequences have not run yet
    found = usable_method(session, rt, plan.client_id, today)
    if found is None:
        return NO_METHOD
    method, customer = found
    failed = [declines.FailedAttempt(c.charged_on, declines.DeclineClass(c.decline_class)) for c, status in history
              if c.method_id == method.method_id and status in rules.FINAL - {rules.SUCCEEDED} and c.decline_class]
    if failed:
        schedule = autopay_rules.rules_for(session, plan.client_id).retry_days
        step = declines.next_retry(failed, schedule, method_type=method.method_type)
        if step.retry_on is None:
            return GAVE_UP
        if step.retry_on > today:
            return RETRY_LATER
    if amount < GATEWAY_MINIMUM_CENTS:
        return BELOW_MINIMUM
    number = (history[-1][0].charge_number + 1) if history else 1
    return Target(row.id, row.number, amount, method.id, customer, number)


def claim(session: Session, rt: Runtime, plan_id: int, today: date) -> Claim | str | None:
    """Decide and write one charge of the plan in one transaction, under the client's invoices' lock, committed
    before the gateway is called. A reason string (or None) when nothing is charged."""
    client_id = session.scalar(select(PaymentPlan.client_id).where(PaymentPlan.id == plan_id))
    if client_id is None:
        return None
    begin_write(session)
    if not lock_client_invoices_now(session, client_id):
        session.rollback()
        return LOCKED_ELSEWHERE
    payable = collection.checkout.payable(session, client_id)  # already locked above
    plan = session.get(PaymentPlan, plan_id, with_for_update=True, populate_existing=True)
    assert plan is not None
    session.expire(plan, ["installments", "invoices"])
    found = target(session, rt, plan, today)
    if not isinstance(found, Target):
        session.rollback()
        return found
    method = session.get(SavedPaymentMethod, found.method_row_id)
    assert method is not None
    try:
        items = collection.split(session, plan, found.amount_cents, today, payable).items
        request = collection.request_for(session, plan, None, items, payable)
    except IntegrityError:
        session.rollback()  # an interest invoice's number was taken by another process meanwhile: decide again
        return LOCKED_ELSEWHERE
    except Exception:
        session.rollback()
        log.exception("plan %s: the installment could not be split over its invoices", plan_id)
        raise
    stamp = now()
    attempt = ChargeAttempt(
        request=request, attempt_number=1, gateway=rt.gateway.name, customer_id=found.customer_id,
        method_token=method.method_id, origin=AttemptOrigin.AUTOPAY, status=rules.CREATED,
        method_type=method.method_type, card_funding=method.card_funding, brand=method.brand, last4=method.last4,
        amount_cents=request.amount_cents, surcharge_cents=0, charged_cents=request.amount_cents,
        currency=plan.currency, created_at=stamp, updated_at=stamp)
    session.add(attempt)
    try:
        session.flush()
        attempt.idempotency_key = f"portal-plan-{attempt.id}-{secrets.token_hex(6)}"
        row = InstallmentCharge(installment_id=found.installment_id, plan_id=plan.id,
                                charge_number=found.charge_number, request_id=request.id, attempt_id=attempt.id,
                                method_id=method.method_id, charged_on=today, amount_cents=request.amount_cents,
                                created_at=stamp)
        session.add(row)
        session.flush()
        call = charging.call_for(session, rt, attempt)  # read now: nothing may read between the commit and the call
        session.commit()
    except IntegrityError:
        session.rollback()  # another process numbered this charge first: it charges, we do not
        return LOCKED_ELSEWHERE
    return Claim(row.id, attempt.id, call, attempt, request)


def charge_plan(session: Session, rt: Runtime, plan_id: int, today: date, report: PlanChargeReport) -> None:
    """Everything due on one plan: a paid row lets the next overdue row be charged; a hard decline lets the fallback
    be charged the same day; a soft decline waits for its retry day."""
    seen: set[int] = set()
    for _ in range(12):
        outcome = _claim_patiently(session, rt, plan_id, today)
        if not isinstance(outcome, Claim) or outcome.charge_id in seen:
            return
        seen.add(outcome.charge_id)
        attempt = charging.send_call(session, rt, outcome.attempt_id, outcome.call, source="autopay")
        report.charged += 1
        report.outcomes[attempt.status] += 1
        if attempt.status == rules.UNKNOWN:
            report.problems.append(f"charge attempt {attempt.id}: no answer from the gateway; "
                                   "the next run replays it with the same key")
            return
        if attempt.status not in rules.FINAL:
            return  # a bank debit on its way: nothing more until it settles
        handle(session, rt, outcome.charge_id)


#: Another process may hold the client's invoices for a moment, or have taken the invoice number an interest invoice
#: wanted (numbers are global): wait a little and decide again, which then sees that process's charge.
CLAIM_TRIES = 4
CLAIM_WAIT_SECONDS = (0.02, 0.15)


def _claim_patiently(session: Session, rt: Runtime, plan_id: int, today: date) -> Claim | str | None:
    outcome: Claim | str | None = LOCKED_ELSEWHERE
    for attempt in range(CLAIM_TRIES):
        outcome = claim(session, rt, plan_id, today)
        if outcome != LOCKED_ELSEWHERE or attempt == CLAIM_TRIES - 1:
            return outcome
        time.sleep(random.uniform(*CLAIM_WAIT_SECONDS))
    return outcome


def charge_due(session: Session, rt: Runtime, today: date) -> PlanChargeReport:
    """Every current plan with a row due by today (``run-due``'s "plan installments" step)."""
    report = PlanChargeReport()
    handle_outcomes(session, rt)
    plan_ids = list(session.scalars(
        select(PaymentPlan.id).join(Installment, Installment.plan_id == PaymentPlan.id)
        .where(PaymentPlan.status == PlanStatus.CURRENT, Installment.due_on <= today)
        .group_by(PaymentPlan.id).order_by(PaymentPlan.id)))
    end_reads(session)
    for plan_id in plan_ids:
        try:
            charge_plan(session, rt, plan_id, today, report)
        except Exception as e:  # one plan's failure must not stop the others; the run log says what happened
            session.rollback()
            log.exception("plan installments: plan %s", plan_id)
            report.problems.append(f"plan {plan_id}: {type(e).__name__}: {e}")
    return report


# --- after the charge ----------------------------------------------------------------------------------------------

def handle(session: Session, rt: Runtime, charge_id: int) -> declines.Decline | None:
    """The consequences of one ended installment charge, once (under its row lock): a timeline line; after a
    decline, a hard one blocks the method and the client is told what happens next."""
    client_id = session.scalar(select(PaymentPlan.client_id).join(InstallmentCharge,
                                                                  InstallmentCharge.plan_id == PaymentPlan.id)
                               .where(InstallmentCharge.id == charge_id))
    if client_id is None:
        return None
    begin_write(session)
    lock_client_invoices(session, client_id)  # the lock order: invoices first
    row = session.get(InstallmentCharge, charge_id, with_for_update=True, populate_existing=True)
    attempt = session.get(ChargeAttempt, row.attempt_id, populate_existing=True) if row else None
    if row is None or attempt is None or row.handled_at is not None or attempt.status not in rules.FINAL:
        session.rollback()
        return None
    row.handled_at = now()
    plan = session.get(PaymentPlan, row.plan_id)
    assert plan is not None
    number = row.installment.number
    what = "the down payment" if number == 0 else f"installment {number}"
    money = format_money(row.amount_cents, plan.currency)
    if attempt.status == rules.SUCCEEDED:
        session.add(PlanEvent(client_id=client_id, plan_id=plan.id, kind="installment_charged", created_at=now(),
                              detail=f"{money} charged for {what} on the saved method (charge {row.charge_number})"))
        session.commit()
        return None
    decline = declines.classify(method_type=attempt.method_type, failure_code=attempt.failure_code,
                                decline_code=attempt.decline_code)
    row.decline_class = decline.kind
    if decline.stops_method:
        autopay_declines.block_method(session, client_id, row.method_id, decline)
    session.add(PlanEvent(client_id=client_id, plan_id=plan.id, kind="installment_declined", created_at=now(),
                          detail=f"{money} for {what} declined ({decline.kind.value}: {decline.code})"))
    session.commit()
    _send_decline(session, rt, plan, row, decline, what)
    return decline


def handle_outcomes(session: Session, rt: Runtime) -> int:
    """Ended installment charges not handled yet (a bank debit returned days later, a run that was killed)."""
    ids = session.scalars(
        select(InstallmentCharge.id).join(ChargeAttempt, ChargeAttempt.id == InstallmentCharge.attempt_id)
        .where(InstallmentCharge.handled_at.is_(None), ChargeAttempt.status.in_(rules.FINAL))
        .order_by(InstallmentCharge.id)).all()
    return sum(1 for charge_id in ids if handle(session, rt, charge_id) is not None)


def _send_decline(session: Session, rt: Runtime, plan: PaymentPlan, row: InstallmentCharge,
                  decline: declines.Decline, what: str) -> None:
    today = row.charged_on
    found = target(session, rt, plan, today)
    session.rollback()
    if isinstance(found, Target):
        next_step = "fallback"
    elif found == RETRY_LATER:
        next_step = "retry"
    else:
        next_step = "stopped"
    msp = get_settings(session)
    context = {"msp": msp, "plan": plan, "client": plan.client, "what": what, "charge": row,
               "decline": decline.kind.value, "next_step": next_step, "plan_url": rt.url("plans.mine", plan_id=plan.id),
               "update_url": rt.url("autopay.methods")}
    try:
        delivery = mail.send(session, rt, to=billing_emails(plan.client),
                             subject=f"Your payment plan {plan.reference}: {what} did not go through",
                             template="plan_declined", context=context)
    except Exception:  # an email must never stop the run: the timeline already says what happened
        session.rollback()
        log.exception("plan %s: decline email not sent", plan.id)
        return
    if not delivery.ok:
        log.error("plan %s: decline email refused: %s", plan.id, delivery.error)
