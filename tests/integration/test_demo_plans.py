"""`portal demo`'s installment plans: a current plan with payments made and the next installment upcoming, a
defaulted plan (its notices emailed), a completed plan whose last 30 cents were written off, and an open
counter-offer to a client's proposal, all made by the real services with the clock held at each step's day (and the
clock given back afterwards)."""

from __future__ import annotations

from sqlalchemy import select

from portal.cli import worker_sessions
from portal.domain.plans import InstallmentStatus, OfferStatus, PlanStatus
from portal.models import Client, ClientStanding, LedgerAdjustment, PaymentPlan, PaymentRequest, PlanEvent, PlanOffer
from portal.services import adjustments, demo, demo_plans, standing
from portal.services.plans import collection, lifecycle
from portal.services.plans.progress import current_plan_invoice_ids, progress_of


def plan_of(session, name) -> PaymentPlan:
    return session.scalar(select(PaymentPlan).join(Client).where(Client.legal_name == name))


def test_the_demo_has_a_current_plan_a_defaulted_plan_and_an_open_counter_offer(app, session, rt, clock):
    start = clock.now()
    demo.seed_demo(session, rt, open_session=worker_sessions(app))
    today = clock.today()
    assert clock.now() == start  # the clock the seeding held is given back

    current = plan_of(session, demo_plans.CURRENT_PLAN)
    assert current.status == PlanStatus.CURRENT and current.agreement.status == "signed"
    found = progress_of(session, current, today)
    statuses = [r.status for r in found.progress.rows]
    assert statuses[:2] == [InstallmentStatus.PAID, InstallmentStatus.PAID]  # the down payment and installment 1
    assert all(s is InstallmentStatus.UPCOMING for s in statuses[2:]) and len(statuses) == 5
    upcoming = [i for i in current.installments if i.number == 2][0]
    assert upcoming.due_on > today and found.paid_cents == sum(i.amount_cents for i in current.installments[:2])
    assert current.accepted_at.date() < today
    assert current_plan_invoice_ids(session, current.client_id)  # its invoices are out of the usual collection
    assert lifecycle.default_missed(session, rt, today).defaulted == 0  # the demo's today: nothing is missed

    defaulted = plan_of(session, demo_plans.DEFAULTED_PLAN)
    assert defaulted.status == PlanStatus.DEFAULTED and defaulted.default_notice_sent_at is not None
    down = session.get(PaymentRequest, defaulted.down_payment_request_id)
    assert down.status == "withdrawn"  # paid by check: its checkout link charges nothing
    assert defaulted.defaulted_at.date() < today
    assert collection.remaining_cents(session, defaulted) > 0
    assert not current_plan_invoice_ids(session, defaulted.client_id)  # the usual rules apply again
    kinds = session.scalars(select(PlanEvent.kind).where(PlanEvent.plan_id == defaulted.id)).all()
    assert "defaulted" in kinds and "payment_recorded" in kinds

    thread = session.scalars(select(PlanOffer).join(Client).where(Client.legal_name == demo_plans.COUNTERED)
                             .order_by(PlanOffer.id)).all()
    assert [(o.proposed_by, o.status) for o in thread] == [("client", OfferStatus.COUNTERED),
                                                          ("msp", OfferStatus.OPEN)]
    proposal, counter = thread
    assert proposal.installments == 8 and proposal.down_payment_cents == 0 and proposal.message
    assert counter.installments == 6 and counter.down_payment_cents > 0 and counter.parent_id == proposal.id
    assert counter.thread_id == proposal.thread_id

    written_off = plan_of(session, demo_plans.WRITTEN_OFF)  # the last check 30 cents short, written off
    assert written_off.status == PlanStatus.COMPLETED and written_off.completed_at.date() < today
    [adjustment] = session.scalars(select(LedgerAdjustment).where(LedgerAdjustment.client_id == written_off.client_id))
    assert (adjustment.kind, adjustment.amount_cents) == (adjustments.WRITE_OFF, 30)
    kinds = session.scalars(select(PlanEvent.kind).where(PlanEvent.plan_id == written_off.id)
                            .order_by(PlanEvent.id)).all()
    assert kinds[-2:] == ["written_off", "completed"]
    assert not current_plan_invoice_ids(session, written_off.client_id)

    for plan in (current, defaulted):  # the standings recorded after the plans (a current plan's invoices: no hold)
        recorded = session.scalar(select(ClientStanding.standing).where(ClientStanding.client_id == plan.client_id))
        assert recorded in (None, standing.for_client(session, plan.client, today).standing)
