"""Writing off a few cents on an invoice (a check a little short, less than a card can be charged): a ledger
adjustment of its own, the invoice paid, the client's standing lifted, the admin on the invoice's timeline; and every
refusal changing nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.domain.errors import DomainError
from portal.domain.standing import Standing
from portal.models import InvoiceEvent, LedgerAdjustment
from portal.services import adjustments, standing, statements
from portal.services.plans.progress import current_plan_invoice_ids
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count, invoice_state
from tests.plans_fixtures import make_plan


def test_a_few_cents_left_are_written_off_and_the_hold_they_caused_lifts(session, make, clock):
    client = make.client()
    invoice = make.invoice(client, 10_000, issue_date=date(2026, 1, 1), due_date=date(2026, 1, 15))
    make.payment(client, 9_970, received_on=date(2026, 1, 20))
    assert standing.for_client(session, client, clock.today()).standing == Standing.ON_HOLD  # 30 cents, 60 days
    staff = make.staff()

    assert adjustments.write_off_small_balance(session, invoice.id, staff=staff) == 30

    assert invoice_state(session, invoice) == ("paid", 0)
    [row] = session.scalars(select(LedgerAdjustment)).all()
    assert (row.kind, row.amount_cents, row.invoice_id, row.memo) == ("write_off", 30, invoice.id,
                                                                     "Small balance written off")
    event = session.scalar(select(InvoiceEvent).where(InvoiceEvent.kind == "written_off"))
    assert event.actor_id == staff.id and event.detail == "$0.30 written off (less than a card can be charged)"
    assert standing.for_client(session, client, clock.today()).standing == Standing.GOOD
    with pytest.raises(DomainError, match=r"Only a balance below \$0\.50"):  # a second click
        adjustments.write_off_small_balance(session, invoice.id, staff=staff)
    assert count(session, LedgerAdjustment) == 1


@pytest.mark.parametrize(("paid", "why"), [(9_950, "50 cents: a card can take it"), (0, "nothing paid"),
                                           (10_000, "paid in full")])
def test_anything_a_card_can_take_or_nothing_owed_is_refused(session, make, paid, why):
    client = make.client()
    invoice = make.invoice(client, 10_000)
    if paid:
        make.payment(client, paid)

    with pytest.raises(DomainError, match=r"Only a balance below \$0\.50 \(less than a card can be charged\)"):
        adjustments.write_off_small_balance(session, invoice.id, staff=None)
    assert count(session, LedgerAdjustment) == 0 and count(session, InvoiceEvent) == 0, why


def test_an_invoice_on_a_current_plan_is_written_off_from_the_plan(session, shop, make):
    plan = make_plan(session, shop.client, [shop.first], installments=2, first_due_on=date(2026, 3, 23))
    make.payment(shop.client, 9_970, allocations={shop.first.id: 9_970})
    assert current_plan_invoice_ids(session, invoice_ids=[shop.first.id]) == {shop.first.id}

    with pytest.raises(DomainError, match="on a payment plan: write off what is left on the plan's page"):
        adjustments.write_off_small_balance(session, shop.first.id, staff=None)
    assert count(session, LedgerAdjustment) == 0 and plan.status == "current"


def test_an_unknown_invoice_is_refused(session):
    with pytest.raises(DomainError, match="Unknown invoice"):
        adjustments.write_off_small_balance(session, 999_999, staff=None)
    assert count(session, LedgerAdjustment) == 0


def test_the_write_off_is_on_the_statement(session, make, clock):
    client = make.client()
    invoice = make.invoice(client, 10_000, issue_date=clock.today() - timedelta(days=40))
    make.payment(client, 9_980)
    adjustments.write_off_small_balance(session, invoice.id, staff=None)

    found = statements.client_statement(session, client.id, clock.today() - timedelta(days=60), clock.today())
    assert found.lines[-1].entry.description == f"Small balance written off on invoice {invoice.number}"
    assert found.lines[-1].entry.credit_cents == 20 and found.closing_cents == 0
