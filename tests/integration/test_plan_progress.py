"""What counts toward a plan: money the client paid before signing is not the plan's. A bank debit started before
the plan was signed leaves the invoice's plannable balance smaller (the offer covered only what was left); when it
settles after the signature it must not read as paid toward the plan as well (it would count twice: the plan would
look paid ahead while the invoices still owe the whole plan)."""

from __future__ import annotations

from sqlalchemy import select

from portal.domain.plans import InstallmentStatus
from portal.models import PaymentPlan
from portal.services import payments
from portal.services.plans import collection, negotiation
from portal.services.plans.overview import plan_payments
from portal.services.plans.progress import progress_of
from tests.integration.test_plan_offers import choice, sign
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, runtime_for


def test_a_bank_debit_started_before_signing_is_not_counted_toward_the_plan(app, session, shop, make,
                                                                             stripe_gateway, fake_stripe, clock):
    rt = runtime_for(stripe_gateway)
    request = payments.create_request(session, client=shop.client, contact=shop.contact,
                                      amounts={shop.second.id: 10_000})
    attempt = payments.pay(session, rt, request, token=fake_stripe.confirmation_token("pm_usBankAccount_success"),
                           attempt_number=1)
    assert attempt.status == "processing"
    clock.advance(minutes=10)  # the client then calls, and the MSP offers a plan for the rest

    offer = negotiation.make_offer(session, rt, shop.client.id, choice(shop), staff=make.staff())
    assert offer.balance_cents == 25_000  # 10,000 + 15,000: the debit on its way is not the plan's to collect
    plan = sign(session, rt, shop.contact, offer).plan

    before = progress_of(session, session.get(PaymentPlan, plan.id), clock.today())
    fake_stripe.settle(attempt.gateway_id)
    payments.reconcile(session, rt)
    session.expire_all()
    after = progress_of(session, session.scalar(select(PaymentPlan)), clock.today())

    assert (before.paid_cents, before.pending_cents) == (0, 0)
    assert invoice_state(session, shop.second) == ("open", 15_000)
    assert (after.paid_cents, after.pending_cents) == (0, 0)
    assert after.progress.rows[0].status is not InstallmentStatus.PAID  # the down payment is still to pay
    plan = session.scalar(select(PaymentPlan))
    assert collection.remaining_cents(session, plan) == 25_000  # what the plan's invoices still owe
    assert plan_payments(session, plan) == []  # nor does the admin's list of the plan's payments show it
