"""`portal run-due` charging plan installments as cron runs it: four OS processes of the installed console script
started together on the test database (SQLite or PostgreSQL, whichever the suite runs on), charging through the real
``stripe`` SDK against the fake Stripe server, which counts the PaymentIntents it created. Every installment's charge
names its own interest invoice first, so a count above one per invoice list is a real double charge.

The processes run on the wall clock, long after these plans' dates: each process finds every installment due and
charges them in order, and all of them together must charge each installment exactly once.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from portal.domain.plans import InstallmentStatus
from portal.models import ChargeAttempt, InstallmentCharge, PaymentPlan
from portal.services.plans.progress import progress_of
from tests.integration.test_run_due_processes import _env, _run_due
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import runtime_for
from tests.plans_fixtures import make_plan
from tests.run_due_fixtures import CARD, enroll_rows, saved_on_gateway


def test_four_run_due_processes_at_once_charge_each_installment_exactly_once(
        app, app_config, session, make, stripe_gateway, fake_stripe):
    rt = runtime_for(stripe_gateway)
    plans = []
    for n in range(12):
        client = make.client(f"Clinic {n} LLC")
        make.contact(client, email=f"ap@clinic{n}.test")
        invoices = [make.invoice(client, 30_000 + 100 * n, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1)),
                    make.invoice(client, 12_000, issue_date=date(2026, 2, 15), due_date=date(2026, 3, 15))]
        plans.append(make_plan(session, client, invoices, installments=3, frequency="weekly",
                               first_due_on=date(2026, 3, 20), apr=Decimal(12), grace_days=60))
        customer, card = saved_on_gateway(rt, client, fake_stripe.confirmation_token("pm_card_visa"))
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
    session.commit()
    fake_stripe.latency_seconds = 0.02  # answers overlap, as they do against Stripe
    env = _env(app_config, fake_stripe, GATEWAY_RATE_LIMIT=100)

    processes = [_run_due(env) for _ in range(4)]
    outputs = [p.finish(timeout=300) for p in processes]

    for p, (_out, err) in zip(processes, outputs, strict=True):
        assert p.process.returncode in (0, 1), err[-3000:]  # 1: a run with something to look at (a late plan)
        # the plan steps never fail (other steps' problems are theirs, tested in their own process tests)
        assert "step 'plan" not in err and "services/plans/" not in err, err[-3000:]
    installments = 12 * 3
    by_invoices = fake_stripe.charges_by("invoices")
    reports = "\n".join(out[-1500:] + err[-1500:] for out, err in outputs)  # each run's report, if one is missing
    assert sum(by_invoices.values()) == fake_stripe.payment_intent_count == installments, reports
    assert {n for n in by_invoices.values()} == {1}, by_invoices
    session.rollback()  # a fresh snapshot: what the processes committed
    assert session.scalar(select(func.count()).select_from(InstallmentCharge)) == installments
    assert session.scalar(select(func.count()).select_from(ChargeAttempt)
                          .where(ChargeAttempt.status != "succeeded")) == 0
    session.expire_all()
    for plan in plans:
        plan = session.get(PaymentPlan, plan.id)
        found = progress_of(session, plan, date(2026, 12, 31))
        assert [r.status for r in found.progress.rows] == [InstallmentStatus.PAID] * 3
        assert found.settled
