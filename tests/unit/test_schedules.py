"""Installment schedules (portal/domain/schedules.py): due dates, amortization exact to the cent, early payoff."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.errors import DomainError
from portal.domain.schedules import (
    Frequency,
    Payoff,
    PlanTerms,
    Schedule,
    build_schedule,
    down_payment_for_percent,
    due_dates,
    installments_for_amount,
    level_payment_cents,
    payoff,
)

# Property tests run the same examples on every machine, so CI never fails on a draw nobody can reproduce.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=300)

START = date(2025, 1, 1)


def terms(balance, installments, frequency=Frequency.MONTHLY, *, down=0, first=date(2025, 2, 1), apr="0",
          custom=()):
    return PlanTerms(balance, down, installments, frequency, first, Decimal(apr), tuple(custom))


def refused(message, plan_terms, start_on=START):
    with pytest.raises(DomainError) as caught:
        build_schedule(plan_terms, start_on=start_on)
    assert str(caught.value) == message


# --- worked examples --------------------------------------------------------------------------------------------------


def test_public_amortization_example_15000_at_20_percent_for_96_months():
    """Source: the amortization table published at
    http://www.searchlawrence.com/mortgage_calculator/amortization_schedule.php?amount=15000&rate=20&months=96
    "Amount of Loan $15,000, Annual Interest Rate 20%, 96 monthly payments: Monthly Payment $314.30.
     1  $15,000.00  interest $250.00  principal $64.30  ending balance $14,935.70
     2  $14,935.70  interest $248.93  principal $65.37  ending balance $14,870.33
     3  $14,870.33  interest $247.84  principal $66.46  ending balance $14,803.87"
    That page carries unrounded cents between rows (its total interest is $15,172.61); we round each row's interest
    once and let the last row absorb the difference, so our total interest is $15,172.45 and the rows match."""
    schedule = build_schedule(terms(1_500_000, 96, apr="20"), start_on=START)
    assert level_payment_cents(1_500_000, [Decimal("0.20") / 12] * 96) == 31430
    split = [(r.amount_cents, r.interest_cents, r.principal_cents, r.balance_after_cents) for r in schedule.rows[:3]]
    assert split == [
        (31430, 25000, 6430, 1_493_570),
        (31430, 24893, 6537, 1_487_033),
        (31430, 24784, 6646, 1_480_387),
    ]
    assert {r.amount_cents for r in schedule.rows[:-1]} == {31430}
    assert schedule.rows[-1].balance_after_cents == 0
    assert schedule.total_interest_cents == 1_517_245


def test_textbook_car_loan_20000_at_7_5_percent_for_60_months():
    """The classic figures, checkable by hand: r = 7.5% / 12 = 0.00625, payment = 20,000 × r / (1 − 1.00625^−60)
    = $400.76. Month 1: interest 20,000 × 0.00625 = $125.00, principal $275.76, balance $19,724.24. Month 2: interest
    19,724.24 × 0.00625 = $123.28 (123.2765 rounded), principal $277.48."""
    schedule = build_schedule(terms(2_000_000, 60, apr="7.5"), start_on=START)
    first, second = schedule.rows[:2]
    assert (first.amount_cents, first.interest_cents, first.principal_cents) == (40076, 12500, 27576)
    assert first.balance_after_cents == 1_972_424
    assert (second.interest_cents, second.principal_cents) == (12328, 27748)
    last = schedule.rows[-1]
    assert (last.amount_cents, last.principal_cents, last.interest_cents) == (40067, 39818, 249)
    assert schedule.total_of_installments_cents == 59 * 40076 + 40067
    assert schedule.total_cost_cents == schedule.total_of_installments_cents


def test_without_interest_the_last_row_absorbs_the_remainder():
    # $1,000.00 with $100.00 down leaves $900.00; / 7 = $128.571...: six rows of $128.57, the last $128.58.
    schedule = build_schedule(terms(100_000, 7, down=10_000), start_on=START)
    assert [r.amount_cents for r in schedule.rows] == [12857] * 6 + [12858]
    assert all(r.interest_cents == 0 and r.principal_cents == r.amount_cents for r in schedule.rows)
    assert [r.balance_after_cents for r in schedule.rows[-2:]] == [12858, 0]
    assert schedule.principal_cents == 90_000
    assert schedule.total_interest_cents == 0
    assert schedule.total_of_installments_cents == 90_000
    assert schedule.total_cost_cents == 100_000


def test_custom_dates_use_actual_days():
    """APR 36.5% is 0.1% a day. Periods of 10 and 20 days: rates 1% and 2%. The level payment X solves
    X/1.01 + X/(1.01 × 1.02) = 1,000, so X = 1,000 × 1.0302 / 2.02 = $510.00; row 1: interest $10.00 on $1,000,
    row 2: interest 2% of the $500.00 left = $10.00."""
    dates = (date(2025, 1, 11), date(2025, 1, 31))
    schedule = build_schedule(terms(100_000, 2, Frequency.CUSTOM, first=dates[0], apr="36.5", custom=dates),
                              start_on=START)
    assert [(r.due_on, r.amount_cents, r.interest_cents, r.principal_cents, r.balance_after_cents)
            for r in schedule.rows] == [(dates[0], 51000, 1000, 50000, 50000), (dates[1], 51000, 1000, 50000, 0)]


def test_regular_frequencies_use_the_periodic_rate_even_for_a_late_first_date():
    near = build_schedule(terms(1_200_000, 12, apr="12", first=date(2025, 1, 2)), start_on=START)
    far = build_schedule(terms(1_200_000, 12, apr="12", first=date(2025, 3, 1)), start_on=START)
    assert near.rows[0].interest_cents == far.rows[0].interest_cents == 12000  # 1% of $12,000
    weekly = build_schedule(terms(520_000, 4, Frequency.WEEKLY, apr="5.2"), start_on=START)
    assert weekly.rows[0].interest_cents == 520  # 5.2% / 52 = 0.1%
    biweekly = build_schedule(terms(260_000, 4, Frequency.BIWEEKLY, apr="2.6"), start_on=START)
    assert biweekly.rows[0].interest_cents == 260  # 2.6% / 26 = 0.1%


def test_terms_take_values_as_a_model_row_or_form_gives_them():
    loose = PlanTerms(100_000, 0, 2, "custom", date(2025, 2, 1), 12, [date(2025, 2, 1), date(2025, 3, 1)])
    assert loose == terms(100_000, 2, Frequency.CUSTOM, apr="12", custom=(date(2025, 2, 1), date(2025, 3, 1)))
    assert loose.frequency is Frequency.CUSTOM and loose.apr_percent == Decimal(12)
    # Jan 1 to Feb 1 is 31 days: 1,000 × 12% × 31 / 365 = $10.19.
    assert build_schedule(loose, start_on=START).rows[0].interest_cents == 1019


def test_a_single_installment_is_the_whole_principal_plus_one_period():
    schedule = build_schedule(terms(100_000, 1, apr="12"), start_on=START)
    (row,) = schedule.rows
    assert (row.amount_cents, row.principal_cents, row.interest_cents, row.balance_after_cents) == (101000, 100_000,
                                                                                                     1000, 0)


# --- due dates --------------------------------------------------------------------------------------------------------


def test_monthly_dates_clamp_to_month_end_relative_to_the_original_day():
    assert due_dates(date(2024, 1, 31), Frequency.MONTHLY, 5) == (
        date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31))
    assert due_dates(date(2025, 1, 31), Frequency.MONTHLY, 2)[1] == date(2025, 2, 28)
    assert due_dates(date(2025, 11, 30), Frequency.MONTHLY, 4) == (
        date(2025, 11, 30), date(2025, 12, 30), date(2026, 1, 30), date(2026, 2, 28))


def test_weekly_and_biweekly_dates():
    assert due_dates(date(2025, 12, 25), Frequency.WEEKLY, 3) == (date(2025, 12, 25), date(2026, 1, 1),
                                                                  date(2026, 1, 8))
    assert due_dates(date(2025, 2, 20), Frequency.BIWEEKLY, 2) == (date(2025, 2, 20), date(2025, 3, 6))
    assert due_dates(date(2025, 2, 20), "weekly", 1) == (date(2025, 2, 20),)  # the stored string works too


def test_custom_dates_are_returned_as_given():
    custom = (date(2025, 2, 3), date(2025, 2, 17), date(2025, 4, 1))
    assert due_dates(custom[0], Frequency.CUSTOM, 3, custom) == custom


@pytest.mark.parametrize(("first", "custom", "message"), [
    (date(2025, 2, 3), (date(2025, 2, 3), date(2025, 3, 3)), "Choose exactly 3 dates, one for each installment."),
    (date(2025, 2, 1), (date(2025, 2, 3), date(2025, 3, 3), date(2025, 4, 3)),
     "The first chosen date must be the first due date."),
    (date(2025, 2, 3), (date(2025, 2, 3), date(2025, 3, 3), date(2025, 3, 3)),
     "The chosen dates must be in order, each one after the one before."),
    (date(2025, 2, 3), (date(2025, 2, 3), date(2025, 4, 3), date(2025, 3, 3)),
     "The chosen dates must be in order, each one after the one before."),
])
def test_bad_custom_dates_are_refused(first, custom, message):
    with pytest.raises(DomainError) as caught:
        due_dates(first, Frequency.CUSTOM, 3, custom)
    assert str(caught.value) == message
    refused(message, terms(100_000, 3, Frequency.CUSTOM, first=first, custom=custom))


def test_chosen_dates_with_a_regular_frequency_are_refused():
    refused("Chosen dates are only used with the custom frequency.",
            terms(100_000, 1, Frequency.MONTHLY, custom=(date(2025, 2, 1),)))


def test_an_unknown_frequency_is_refused():
    refused("Choose how often to pay: every week, every two weeks, monthly or on chosen dates.",
            terms(100_000, 2, "daily"))


def test_dates_beyond_the_supported_calendar_are_refused():
    with pytest.raises(DomainError, match="The last due date must be between 1900 and 2199."):
        due_dates(date(2199, 6, 1), Frequency.MONTHLY, 12)


# --- refusals ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan_terms", "message"), [
    (terms(0, 3), "There is no balance to put on a plan."),
    (terms(-500, 3), "There is no balance to put on a plan."),
    (terms(100_000, 3, down=-1), "The down payment cannot be negative."),
    (terms(100_000, 3, down=100_001), "The down payment cannot be more than the balance ($1,000.00)."),
    (terms(100_000, 3, down=100_000), "The down payment covers the whole balance; no plan is needed."),
    (terms(100_000, 0), "The number of installments must be between 1 and 120."),
    (terms(100_000, 121), "The number of installments must be between 1 and 120."),
    (terms(100_000, 3, apr="-0.01"), "The APR must be between 0% and 100%."),
    (terms(100_000, 3, apr="100.01"), "The APR must be between 0% and 100%."),
    (terms(100_000, 3, apr="NaN"), "The APR must be between 0% and 100%."),
    (terms(100_000, 3, apr="Infinity"), "The APR must be between 0% and 100%."),
    (terms(105, 6, down=100), "$0.05 is too little to split into 6 installments; choose fewer installments."),
    (terms(10**14, 3), "The balance cannot be more than $999,999,999,999.99."),
])
def test_impossible_terms_are_refused(plan_terms, message):
    refused(message, plan_terms)


def test_a_first_due_date_before_the_start_is_refused():
    refused("The first installment cannot be due before March 5, 2025.", terms(100_000, 3, first=date(2025, 3, 4)),
            start_on=date(2025, 3, 5))
    assert build_schedule(terms(100_000, 3, first=date(2025, 3, 5)), start_on=date(2025, 3, 5)).rows


def test_a_rounded_payment_that_would_leave_empty_rows_is_refused():
    # $0.40 over 60 months at a tiny APR: the exact payment is 0.67 cents, rounded to 1, which would pay the principal
    # off by row 40 and leave 20 empty rows.
    refused("$0.40 is too little to split into 60 installments; choose fewer installments.",
            terms(40, 60, apr="0.01"))


def test_a_custom_gap_whose_interest_exceeds_the_payment_is_refused():
    # A year at 100% before the first date, then three dates a day apart: the first period's interest ($1,000) is
    # more than the level payment (about $500), which would grow the debt.
    custom = (date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4))
    refused("The gap before payment 1 is too long: its interest would be more than the payment. "
            "Space the dates more evenly.",
            terms(100_000, 4, Frequency.CUSTOM, first=custom[0], apr="100", custom=custom))


# --- form helpers -----------------------------------------------------------------------------------------------------


def test_down_payment_for_percent_rounds_half_up():
    assert down_payment_for_percent(123_450, Decimal("10")) == 12_345
    assert down_payment_for_percent(12_345, Decimal("10")) == 1_235  # 1,234.5 -> 1,235
    assert down_payment_for_percent(100_000, Decimal("0")) == 0
    assert down_payment_for_percent(100_000, Decimal("100")) == 100_000
    for bad in (Decimal("-1"), Decimal("100.5")):
        with pytest.raises(DomainError) as caught:
            down_payment_for_percent(100_000, bad)
        assert str(caught.value) == "The down payment percentage must be between 0% and 100%."


def test_installments_for_amount_never_asks_more_than_the_amount_typed():
    assert installments_for_amount(100_000, 25_000) == 4
    assert installments_for_amount(100_000, 30_000) == 4  # 3 × $300 would not cover $1,000
    assert installments_for_amount(100_000, 200_000) == 1
    assert installments_for_amount(12_000, 100) == 120


@pytest.mark.parametrize(("principal", "amount", "message"), [
    (100_000, 0, "The installment amount must be more than zero."),
    (100_000, -100, "The installment amount must be more than zero."),
    (0, 100, "There is no balance to put on a plan."),
    (12_001, 100, "At $1.00 a payment this would take more than 120 installments; choose a larger amount."),
])
def test_installments_for_amount_refusals(principal, amount, message):
    with pytest.raises(DomainError) as caught:
        installments_for_amount(principal, amount)
    assert str(caught.value) == message


# --- early payoff -----------------------------------------------------------------------------------------------------


@pytest.fixture
def car_loan() -> Schedule:
    return build_schedule(terms(2_000_000, 60, apr="7.5"), start_on=START)  # rows due Feb 1, Mar 1, Apr 1 ...


def test_payoff_charges_interest_only_to_the_payoff_day(car_loan):
    # Two rows paid (through Mar 1): $19,446.76 left. To Mar 15, 14 days: 19,446.76 × 7.5% × 14 / 365 = $55.94.
    assert payoff(car_loan, paid_cents=2 * 40076, on=date(2025, 3, 15), start_on=START) == Payoff(1_944_676, 5594,
                                                                                                  1_950_270)
    # On the day of the last paid row: no interest at all.
    assert payoff(car_loan, paid_cents=2 * 40076, on=date(2025, 3, 1), start_on=START).interest_cents == 0


def test_payoff_before_the_first_row_counts_from_the_start(car_loan):
    # 10 days after the start: 20,000 × 7.5% × 10 / 365 = $41.10.
    assert payoff(car_loan, paid_cents=0, on=date(2025, 1, 11), start_on=START) == Payoff(2_000_000, 4110, 2_004_110)
    assert payoff(car_loan, paid_cents=0, on=START, start_on=START) == Payoff(2_000_000, 0, 2_000_000)


def test_a_partial_payment_goes_to_the_row_interest_first(car_loan):
    # Two rows and $100.00 paid: the $100.00 covers part of row 3's interest and counts against what has accrued
    # since Mar 1 ($55.94 by Mar 15), so nothing more is due and the principal is untouched.
    assert payoff(car_loan, paid_cents=2 * 40076 + 10_000, on=date(2025, 3, 15), start_on=START) == Payoff(
        1_944_676, 0, 1_944_676)
    # $150.00 paid into row 3: $121.54 interest, $28.46 principal.
    assert payoff(car_loan, paid_cents=2 * 40076 + 15_000, on=date(2025, 3, 15), start_on=START).principal_cents == (
        1_944_676 - 2846)


def test_paying_ahead_stops_interest_until_the_paid_rows_run_out(car_loan):
    # Three rows paid by Mar 15 (row 3 is due Apr 1): the payoff owes no interest before Apr 1.
    result = payoff(car_loan, paid_cents=3 * 40076, on=date(2025, 3, 15), start_on=START)
    assert result == Payoff(car_loan.rows[2].balance_after_cents, 0, car_loan.rows[2].balance_after_cents)


def test_payoff_interest_never_exceeds_what_the_schedule_still_collects(car_loan):
    years_late = payoff(car_loan, paid_cents=59 * 40076, on=date(2040, 1, 1), start_on=START)
    assert years_late == Payoff(39818, 249, 40067)  # exactly the last row
    assert payoff(car_loan, paid_cents=car_loan.total_of_installments_cents, on=date(2040, 1, 1),
                  start_on=START) == Payoff(0, 0, 0)


def test_payoff_without_interest_is_the_principal_left():
    schedule = build_schedule(terms(100_000, 7, down=10_000), start_on=START)
    assert payoff(schedule, paid_cents=12_857 + 100, on=date(2026, 1, 1), start_on=START) == Payoff(77_043, 0, 77_043)


@pytest.mark.parametrize("paid", [-1, 2 * 40076 * 60])
def test_payoff_refuses_payments_outside_the_schedule(car_loan, paid):
    with pytest.raises(DomainError) as caught:
        payoff(car_loan, paid_cents=paid, on=date(2025, 3, 1), start_on=START)
    assert str(caught.value) == "The payments toward the plan must be between $0.00 and $24,045.51."


# --- properties -------------------------------------------------------------------------------------------------------

APRS = st.one_of(st.just(Decimal(0)), st.integers(2, 4).flatmap(
    lambda places: st.decimals(min_value=0, max_value=36, places=places, allow_nan=False, allow_infinity=False)))
REGULAR = st.sampled_from([Frequency.WEEKLY, Frequency.BIWEEKLY, Frequency.MONTHLY])
FIRSTS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@st.composite
def plan_terms(draw, *, at_least_a_dollar=False):
    """Terms within the documented ranges. ``at_least_a_dollar`` keeps every installment at $1 or more (before
    interest), where a regular schedule must always build."""
    count = draw(st.integers(1, 60))
    balance = draw(st.integers(100 * count if at_least_a_dollar else 2, 10_000_000))
    down = draw(st.integers(0, balance - (100 * count if at_least_a_dollar else 1)))
    start = draw(FIRSTS)
    first = start + timedelta(days=draw(st.integers(0, 60)))
    frequency = draw(REGULAR if at_least_a_dollar else st.sampled_from(list(Frequency)))
    custom = ()
    if frequency is Frequency.CUSTOM:
        gaps = draw(st.lists(st.integers(1, 90), min_size=count - 1, max_size=count - 1))
        custom = [first]
        for gap in gaps:
            custom.append(custom[-1] + timedelta(days=gap))
        custom = tuple(custom)
    return start, PlanTerms(balance, down, count, frequency, first, draw(APRS), custom)


# Refusals a valid-looking draw may meet: too few cents for the count, or (custom) a gap too long for the payment.
ARITHMETIC_REFUSALS = ("is too little to split into", "is too long: its interest would be more than the payment")


def check_invariants(schedule: Schedule) -> None:
    rows, principal = schedule.rows, schedule.principal_cents
    assert len(rows) == schedule.terms.installments
    assert [r.number for r in rows] == list(range(1, len(rows) + 1))
    assert sum(r.principal_cents for r in rows) == principal
    assert all(r.amount_cents > 0 and r.principal_cents >= 0 and r.interest_cents >= 0 for r in rows)
    assert all(r.amount_cents == r.principal_cents + r.interest_cents for r in rows)
    assert len({r.amount_cents for r in rows[:-1]}) <= 1  # level, except the final rounding row
    assert rows[-1].balance_after_cents == 0
    balances = [principal] + [r.balance_after_cents for r in rows]
    assert all(later == earlier - r.principal_cents for earlier, later, r in zip(balances, balances[1:], rows,
                                                                                 strict=False))
    assert all(later <= earlier for earlier, later in zip(balances, balances[1:], strict=False))
    assert [r.due_on for r in rows] == sorted({r.due_on for r in rows})
    if schedule.terms.apr_percent == 0:
        assert schedule.total_interest_cents == 0
    assert schedule.total_cost_cents == schedule.terms.balance_cents + schedule.total_interest_cents


@PROPERTY
@given(plan_terms(at_least_a_dollar=True))
def test_regular_schedules_always_build_and_hold_their_invariants(drawn):
    start, plan = drawn
    schedule = build_schedule(plan, start_on=start)
    check_invariants(schedule)
    balances = [r.balance_after_cents for r in schedule.rows]
    assert all(later < earlier for earlier, later in zip(balances, balances[1:], strict=False))


@PROPERTY
@given(plan_terms())
def test_any_schedule_holds_its_invariants_or_is_refused_for_its_arithmetic(drawn):
    start, plan = drawn
    try:
        schedule = build_schedule(plan, start_on=start)
    except DomainError as refusal:
        assert any(reason in str(refusal) for reason in ARITHMETIC_REFUSALS), str(refusal)
        return
    check_invariants(schedule)


@PROPERTY
@given(plan_terms(), st.floats(0, 1), st.integers(-30, 5000))
def test_payoff_never_exceeds_the_remaining_scheduled_amount(drawn, share, days):
    start, plan = drawn
    try:
        schedule = build_schedule(plan, start_on=start)
    except DomainError:
        return
    scheduled = schedule.total_of_installments_cents
    paid = round(scheduled * share)
    result = payoff(schedule, paid_cents=paid, on=start + timedelta(days=days), start_on=start)
    assert result.total_cents == result.principal_cents + result.interest_cents
    assert result.interest_cents >= 0 and 0 <= result.principal_cents <= schedule.principal_cents
    assert result.total_cents <= scheduled - paid
    if plan.apr_percent == 0:
        assert result.interest_cents == 0 and result.total_cents == scheduled - paid
    if paid == scheduled:
        assert result == Payoff(0, 0, 0)
