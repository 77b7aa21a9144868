"""The dashboard's slow figures stored by `run-due` (services/collections/figures.py): what is stored is what would
have been computed, it is refreshed when an hour old or on a new day, and the step runs from `run-due`."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from portal.domain.dunning import PromiseStatus
from portal.models import AutopayEnrollment, DashboardFigures, PaymentPromise
from portal.services.autopay import adoption
from portal.services.collections import analytics, figures, forecast
from portal.services.due import STEPS, Step
from tests.run_due_fixtures import run

TODAY = date(2026, 3, 16)


def _books(session, make, clock):
    """Eight months of billing and paying, a promise and a client on autopay: every source of each figure."""
    late, steady = make.client("Late Payer"), make.client("Steady Payer")
    for month in range(8):
        issued = date(2025, 7 + month, 1) if month < 6 else date(2026, month - 5, 1)
        for client, paid_after in ((late, 50), (steady, 12)):
            invoice = make.invoice(client, 100_000 + 1_000 * month, issue_date=issued,
                                   due_date=issued + timedelta(days=30))
            if issued + timedelta(days=paid_after) < TODAY:
                make.payment(client, invoice.total_cents, allocations={invoice.id: invoice.total_cents},
                             received_on=issued + timedelta(days=paid_after))
    session.add(AutopayEnrollment(client_id=steady.id, enrolled=True, enrolled_at=clock.now(), updated_at=clock.now()))
    open_invoice = make.invoice(late, 77_700, issue_date=date(2026, 3, 2), due_date=date(2026, 4, 1))
    session.add(PaymentPromise(client_id=late.id, invoice_id=open_invoice.id, amount_cents=40_000,
                               promised_on=date(2026, 3, 25), status=PromiseStatus.OPEN, created_at=clock.now()))
    session.commit()


def test_stored_figures_are_the_ones_the_page_would_compute(session, make, clock):
    _books(session, make, clock)
    live = (analytics.trend(session, TODAY)[:-1], forecast.forecast(session, TODAY),
            adoption.adoption(session, months=figures.ADOPTION_MONTHS))
    assert live[1].total(90) > 0 and any(p.ar_cents for p in live[0])  # the example has something to store

    assert figures.refresh(session, TODAY) == ["trend", "forecast", "adoption"]
    stored = figures.for_dashboard(session, TODAY, analytics.FiguresCache(0))

    assert (stored.trend, stored.forecast, stored.adoption) == live
    assert stored.stored_at == clock.now()


def test_without_stored_figures_the_page_computes_them(session, make, clock):
    _books(session, make, clock)
    found = figures.for_dashboard(session, TODAY, analytics.FiguresCache(0))
    assert found.stored_at is None
    assert found.trend == analytics.trend(session, TODAY)[:-1]
    assert found.forecast == forecast.forecast(session, TODAY)


def test_figures_are_refreshed_after_an_hour_and_replaced_on_a_new_day(session, make, clock):
    _books(session, make, clock)
    assert figures.refresh(session, TODAY) == ["trend", "forecast", "adoption"]
    clock.advance(minutes=59)
    assert figures.refresh(session, TODAY) == []  # another node or run within the hour: nothing to do
    clock.advance(minutes=2)
    assert figures.refresh(session, TODAY) == ["trend", "forecast", "adoption"]
    clock.advance(days=1)
    assert figures.refresh(session, TODAY + timedelta(days=1)) == ["trend", "forecast", "adoption"]
    days = session.scalars(select(DashboardFigures.made_on).distinct()).all()
    assert days == [TODAY + timedelta(days=1)]  # yesterday's rows are gone: one day's figures are kept


def test_run_due_stores_them_under_a_lease(app, session, make, clock, rt):
    _books(session, make, clock)
    step = next(s for s in STEPS if s.name == "dashboard figures")
    assert step.lease_minutes is not None  # one node at a time: each computation is seconds at scale
    report = run(app, session, rt, steps=(Step(step.name, step.run),))
    assert report.problems == []
    kinds = session.scalars(select(DashboardFigures.kind).where(DashboardFigures.made_on == TODAY)).all()
    assert sorted(kinds) == ["adoption", "forecast", "trend"]
