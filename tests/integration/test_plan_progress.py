"""What counts toward a plan: money the client paid before signing is not the plan's. A bank debit started before
the plan was signed leaves the invoice's plannable balance smaller (the offer covered only what was left); when it
settles after the signature it must not read as paid toward the plan as well (it would count twice: the plan would
look paid ahead while the invoices still owe the whole plan)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from portal.domain.plans import InstallmentStatus
from portal.models import PaymentPlan
from portal.services import payments
from portal.services.plans import collection, negotiation
from portal.services.plans.overview import plan_payments
from portal.services.plans.progress import progress_for, progress_of
from tests.integration.test_plan_offers import choice, sign
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, runtime_for
from tests.plans_fixtures import make_plan


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


def test_the_admin_list_counts_each_plan_as_its_own_page_does(app, session, shop, make, stripe_gateway, fake_stripe,
                                                              clock):
    """``progress_for`` (the admin's list: a few statements for all its plans) gives each plan what ``progress_of``
    gives it alone: money paid since the signature, money still on its way, a debit started before the signature
    left out, and one client's money never counted toward another's plan."""
    rt = runtime_for(stripe_gateway)
    early = payments.pay(session, rt, payments.create_request(session, client=shop.client, contact=shop.contact,
                                                              amounts={shop.second.id: 10_000}),
                         token=fake_stripe.confirmation_token("pm_usBankAccount_success"), attempt_number=1)
    clock.advance(minutes=10)
    sign(session, rt, shop.contact, negotiation.make_offer(session, rt, shop.client.id, choice(shop),
                                                           staff=make.staff()))
    other = make.client("Bayside Law PC")
    contact = make.contact(other)
    invoices = [make.invoice(other, 30_000), make.invoice(other, 20_000)]
    make_plan(session, other, invoices, first_due_on=date(2026, 4, 15))
    clock.advance(minutes=1)
    paying = ((invoices[0], 8_000, "pm_card_visa"), (invoices[1], 6_000, "pm_usBankAccount_success"))
    for invoice, cents, method in paying:  # a card payment, then a bank debit still clearing
        payments.pay(session, rt, payments.create_request(session, client=other, contact=contact,
                                                          amounts={invoice.id: cents}),
                     token=fake_stripe.confirmation_token(method), attempt_number=1)
    fake_stripe.settle(early.gateway_id)  # booked after the signature, but started before it
    payments.reconcile(session, rt)
    session.expire_all()

    plans = list(session.scalars(select(PaymentPlan).order_by(PaymentPlan.id)))
    alone = {plan.id: progress_of(session, plan, clock.today()) for plan in plans}
    together = progress_for(session, plans, clock.today())

    assert together == alone
    assert [(alone[p.id].paid_cents, alone[p.id].pending_cents) for p in plans] == [(0, 0), (8_000, 6_000)]
    assert [alone[p.id].open_cents for p in plans] == [25_000, 42_000]
