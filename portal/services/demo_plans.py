"""Demo data for installment plans, replayed through the real services with the clock held at each step's day
(``portal.clock.held_at``), so every offer, signature, payment and event carries the date it would have had:

- a current plan: offered by the MSP five weeks ago, signed by the client the next day, the down payment paid at
  the checkout (by card in the sandbox; recorded as a check otherwise), the first installment paid by check; the
  second installment falls due in a few weeks;
- a defaulted plan: signed seven weeks ago, down payment by check, the first installment never paid; run-due's
  default step ended it after the grace days and emailed the client and the MSP;
- an open counter-offer: a client asked for eight payments and no down payment (beyond the policy); the MSP
  countered with six and 10% down, which waits for the client's answer.

The MSP's plan policy is saved first (self-service on, up to 6 monthly or every-two-weeks payments, 10% down).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.clock import held_at
from portal.domain.plans import PlanStatus
from portal.gateways.payments.sandbox_methods import sandbox_token
from portal.models import Client, Contact, PaymentPlan, PlanOffer, StaffUser

from . import agreements, ledger, payments, standing
from .plans import acceptance, collection, lifecycle, negotiation, offers, policy
from .runtime import Runtime

DEMO_AGENT = "Mozilla/5.0 (demo data; signed by the seeding script)"
#: Who is on which plan: clients whose invoices are long overdue ("struggling" in the demo's habits).
CURRENT_PLAN = "Blue Heron Veterinary Clinic"
DEFAULTED_PLAN = "Prairie Wind Community Alliance"
COUNTERED = "Bright Path Learning Center"
WRITTEN_OFF = "Oak & Anchor Brewing Co."  # a finished plan whose last check came 30 cents short

POLICY = policy.PolicyInput(
    self_service=True, max_balance_cents=1_500_000, max_installments=6, min_down_percent=Decimal("10"),
    frequencies=("biweekly", "monthly"), apr_percent=Decimal("0"), max_apr_percent=Decimal("12"), grace_days=5,
    reminder_days=3)
PROPOSAL_MESSAGE = ("Enrollment is down this term. We can manage about $700 a month but nothing up front; "
                    "could we spread it over eight months?")
COUNTER_MESSAGE = ("We can do six monthly payments with 10% down; that keeps your service running without a "
                   "hold. Sign it in the portal when ready.")


@dataclass(frozen=True)
class DemoPlans:
    current: PaymentPlan | None
    defaulted: PaymentPlan | None
    counter: PlanOffer | None
    written_off: PaymentPlan | None


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=UTC)


def seed(session: Session, rt: Runtime, clients: list[Client], admin: StaffUser, today: date) -> DemoPlans:
    by_name = {c.legal_name: c for c in clients}
    with held_at(_at(today - timedelta(days=60), 9)):
        policy.update_policy(session, POLICY)
    current = _current_plan(session, rt, by_name.get(CURRENT_PLAN), admin, today)
    defaulted = _defaulted_plan(session, rt, by_name.get(DEFAULTED_PLAN), admin, today)
    counter = _counter_offer(session, rt, by_name.get(COUNTERED), admin, today)
    written_off = _written_off_plan(session, rt, by_name.get(WRITTEN_OFF), admin, today)
    # a current plan's invoices no longer count toward a hold: the standings recorded earlier are brought up to
    # date as the next run-due would
    standing.record_changes(session, today)
    return DemoPlans(current, defaulted, counter, written_off)


def _billing_contact(client: Client) -> Contact:
    return next(c for c in client.contacts if c.is_billing)


def _overdue(session: Session, client: Client, on: date) -> tuple[int, ...]:
    """The client's invoices overdue on ``on`` that no payment has touched. The demo's payment history was written
    today, so a part-paid invoice would read as paid into after a plan signed in the past."""
    with held_at(_at(on, 9)):
        found = [c.invoice for c in offers.plannable(session, client.id) if c.invoice.due_date < on]
    paid = ledger.paid_cents(session, [i.id for i in found])
    return tuple(i.id for i in found if not paid[i.id])


def _sign(session: Session, rt: Runtime, contact: Contact, offer: PlanOffer) -> acceptance.Accepted:
    """The client reads the plan agreement in the portal and signs it (typed signature), as in the browser."""
    document = acceptance.document(session, rt, offer)
    meta = agreements.Meta(ip=f"203.0.113.{10 + contact.client_id}", user_agent=DEMO_AGENT,
                           session_id=f"demoplan{contact.client_id:04d}", contact_id=contact.id)
    return acceptance.accept(session, rt, contact, offer.public_id, acceptance.SignedBy(
        full_name=contact.name, title=contact.title or "Office Manager", authority_confirmed=True,
        consent_confirmed=True, signature=agreements.Signature("typed", typed=contact.name),
        shown_sha256=document.sha256), meta=meta)


def _pay_down_payment(session: Session, rt: Runtime, done: acceptance.Accepted, admin: StaffUser, on: date) -> None:
    """At the checkout by card in the sandbox (Stripe's test cards are tokens only there); a check otherwise."""
    request, plan = done.down_payment, done.plan
    if request is None:
        return
    if rt.gateway.is_sandbox:
        payments.pay(session, rt, request, token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    else:
        collection.record_check(session, plan, amount_cents=request.amount_cents, method="check", received_on=on,
                                reference="Check #4471", staff=admin)


def _current_plan(session: Session, rt: Runtime, client: Client | None, admin: StaffUser,
                  today: date) -> PaymentPlan | None:
    offered_on = today - timedelta(days=36)
    invoice_ids = _overdue(session, client, offered_on) if client else ()
    if not invoice_ids:
        return None
    with held_at(_at(offered_on, 16)):
        offer = negotiation.make_offer(session, rt, client.id, offers.Choice(
            invoice_ids=invoice_ids, down_payment_percent=Decimal("20"), installments=4, frequency="monthly",
            first_due_on=offered_on + timedelta(days=21)), staff=admin,
            message="As discussed on the phone: 20% now, the rest over four months, no interest.")
    signed_on = offered_on + timedelta(days=1)
    with held_at(_at(signed_on, 10)):
        done = _sign(session, rt, _billing_contact(client), offer)
        _pay_down_payment(session, rt, done, admin, signed_on)
    plan = session.get(PaymentPlan, done.plan.id)
    first = next(i for i in plan.installments if i.number == 1)
    paid_on = first.due_on - timedelta(days=2)
    with held_at(_at(paid_on + timedelta(days=1), 11)):  # the check arrived before the due date
        collection.record_check(session, plan, amount_cents=first.amount_cents, method="check", received_on=paid_on,
                                reference="Check #4502", staff=admin)
    return plan


def _defaulted_plan(session: Session, rt: Runtime, client: Client | None, admin: StaffUser,
                    today: date) -> PaymentPlan | None:
    offered_on = today - timedelta(days=50)
    invoice_ids = _overdue(session, client, offered_on) if client else ()
    if not invoice_ids:
        return None
    with held_at(_at(offered_on, 15)):
        offer = negotiation.make_offer(session, rt, client.id, offers.Choice(
            invoice_ids=invoice_ids, down_payment_percent=Decimal("10"), installments=3, frequency="monthly",
            first_due_on=offered_on + timedelta(days=14)), staff=admin)
    signed_on = offered_on + timedelta(days=2)
    with held_at(_at(signed_on, 14)):
        done = _sign(session, rt, _billing_contact(client), offer)
    plan = done.plan
    with held_at(_at(signed_on + timedelta(days=3), 10)):  # the down payment by check; nothing after it
        collection.record_check(session, plan, amount_cents=plan.down_payment_cents, method="check",
                                received_on=signed_on + timedelta(days=2), reference="Check #1187", staff=admin)
    first = next(i for i in session.get(PaymentPlan, plan.id).installments if i.number == 1)
    ran_on = first.due_on + timedelta(days=plan.grace_days + 1)
    with held_at(_at(ran_on, 6)):  # run-due's default step, the morning after the grace days ran out
        lifecycle.default_if_missed(session, rt, plan.id, ran_on)
        lifecycle.send_default_notices(session, rt, plan.id)
    session.expire_all()
    plan = session.get(PaymentPlan, plan.id)
    assert plan.status == PlanStatus.DEFAULTED, plan.status
    return plan


def _written_off_plan(session: Session, rt: Runtime, client: Client | None, admin: StaffUser,
                      today: date) -> PaymentPlan | None:
    """Two monthly installments paid by check, the last one 30 cents short: less than a card can be charged, so the
    admin wrote it off and the plan completed."""
    offered_on = today - timedelta(days=120)
    invoice_ids = _overdue(session, client, offered_on)[:1] if client else ()
    if not invoice_ids:
        return None
    with held_at(_at(offered_on, 11)):
        offer = negotiation.make_offer(session, rt, client.id, offers.Choice(
            invoice_ids=invoice_ids, installments=2, frequency="monthly",
            first_due_on=offered_on + timedelta(days=14)), staff=admin)
    with held_at(_at(offered_on + timedelta(days=1), 9)):
        plan = _sign(session, rt, _billing_contact(client), offer).plan
    for number, short, reference in ((1, 0, "Check #2210"), (2, 30, "Check #2264")):
        row = next(i for i in session.get(PaymentPlan, plan.id).installments if i.number == number)
        with held_at(_at(row.due_on, 15)):
            collection.record_check(session, session.get(PaymentPlan, plan.id), amount_cents=row.amount_cents - short,
                                    method="check", received_on=row.due_on, reference=reference, staff=admin)
    with held_at(_at(row.due_on + timedelta(days=3), 10)):
        collection.write_off_remainder(session, session.get(PaymentPlan, plan.id), staff=admin)
        lifecycle.complete_if_done(session, rt, plan.id, row.due_on + timedelta(days=3))
    session.expire_all()
    plan = session.get(PaymentPlan, plan.id)
    assert plan.status == PlanStatus.COMPLETED, plan.status
    return plan


def _counter_offer(session: Session, rt: Runtime, client: Client | None, admin: StaffUser,
                   today: date) -> PlanOffer | None:
    proposed_on = today - timedelta(days=3)
    invoice_ids = _overdue(session, client, proposed_on) if client else ()
    if not invoice_ids:
        return None
    contact = _billing_contact(client)
    with held_at(_at(proposed_on, 19)):
        proposal = negotiation.propose(session, rt, contact, offers.Choice(
            invoice_ids=invoice_ids, installments=8, frequency="monthly",
            first_due_on=proposed_on + timedelta(days=28)), message=PROPOSAL_MESSAGE)
    answered_on = today - timedelta(days=2)
    with held_at(_at(answered_on, 10)):
        return negotiation.counter(session, rt, proposal.id, offers.Choice(
            invoice_ids=tuple(line.invoice_id for line in proposal.invoices),
            down_payment_percent=Decimal("10"), installments=6, frequency="monthly",
            first_due_on=answered_on + timedelta(days=30)), staff=admin, message=COUNTER_MESSAGE)
