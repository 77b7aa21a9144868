"""The receivables arithmetic: aging ranges, DSO, lending cost, the trend's month ends and chart, the forecast."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from portal.domain import receivables as R
from portal.domain.aging import BUCKETS, bucket_for

TODAY = date(2026, 3, 16)
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


@given(dates, st.integers(min_value=-400, max_value=400))
def test_bucket_ranges_agree_with_bucket_for(today, offset):
    due = today - timedelta(days=offset)
    inside = [name for name, earliest, latest in R.bucket_bounds(today)
              if (earliest is None or due >= earliest) and (latest is None or due <= latest)]
    assert inside == [bucket_for(due, today)]


def test_bucket_ranges_at_the_boundaries():
    expected = {0: "current", 1: "1-30", 30: "1-30", 31: "31-60", 60: "31-60", 61: "61-90", 90: "61-90", 91: "90+"}
    bounds = R.bucket_bounds(TODAY)
    assert [b for b, _, _ in bounds] == list(BUCKETS)
    for days_late, bucket in expected.items():
        due = TODAY - timedelta(days=days_late)
        name = next(n for n, lo, hi in bounds if (lo is None or due >= lo) and (hi is None or due <= hi))
        assert name == bucket, days_late


def test_dso_is_receivables_over_sales_times_days():
    # $30,000 owed, $90,000 billed in 90 days: 30000 / 90000 * 90 = 30.0 days
    assert R.dso(3_000_000, 9_000_000) == Decimal("30.0")
    # 1234.56 / 4000.00 * 90 = 27.7776 -> 27.8
    assert R.dso(123_456, 400_000) == Decimal("27.8")
    assert R.dso(100, 0) is None  # nothing billed: no ratio


def test_lending_cost_is_simple_interest_rounded_once():
    assert R.lending_cost_per_year(1_000_000, Decimal("8")) == 80_000  # $10,000 at 8% = $800
    assert R.lending_cost_per_year(12_345, Decimal("7.5")) == 926  # 925.875 -> 926
    assert R.lending_cost_per_year(1, Decimal("50")) == 1  # 0.5 rounds half up
    assert R.lending_cost_per_year(0, Decimal("8")) == 0
    assert R.lending_cost_per_year(-5, Decimal("8")) == 0  # a credit is not a loan


def test_share():
    assert R.share(1, 3) == Decimal("33.3")
    assert R.share(2, 3) == Decimal("66.7")
    assert R.share(5, 0) is None


def test_month_ends_end_with_today():
    ends = R.month_ends(TODAY)
    assert len(ends) == 12
    assert ends[0] == date(2025, 4, 30) and ends[-1] == TODAY
    assert ends[-2] == date(2026, 2, 28) and date(2025, 12, 31) in ends
    assert R.month_ends(date(2024, 3, 5), 2) == [date(2024, 2, 29), date(2024, 3, 5)]  # leap February


@given(dates, st.integers(min_value=1, max_value=24))
def test_month_ends_are_increasing_month_ends(today, count):
    ends = R.month_ends(today, count)
    assert len(ends) == count and ends == sorted(set(ends)) and ends[-1] == today
    for end in ends[:-1]:
        assert (end + timedelta(days=1)).day == 1


def test_trend_point_figures():
    point = R.TrendPoint(date(2026, 1, 31), ar_cents=60_000, past_due_cents=15_000, sales_cents=180_000)
    assert point.past_due_share == Decimal("25.0")
    assert point.dso == Decimal("30.0")  # 600 / 1800 * 90


def test_direction_flags_a_rise():
    assert R.direction([100, 100, 100, 120]).rising  # +20%
    assert R.direction([100, 100, 100, 120]).change_percent == Decimal("20.0")
    assert not R.direction([100, 105, 100, 105]).rising  # +5% and not climbing
    assert R.direction([100, 90, 95, 97, 99]).rising  # up at each of the last three month ends
    assert R.direction([0, 0, 50]).rising  # from nothing to something
    assert R.direction([0, 100, 90, 130]).change_percent == Decimal("30.0")  # from the first month with any
    assert not R.direction([200, 150, 100]).rising
    assert not R.direction([5]).rising


def test_chart_geometry_starts_at_zero():
    chart = R.chart_geometry([0, 50, 100], width=120, height=120, pad=10)
    assert chart.points == [(10.0, 110.0), (60.0, 60.0), (110.0, 10.0)]
    assert chart.max_value == 100
    assert chart.gridlines[0] == (110.0, 0) and chart.gridlines[-1] == (10.0, 100)
    flat = R.chart_geometry([0, 0], width=120, height=120, pad=10)
    assert [y for _, y in flat.points] == [110.0, 110.0]


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=24))
def test_chart_points_stay_inside(values):
    chart = R.chart_geometry(values)
    assert all(10 <= x <= 590 and 10 <= y <= 190 for x, y in chart.points)
    top = max(values)
    if top:
        assert min(y for _, y in chart.points) == 10.0


def test_median_days():
    assert R.median_days([30, 10, 20]) == 20
    assert R.median_days([10, 21]) == 16  # 15.5 rounds half up
    assert R.median_days([-3, 5]) == 3  # paid before issue counts as day 0: (0 + 5) / 2 = 2.5 -> 3
    assert R.median_days([]) is None


def test_unpaid_installments_are_the_schedule_tail():
    schedule = [(date(2026, 4, 1), 10_000), (date(2026, 5, 1), 10_000), (date(2026, 6, 1), 10_000)]
    assert R.unpaid_installments(schedule, 15_000) == [(date(2026, 5, 1), 5_000), (date(2026, 6, 1), 10_000)]
    assert R.unpaid_installments(schedule, 0) == []
    assert R.unpaid_installments(schedule, 99_000) == schedule  # owed more than scheduled: the schedule, no more


@given(st.lists(st.tuples(dates, st.integers(min_value=1, max_value=10**9)), max_size=12),
       st.integers(min_value=-10**6, max_value=10**10))
def test_unpaid_installments_sum(schedule, owed):
    tail = R.unpaid_installments(schedule, owed)
    assert sum(c for _, c in tail) == min(max(owed, 0), sum(a for _, a in schedule))
    assert all(c > 0 for _, c in tail)


def inv(invoice_id, *, client=1, issued=date(2026, 3, 1), due=date(2026, 3, 31), cents=10_000):
    return R.OpenInvoice(invoice_id, client, issued, due, cents)


def test_forecast_each_source():
    invoices = [inv(1, client=1), inv(2, client=2), inv(3, client=3, cents=20_000), inv(4, client=4)]
    receipts = R.forecast_receipts(
        invoices, TODAY,
        promises=[R.Promise(3, 3, 5_000, date(2026, 3, 20))],
        autopay_on={2: date(2026, 3, 31)},
        client_days={1: 40},  # client 1 pays 40 days after issue: 1 Mar + 40 = 10 Apr
        default_days=25,  # clients 3 and 4 have no history: 1 Mar + 25 = 26 Mar
        plan_installments=[(date(2026, 4, 15), 7_000), (date(2026, 3, 10), 1_000)],
    )
    assert sorted(receipts, key=lambda r: (r.on, r.source)) == [
        R.Receipt(TODAY, 1_000, R.Source.PLAN),  # an installment already due: expected now
        R.Receipt(date(2026, 3, 20), 5_000, R.Source.PROMISE),
        R.Receipt(date(2026, 3, 26), 15_000, R.Source.HISTORY),  # the rest of invoice 3
        R.Receipt(date(2026, 3, 26), 10_000, R.Source.HISTORY),
        R.Receipt(date(2026, 3, 31), 10_000, R.Source.AUTOPAY),
        R.Receipt(date(2026, 4, 10), 10_000, R.Source.HISTORY),
        R.Receipt(date(2026, 4, 15), 7_000, R.Source.PLAN),
    ]
    [h30, h60, h90] = R.by_horizon(receipts, TODAY)
    # within 30 days (16 Mar .. 14 Apr): all but the 15 Apr installment
    assert h30.by_source == {R.Source.AUTOPAY: 10_000, R.Source.PLAN: 1_000, R.Source.PROMISE: 5_000,
                             R.Source.HISTORY: 35_000}
    assert (h30.total_cents, h60.total_cents, h90.total_cents) == (51_000, 58_000, 58_000)


def test_forecast_late_and_doubtful_invoices():
    invoices = [
        inv(1, issued=date(2026, 2, 1), due=date(2026, 4, 1)),  # habit says 11 Feb; not due yet: its due date
        inv(2, issued=date(2026, 1, 1), due=date(2026, 2, 1), cents=10_001),  # 43 days past due: half, now
        inv(3, issued=date(2025, 11, 1), due=date(2025, 12, 1)),  # 105 days past due: doubtful, not counted
    ]
    receipts = R.forecast_receipts(invoices, TODAY, client_days={1: 10})
    assert sorted(receipts, key=lambda r: r.on) == [R.Receipt(TODAY, 5_001, R.Source.HISTORY),  # 5000.5 -> 5001
                                                   R.Receipt(date(2026, 4, 1), 10_000, R.Source.HISTORY)]


def test_forecast_promises():
    invoices = [inv(1, due=date(2026, 2, 1)), inv(2, due=date(2026, 1, 1)), inv(3, due=date(2026, 4, 1))]
    receipts = R.forecast_receipts(invoices, TODAY, promises=[
        R.Promise(1, None, 25_000, date(2026, 3, 25)),  # the client's balance: past due oldest first, then the rest
        R.Promise(1, 2, 3_000, date(2026, 3, 10)),  # dated before today: broken, ignored
    ], default_days=200)
    assert [r for r in receipts if r.source is R.Source.PROMISE] == [
        R.Receipt(date(2026, 3, 25), 10_000, R.Source.PROMISE),  # invoice 2 (due 1 Jan)
        R.Receipt(date(2026, 3, 25), 10_000, R.Source.PROMISE),  # invoice 1 (due 1 Feb)
        R.Receipt(date(2026, 3, 25), 5_000, R.Source.PROMISE),  # part of invoice 3
    ]
    rest = [r for r in receipts if r.source is R.Source.HISTORY]
    assert rest == [R.Receipt(date(2026, 9, 17), 5_000, R.Source.HISTORY)]  # 1 Mar + 200 days


def test_autopay_date_before_today_falls_to_history():
    receipts = R.forecast_receipts([inv(1)], TODAY, autopay_on={1: date(2026, 3, 1)}, default_days=20)
    assert receipts == [R.Receipt(date(2026, 3, 21), 10_000, R.Source.HISTORY)]


def test_no_history_at_all_expects_the_due_date():
    assert R.forecast_receipts([inv(1)], TODAY) == [R.Receipt(date(2026, 3, 31), 10_000, R.Source.HISTORY)]


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(-120, 60), st.integers(0, 60), st.integers(1, 10**7)),
                max_size=15),
       st.lists(st.tuples(st.integers(1, 4), st.integers(-5, 40), st.integers(1, 10**7)), max_size=5),
       st.dictionaries(st.integers(1, 15), st.integers(-10, 40), max_size=5),
       st.dictionaries(st.integers(1, 4), st.integers(0, 120), max_size=4))
def test_forecast_never_expects_more_than_is_owed(rows, promises, autopay, habits):
    invoices = [R.OpenInvoice(n, client, TODAY - timedelta(days=age + terms), TODAY - timedelta(days=age), cents)
                for n, (client, age, terms, cents) in enumerate(rows, start=1)]
    receipts = R.forecast_receipts(
        invoices, TODAY, promises=[R.Promise(c, None, a, TODAY + timedelta(days=d)) for c, d, a in promises],
        autopay_on={k: TODAY + timedelta(days=d) for k, d in autopay.items()}, client_days=habits)
    assert sum(r.cents for r in receipts) <= sum(i.balance_cents for i in invoices)
    assert all(r.cents > 0 and r.on >= TODAY for r in receipts)
    totals = [h.total_cents for h in R.by_horizon(receipts, TODAY)]
    assert totals == sorted(totals)


def test_horizon_edges():
    receipts = [R.Receipt(TODAY + timedelta(days=29), 1, R.Source.HISTORY),
                R.Receipt(TODAY + timedelta(days=30), 10, R.Source.HISTORY),
                R.Receipt(TODAY - timedelta(days=1), 100, R.Source.HISTORY)]
    assert [h.total_cents for h in R.by_horizon(receipts, TODAY)] == [1, 11, 11]
    assert R.window_end(TODAY, 30) == date(2026, 4, 15)
