"""Receivables figures through the services on a real database (SQLite, and PostgreSQL in CI): aging at the bucket
boundaries, DSO and the lending cost, the 12-month trend, the forecast from each source and its daily snapshot."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from portal.clock import now
from portal.domain.dunning import PromiseStatus
from portal.domain.plans import PlanStatus
from portal.domain.spreadsheets import safe_cell
from portal.models import (
    AutopayEnrollment,
    ForecastSnapshot,
    Installment,
    PaymentPlan,
    PaymentPromise,
    PlanInvoice,
    PlanOffer,
)
from portal.services import billing, ledger
from portal.services.collections import analytics, forecast
from portal.services.collections.settings import update_collection_settings
from portal.services.due import STEPS, Step
from tests.run_due_fixtures import run

TODAY = date(2026, 3, 16)  # tests/conftest.py START


def owed(make, client, cents, *, days_late: int, issued_days_before_due: int = 30):
    due = TODAY - timedelta(days=days_late)
    return make.invoice(client, cents, issue_date=due - timedelta(days=issued_days_before_due), due_date=due)


# --- aging ----------------------------------------------------------------------------------------------------------

BOUNDARIES = {0: "current", 1: "1-30", 30: "1-30", 31: "31-60", 60: "31-60", 61: "61-90", 90: "61-90", 91: "90+"}


def test_aging_at_the_bucket_boundaries(make, session):
    everyone = make.client("All Days Ltd")
    clients = {}
    for days_late, _ in BOUNDARIES.items():
        clients[days_late] = make.client(f"Late {days_late:03d}")
        owed(make, clients[days_late], 1_000 + days_late, days_late=days_late)
        owed(make, everyone, 100 + days_late, days_late=days_late)

    report = ledger.receivables(session, TODAY)
    expected = {"current": 100, "1-30": 101 + 130, "31-60": 131 + 160, "61-90": 161 + 190, "90+": 191}
    for bucket, cents in expected.items():
        assert report.totals[bucket] == cents + sum(1_000 + d for d, b in BOUNDARIES.items() if b == bucket), bucket

    overview = analytics.aging_overview(session, TODAY)  # the dashboard's one grouped query
    assert overview.report.totals == report.totals and overview.report.counts == report.counts
    assert {c.name: c.buckets for c in overview.clients}["All Days Ltd"] == expected
    # past due: Late 091 1,091, Late 090 1,090, All Days 101 + 130 + 131 + 160 + 161 + 190 + 191 = 1,064
    assert [c.name for c in overview.top("past_due", 3)] == ["Late 091", "Late 090", "All Days Ltd"]
    assert overview.top("total", 1)[0].name == "All Days Ltd"  # 1,064 + 100 current = 1,164
    page = analytics.client_aging_page(session, TODAY, analytics.AgingFilters(sort="name", descending=False),
                                       per_page=50)
    rows = {row.name: row for row in page.items}
    assert rows["All Days Ltd"].buckets == expected
    for days_late, bucket in BOUNDARIES.items():
        row = rows[f"Late {days_late:03d}"]
        assert row.buckets[bucket] == 1_000 + days_late, days_late
        assert row.total_cents == 1_000 + days_late
        assert row.past_due_cents == (0 if bucket == "current" else 1_000 + days_late)


def test_aging_by_client_sort_filter_and_pages(make, session):
    for n in range(7):
        client = make.client(f"Client {n}")
        owed(make, client, 10_000 * (n + 1), days_late=0 if n % 2 == 0 else 45)  # odd ones are 31-60 days late
    paid = make.client("Paid Up")
    make.invoice(paid, 5_000)
    make.payment(paid, 5_000)

    first = analytics.client_aging_page(session, TODAY, per_page=3)
    assert [r.name for r in first.items] == ["Client 6", "Client 5", "Client 4"] and first.has_next
    third = analytics.client_aging_page(session, TODAY, page=3, per_page=3)
    assert [r.name for r in third.items] == ["Client 0"] and not third.has_next and third.has_prev
    by_late = analytics.client_aging_page(session, TODAY, analytics.AgingFilters(sort="31-60"), per_page=3)
    assert [r.name for r in by_late.items] == ["Client 5", "Client 3", "Client 1"]
    past_due = analytics.client_aging_page(session, TODAY, analytics.AgingFilters(past_due_only=True), per_page=10)
    assert [r.name for r in past_due.items] == ["Client 5", "Client 3", "Client 1"]
    big = analytics.client_aging_page(session, TODAY, analytics.AgingFilters(min_balance_cents=50_000), per_page=10)
    assert [r.name for r in big.items] == ["Client 6", "Client 5", "Client 4"]
    huge = analytics.AgingFilters(min_balance_cents=9_999_999_999_900)  # past 2^31 cents: none, and no error
    assert analytics.client_aging_page(session, TODAY, huge, per_page=10).items == []
    named = analytics.client_aging_page(session, TODAY, analytics.AgingFilters(q="ent 2"), per_page=10)
    assert [r.name for r in named.items] == ["Client 2"]
    like = analytics.client_aging_page(session, TODAY, analytics.AgingFilters(q="%"), per_page=10)
    assert like.items == []  # a wildcard typed is a character, not "everything"
    assert "Paid Up" not in [r.name for r in analytics.client_aging_page(session, TODAY, per_page=20).items]


def test_aging_csv_rows_and_injection_safety(make, session):
    evil = make.client("=HYPERLINK(\"http://evil.test\",\"x\")", external_id="+1234")
    owed(make, evil, 12_345, days_late=10)
    plain = make.client("Plain Co")
    owed(make, plain, 50_000, days_late=0)
    owed(make, plain, 1_000, days_late=95)

    text = io.StringIO()
    csv.writer(text).writerows(analytics.aging_csv_rows(session, TODAY))
    rows = list(csv.reader(io.StringIO(text.getvalue())))
    assert rows[0] == ["client", "external_id", "current", "1-30", "31-60", "61-90", "90+", "total", "open_invoices"]
    assert rows[1] == ["Plain Co", "", "500.00", "0.00", "0.00", "0.00", "10.00", "510.00", "2"]
    assert rows[2] == ["'=HYPERLINK(\"http://evil.test\",\"x\")", "'+1234", "0.00", "123.45", "0.00", "0.00", "0.00",
                       "123.45", "1"]
    assert rows[3] == ["Total", "", "500.00", "123.45", "0.00", "0.00", "10.00", "633.45", "3"]
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(bad) == "'" + bad
    assert safe_cell("Acme - East") == "Acme - East"


# --- DSO and what lending costs ----------------------------------------------------------------------------------


def test_summary_dso_and_lending_cost(make, session):
    client = make.client("Adatum")
    make.invoice(client, 300_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 3))  # 13 days late
    make.invoice(client, 600_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))  # current
    make.invoice(client, 100_000, issue_date=date(2025, 10, 1), due_date=date(2025, 10, 31))  # 136 days: 90+
    draft = make.invoice(client, 77_000, issue=False, issue_date=date(2026, 3, 2))
    voided = make.invoice(client, 55_000, issue_date=date(2026, 3, 2))
    billing.void_invoice(session, voided, "Billed twice")
    assert draft.status == "draft"

    figures = analytics.summary(session, TODAY)
    # sales in the 90 days to 16 Mar (issued after 16 Dec, not draft, not void): 3,000 + 6,000 = 9,000
    assert figures.sales_cents == 900_000
    # DSO = 10,000 owed / 9,000 billed * 90 = 100.0 days
    assert figures.aging.total_cents == 1_000_000 and figures.dso == Decimal("100.0")
    # past due 3,000 + 1,000 = 4,000; at the default 8%: 320 a year
    assert figures.lending_cents == 400_000 and figures.lending_cost_cents == 32_000
    # over 30 days: the 1,000 invoice: 10% of the amount, 1 of 3 invoices
    assert figures.over_30_share_amount == Decimal("10.0") and figures.over_30_share_count == Decimal("33.3")

    update_collection_settings(session, borrowing_rate_percent=Decimal("12.5"), call_after_days=3,
                               duplicate_window_days=5)
    assert analytics.summary(session, TODAY).lending_cost_cents == 50_000  # 4,000 at 12.5%


# --- the 12-month trend -----------------------------------------------------------------------------------------


def test_trend_as_of_each_month_end(make, session, clock):
    client = make.client("Trend Co")
    inv1 = make.invoice(client, 100_000, issue_date=date(2025, 12, 10), due_date=date(2026, 1, 9))
    make.invoice(client, 50_000, issue_date=date(2026, 1, 15), due_date=date(2026, 2, 14))
    inv3 = make.invoice(client, 200_000, issue_date=date(2026, 2, 5), due_date=date(2026, 3, 7))
    make.invoice(client, 9_000, issue=False, issue_date=date(2026, 1, 5))  # a draft is never on the books
    clock.set(date(2026, 3, 2))
    billing.void_invoice(session, inv3, "Wrong client")  # on the books at the end of February, not after 2 March
    clock.set(datetime(2026, 3, 16, 15, tzinfo=UTC))
    # recorded today, received earlier: each counts from the day it was received
    make.payment(client, 40_000, received_on=date(2026, 1, 20), allocations={inv1.id: 40_000})
    make.payment(client, 60_000, received_on=date(2026, 2, 20), allocations={inv1.id: 60_000})

    points = {p.month_end: p for p in analytics.trend(session, TODAY)}
    assert list(points) == [date(2025, m, d) for m, d in ((4, 30), (5, 31), (6, 30), (7, 31), (8, 31), (9, 30),
                                                           (10, 31), (11, 30), (12, 31))] + \
        [date(2026, 1, 31), date(2026, 2, 28), TODAY]
    nov = points[date(2025, 11, 30)]
    assert (nov.ar_cents, nov.past_due_cents, nov.sales_cents, nov.dso) == (0, 0, 0, None)
    # 31 Dec: inv1 only (1,000), not yet due; billed in the 90 days to 31 Dec: 1,000 -> DSO 1000/1000*90 = 90
    dec = points[date(2025, 12, 31)]
    assert (dec.ar_cents, dec.past_due_cents, dec.sales_cents, dec.dso) == (100_000, 0, 100_000, Decimal("90.0"))
    # 31 Jan: inv1 + inv2 = 1,500 less 400 received 20 Jan = 1,100; past due: inv1 (due 9 Jan) 1,000 - 400 = 600
    # share 600/1100 = 54.5%; DSO 1100/1500*90 = 66.0
    jan = points[date(2026, 1, 31)]
    assert (jan.ar_cents, jan.past_due_cents, jan.sales_cents) == (110_000, 60_000, 150_000)
    assert (jan.past_due_share, jan.dso) == (Decimal("54.5"), Decimal("66.0"))
    # 28 Feb: inv1 + inv2 + inv3 (voided only on 2 March) = 3,500 less 1,000 received = 2,500; past due: inv2
    # (due 14 Feb) 500, inv1 paid; share 500/2500 = 20%; DSO 2500/3500*90 = 64.2857 -> 64.3
    feb = points[date(2026, 2, 28)]
    assert (feb.ar_cents, feb.past_due_cents, feb.sales_cents) == (250_000, 50_000, 350_000)
    assert (feb.past_due_share, feb.dso) == (Decimal("20.0"), Decimal("64.3"))
    # today: inv3 void; inv2's 500 owed, past due; billed after 16 Dec and not void: inv2 only -> DSO 500/500*90
    mar = points[TODAY]
    assert (mar.ar_cents, mar.past_due_cents, mar.sales_cents, mar.dso) == (50_000, 50_000, 50_000, Decimal("90.0"))
    assert mar.ar_cents == ledger.receivables(session, TODAY).total_cents
    assert analytics.current_point(TODAY, analytics.summary(session, TODAY)) == mar  # the dashboard's live point


def test_figures_cache_keeps_figures_for_its_seconds():
    ticks = [0.0]
    cache = analytics.FiguresCache(300, clock=lambda: ticks[0])
    calls = []

    def compute(value):
        calls.append(value)
        return value

    assert cache.get(("trend", TODAY), lambda: compute(1)) == 1
    ticks[0] = 299.0
    assert cache.get(("trend", TODAY), lambda: compute(2)) == 1  # kept
    assert cache.get(("trend", TODAY + timedelta(days=1)), lambda: compute(3)) == 3  # a new day: computed
    ticks[0] = 300.0
    assert cache.get(("trend", TODAY), lambda: compute(4)) == 4  # expired: computed again
    assert calls == [1, 3, 4]
    assert analytics.FiguresCache(0, clock=lambda: 5.0).get(("x",), lambda: compute(5)) == 5
    assert analytics.FiguresCache(0, clock=lambda: 5.0).get(("x",), lambda: compute(6)) == 6


# --- the forecast -------------------------------------------------------------------------------------------------


def _plan(session, client, invoice, schedule):
    offer = PlanOffer(public_id=f"offer{invoice.id}", client_id=client.id, proposed_by="msp", currency="USD",
                      balance_cents=invoice.total_cents, installments=len(schedule), frequency="monthly",
                      first_due_on=schedule[0][0], created_at=now())
    session.add(offer)
    session.flush()
    plan = PaymentPlan(reference=f"PLAN-{invoice.id:06d}", client_id=client.id, offer_id=offer.id,
                       status=PlanStatus.CURRENT, currency="USD", balance_cents=invoice.total_cents,
                       principal_cents=invoice.total_cents, frequency="monthly", grace_days=5, accepted_at=now())
    session.add(plan)
    session.flush()
    session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, role="covered", current_key=invoice.id))
    session.add_all(Installment(plan_id=plan.id, number=n, due_on=due_on, amount_cents=cents, principal_cents=cents,
                                balance_after_cents=0) for n, (due_on, cents) in enumerate(schedule, start=1))
    session.commit()
    return plan


def _forecast_book(make, session):
    """The hand-computed example of the forecast tests (today 16 Mar 2026; the next 30 days end 14 Apr)."""
    # Habit: paid 20, 10 and 30 days after issue -> median 20; its open invoice issued 10 Mar -> expected 30 Mar
    habit = make.client("Habit Co")
    for issued, paid_on in ((date(2026, 1, 1), date(2026, 1, 21)), (date(2026, 2, 1), date(2026, 2, 11)),
                            (date(2025, 12, 1), date(2025, 12, 31))):
        invoice = make.invoice(habit, 10_000, issue_date=issued, due_date=issued + timedelta(days=30))
        make.payment(habit, 10_000, received_on=paid_on, allocations={invoice.id: 10_000})
    make.invoice(habit, 100_000, issue_date=date(2026, 3, 10), due_date=date(2026, 4, 9))
    ancient = make.invoice(habit, 10_000, issue_date=date(2024, 1, 1), due_date=date(2024, 1, 31))
    make.payment(habit, 10_000, received_on=date(2025, 1, 1), allocations={ancient.id: 10_000})  # 366 days
    # ... but issued more than 400 days ago: not part of the habit (else the median would be (20 + 30) / 2 = 25)
    # New: no history of its own -> the MSP-wide median (20 days): issued 1 Mar -> 21 Mar
    new = make.client("New Co")
    make.invoice(new, 50_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))
    # Auto: on autopay (the default: charged on the due date, 9 Apr)
    auto = make.client("Auto Co")
    make.invoice(auto, 200_000, issue_date=date(2026, 3, 10), due_date=date(2026, 4, 9))
    session.add(AutopayEnrollment(client_id=auto.id, enrolled=True, enrolled_at=now(), updated_at=now()))
    # Promise: 3,000 due 31 Jan (44 days late); 1,000 promised for 25 Mar. The other 2,000: no history (MSP median
    # 20 days: expected 21 Jan, past) and under 90 days late -> half of it, 1,000, expected now
    promise = make.client("Promise Co")
    late = make.invoice(promise, 300_000, issue_date=date(2026, 1, 1), due_date=date(2026, 1, 31))
    session.add(PaymentPromise(client_id=promise.id, invoice_id=late.id, amount_cents=100_000,
                               promised_on=date(2026, 3, 25), status=forecast.PROMISE_OPEN, created_at=now()))
    session.add(PaymentPromise(client_id=promise.id, invoice_id=late.id, amount_cents=50_000,
                               promised_on=date(2026, 3, 1), status=PromiseStatus.BROKEN, created_at=now()))
    session.commit()
    # Plan: 6,000 on a plan of three 2,000 installments; 2,000 paid -> 15 Mar (late: expected now) and 15 Apr
    plan_client = make.client("Plan Co")
    on_plan = make.invoice(plan_client, 600_000, issue_date=date(2025, 12, 1), due_date=date(2025, 12, 31))
    _plan(session, plan_client, on_plan, [(date(2026, 2, 15), 200_000), (date(2026, 3, 15), 200_000),
                                          (date(2026, 4, 15), 200_000)])
    make.payment(plan_client, 200_000, received_on=date(2026, 2, 15), allocations={on_plan.id: 200_000})
    # Doubtful: 105 days past due, no history -> not expected at all
    doubtful = make.client("Doubtful Co")
    make.invoice(doubtful, 70_000, issue_date=date(2025, 11, 1), due_date=date(2025, 12, 1))


def test_forecast_from_each_source(make, session):
    _forecast_book(make, session)
    result = forecast.forecast(session, TODAY)
    assert result.msp_days_to_pay == 20
    h30, h60, h90 = result.horizons
    assert {str(k): v for k, v in h30.by_source.items()} == {
        "autopay": 200_000,  # 9 Apr
        "plan": 200_000,  # the 15 Mar installment, late: now
        "promise": 100_000,  # 25 Mar
        "history": 100_000 + 50_000 + 100_000,  # Habit 30 Mar, New 21 Mar, half of Promise's other 2,000 now
    }
    assert h30.total_cents == 750_000
    assert h60.total_cents == 950_000  # + the 15 Apr installment (day 30: outside the first 30 days)
    assert h90.total_cents == 950_000


def test_an_invoice_over_the_autopay_cap_is_forecast_as_autopay_only_once_approved(make, session):
    from portal.services.autopay import cap_approvals

    capped = make.client("Capped Co")
    invoice = make.invoice(capped, 200_000, issue_date=date(2026, 3, 10), due_date=date(2026, 4, 9))
    session.add(AutopayEnrollment(client_id=capped.id, enrolled=True, enrolled_at=now(), updated_at=now(),
                                  has_cap_override=True, cap_cents=100_000))
    session.commit()
    before = forecast.forecast(session, TODAY).horizons[0].by_source

    cap_approvals.approve(session, invoice.id, staff=make.staff())
    after = forecast.forecast(session, TODAY).horizons[0].by_source

    assert {str(k): v for k, v in before.items()}["autopay"] == 0  # over the cap: autopay leaves it alone
    assert {str(k): v for k, v in after.items()}["autopay"] == 200_000  # charged on 9 Apr


def test_snapshot_once_a_day_and_compared_with_what_came_in(app, make, session, clock, rt):
    _forecast_book(make, session)
    assert forecast.snapshot(session, TODAY) == 3
    assert forecast.snapshot(session, TODAY) == 0  # the second run of the day adds nothing
    rows = session.execute(select(ForecastSnapshot.horizon_days, ForecastSnapshot.expected_cents)
                           .where(ForecastSnapshot.made_on == TODAY).order_by(ForecastSnapshot.horizon_days)).all()
    assert [tuple(r) for r in rows] == [(30, 750_000), (60, 950_000), (90, 950_000)]
    assert forecast.last_accuracy(session, TODAY) is None  # not 30 days old yet

    clock.set(date(2026, 4, 15))
    client = make.client("Payer")
    make.invoice(client, 80_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))
    make.payment(client, 30_000, received_on=date(2026, 3, 20))  # inside 16 Mar .. 14 Apr
    make.payment(client, 45_000, received_on=date(2026, 4, 14))  # the window's last day
    make.payment(client, 5_000, received_on=date(2026, 4, 15))  # the day after: not counted
    accuracy = forecast.last_accuracy(session, date(2026, 4, 15))
    assert (accuracy.made_on, accuracy.expected_cents, accuracy.actual_cents) == (TODAY, 750_000, 75_000)
    assert accuracy.window_end == date(2026, 4, 14) and accuracy.actual_share == Decimal("10.0")


def test_run_due_step_stores_the_snapshot_once(app, make, session, clock, rt):
    assert "forecast snapshot" in [s.name for s in STEPS]
    step = next(s for s in STEPS if s.name == "forecast snapshot")
    client = make.client("Someone")
    make.invoice(client, 10_000, issue_date=date(2026, 3, 10), due_date=date(2026, 3, 20))
    for _ in range(2):
        report = run(app, session, rt, steps=(Step(step.name, step.run),))
        assert report.problems == []
    count = session.scalar(select(func.count()).select_from(ForecastSnapshot))
    assert count == 3
    expected = session.scalar(select(ForecastSnapshot.expected_cents).where(ForecastSnapshot.horizon_days == 30))
    assert expected == 10_000  # no history anywhere: expected on its due date, 20 Mar


SNAPSHOT_SCRIPT = """
import sys, time
from datetime import date
from pathlib import Path
from portal import create_app, db
from portal.services.collections import forecast
app = create_app()
with app.app_context():
    folder, name = Path(sys.argv[1]), sys.argv[2]
    (folder / name).touch()
    while not (folder / "go").exists():  # every process starts its snapshot at the same moment
        time.sleep(0.01)
    print(forecast.snapshot(db.session(), date(2026, 3, 16)))
"""


def test_snapshot_races_in_several_processes(app_config, make, session, tmp_path):
    """Three OS processes store the same day's snapshot at once: the unique (made_on, horizon) keeps one set."""
    import os
    import subprocess
    import sys
    import time

    client = make.client("Racer")
    make.invoice(client, 10_000, issue_date=date(2026, 3, 10), due_date=date(2026, 3, 20))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.update({"PORTAL_ENV": "test", "PORTAL_DATABASE_URL": app_config["DATABASE_URL"],
                "PORTAL_INSTANCE_PATH": app_config["INSTANCE_PATH"], "PORTAL_SECRET_KEY": app_config["SECRET_KEY"]})
    processes = [subprocess.Popen([sys.executable, "-c", SNAPSHOT_SCRIPT, str(tmp_path), f"ready{n}"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(3)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err for _, err in results]
    added = sorted(int(out.strip().splitlines()[-1]) for out, _ in results)
    assert added == [0, 0, 3]  # one process stored all three horizons, the others none
    session.expire_all()
    rows = session.execute(select(ForecastSnapshot.horizon_days, ForecastSnapshot.expected_cents)
                           .order_by(ForecastSnapshot.horizon_days)).all()
    assert [tuple(r) for r in rows] == [(30, 10_000), (60, 10_000), (90, 10_000)]
