"""Plans for the collection tests, written as rows: the accepted offer, the plan, its covered invoices and the
installments copied from the domain's schedule, as acceptance (services/plans/acceptance.py) leaves them. The
collection side is what these tests are about; acceptance has its own tests.
"""

from __future__ import annotations

import secrets
from datetime import date
from decimal import Decimal

from portal.clock import now, today
from portal.domain import plans as rules
from portal.domain import schedules
from portal.domain.plans import OfferStatus, PlanStatus
from portal.models import Installment, PaymentPlan, PlanInvoice, PlanOffer
from portal.services import ledger
from portal.services.plans.progress import COVERED


def make_plan(session, client, invoices, *, installments: int = 3, frequency: str = "monthly",
              first_due_on: date, apr: Decimal = Decimal(0), down_payment_cents: int = 0, grace_days: int = 5,
              status: PlanStatus = PlanStatus.CURRENT) -> PaymentPlan:
    """A signed plan over ``invoices`` (their balances today), its installments from ``build_schedule``."""
    balances = {i.id: ledger.balance_of(session, i) for i in invoices}
    balance = sum(balances.values())
    terms = schedules.PlanTerms(balance_cents=balance, down_payment_cents=down_payment_cents,
                                installments=installments, frequency=schedules.Frequency(frequency),
                                first_due_on=first_due_on, apr_percent=apr)
    accepted_on = today()
    schedule = schedules.build_schedule(terms, start_on=accepted_on)
    stamp = now()
    offer = PlanOffer(public_id=secrets.token_urlsafe(16), client_id=client.id, status=OfferStatus.ACCEPTED,
                      proposed_by="msp", currency="USD", balance_cents=balance, down_payment_cents=down_payment_cents,
                      installments=installments, frequency=frequency, first_due_on=first_due_on, apr_percent=apr,
                      created_at=stamp, sent_at=stamp, decided_at=stamp)
    session.add(offer)
    session.flush()
    offer.thread_id = offer.id
    count = session.query(PaymentPlan).count()
    plan = PaymentPlan(reference=f"PLAN-{count + 1:06d}", client_id=client.id, offer_id=offer.id, status=status,
                       currency="USD", balance_cents=balance, down_payment_cents=down_payment_cents,
                       principal_cents=balance - down_payment_cents, apr_percent=apr,
                       total_interest_cents=schedule.total_interest_cents, frequency=frequency,
                       grace_days=grace_days, accepted_at=stamp)
    session.add(plan)
    session.flush()
    for invoice in invoices:
        session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, role=COVERED,
                                current_key=invoice.id if status == PlanStatus.CURRENT else None))
    for row in rules.due_rows(schedule, accepted_on=accepted_on):
        full = next((r for r in schedule.rows if r.number == row.number), None)
        session.add(Installment(
            plan_id=plan.id, number=row.number, due_on=row.due_on, amount_cents=row.amount_cents,
            principal_cents=full.principal_cents if full else row.amount_cents,
            interest_cents=full.interest_cents if full else 0,
            balance_after_cents=full.balance_after_cents if full else schedule.principal_cents))
    session.commit()
    session.expire(plan)
    return plan
