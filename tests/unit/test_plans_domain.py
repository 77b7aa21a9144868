"""Installment plan rules (portal/domain/plans.py): where each row stands, the waterfall of payments, the MSP's
policy for offers, and how a payment is spread over the covered invoices."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.errors import AllocationError, DomainError
from portal.domain.payments import GATEWAY_MINIMUM_CENTS
from portal.domain.plans import (
    DueRow,
    InstallmentStatus,
    Owed,
    Policy,
    allocate,
    check_offer,
    check_policy,
    due_rows,
    next_charge,
    progress,
)
from portal.domain.schedules import Frequency, PlanTerms, build_schedule

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=300)
S = InstallmentStatus

# The down payment on Jan 1, then three installments on the 1st of Feb, Mar, Apr.
ROWS = (DueRow(0, date(2025, 1, 1), 10_000), DueRow(1, date(2025, 2, 1), 30_000), DueRow(2, date(2025, 3, 1), 30_000),
        DueRow(3, date(2025, 4, 1), 30_000))


def statuses(paid, today, grace=5):
    return [row.status for row in progress(ROWS, paid, today=today, grace_days=grace).rows]


# --- where each row stands --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("today", "expected"), [
    (date(2025, 1, 31), S.UPCOMING),  # the day before
    (date(2025, 2, 1), S.DUE),  # the due date itself
    (date(2025, 2, 2), S.LATE),  # a day late: within grace
    (date(2025, 2, 6), S.LATE),  # the last grace day
    (date(2025, 2, 7), S.MISSED),  # past grace
])
def test_an_unpaid_installment_moves_from_upcoming_to_missed(today, expected):
    assert statuses(10_000, today)[1] is expected


def test_without_grace_an_installment_is_missed_the_day_after():
    assert statuses(10_000, date(2025, 2, 1), grace=0)[1] is S.DUE
    assert statuses(10_000, date(2025, 2, 2), grace=0)[1] is S.MISSED


def test_paid_and_partly_paid_rows():
    # $100 down + $300 + $50 toward row 2, seen on Jan 15: row 2 is paid into ahead of its date.
    assert statuses(45_000, date(2025, 1, 15)) == [S.PAID, S.PAID, S.PARTLY_PAID, S.UPCOMING]
    # Once row 2 falls due its timing is what counts; its paid_cents still show the part paid.
    state = progress(ROWS, 45_000, today=date(2025, 3, 3), grace_days=5)
    assert [row.status for row in state.rows] == [S.PAID, S.PAID, S.LATE, S.UPCOMING]
    assert (state.rows[2].paid_cents, state.rows[2].owing_cents) == (5_000, 25_000)


def test_a_few_cents_short_of_an_installment_never_put_the_plan_in_default():
    """Less than a card processor's smallest charge cannot be collected alone: it is carried to the next row's
    charge; on the last row there is nothing to carry it and it waits for the MSP to write it off or record it.
    Either way it is late, never missed: a plan does not default over a few cents."""
    short = 10_000 + 30_000 - 30  # the down payment and row 1, 30 cents short
    state = progress(ROWS, short, today=date(2025, 3, 3), grace_days=5)
    assert [row.status for row in state.rows] == [S.PAID, S.LATE, S.LATE, S.UPCOMING]
    assert state.rows[1].owing_cents == 30 and not state.in_default
    assert state.due_now_cents == 30 + 30_000
    everything_but_30 = sum(row.amount_cents for row in ROWS) - 30
    last = progress(ROWS, everything_but_30, today=ROWS[-1].due_on + timedelta(days=6), grace_days=5)
    assert last.rows[-1].status is S.LATE and last.rows[-1].owing_cents == 30 and not last.in_default
    assert last.remaining_cents == 30 and not last.completed
    more = progress(ROWS, everything_but_30 - 20, today=ROWS[-1].due_on + timedelta(days=6), grace_days=5)
    assert more.first_missed == more.rows[-1]  # 50 cents can be charged: missed as any other row


def test_payments_fill_rows_in_order_which_is_how_paying_ahead_works():
    state = progress(ROWS, 75_000, today=date(2025, 1, 20), grace_days=5)
    assert [(row.paid_cents, row.owing_cents) for row in state.rows] == [(10_000, 0), (30_000, 0), (30_000, 0),
                                                                         (5_000, 25_000)]
    assert (state.paid_cents, state.remaining_cents) == (75_000, 25_000)
    assert state.next_due == state.rows[3]
    assert state.first_missed is None and not state.in_default and not state.completed
    assert state.due_now_cents == 0


def test_a_missed_installment_puts_the_plan_in_default():
    state = progress(ROWS, 25_000, today=date(2025, 3, 3), grace_days=5)
    assert [row.status for row in state.rows] == [S.PAID, S.MISSED, S.LATE, S.UPCOMING]
    assert state.first_missed == state.rows[1] and state.in_default
    assert state.next_due == state.rows[1]
    assert state.due_now_cents == 15_000 + 30_000


def test_the_down_payment_is_due_at_acceptance():
    state = progress(ROWS, 0, today=date(2025, 1, 1), grace_days=5)
    assert state.rows[0].status is S.DUE and state.due_now_cents == 10_000 and state.next_due.number == 0


def test_a_plan_paid_in_full_is_completed_even_if_overpaid():
    for paid in (100_000, 100_500):
        state = progress(ROWS, paid, today=date(2030, 1, 1), grace_days=5)
        assert state.completed and not state.in_default
        assert state.next_due is None and state.remaining_cents == 0 and state.paid_cents == paid
        assert all(row.status is S.PAID for row in state.rows)


def test_rows_are_taken_in_number_order_whatever_order_they_come_in():
    assert progress(tuple(reversed(ROWS)), 10_000, today=date(2025, 1, 2), grace_days=0).rows[0].number == 0


@pytest.mark.parametrize(("paid", "grace", "message"), [
    (-1, 5, "The amount paid cannot be negative."),
    (0, -1, "Grace days cannot be negative."),
])
def test_progress_refusals(paid, grace, message):
    with pytest.raises(DomainError) as caught:
        progress(ROWS, paid, today=date(2025, 1, 1), grace_days=grace)
    assert str(caught.value) == message


def test_due_rows_put_the_down_payment_first_as_row_zero():
    plan = PlanTerms(100_000, 10_000, 3, Frequency.MONTHLY, date(2025, 2, 1))
    schedule = build_schedule(plan, start_on=date(2025, 1, 1))
    assert due_rows(schedule, accepted_on=date(2025, 1, 1)) == (
        DueRow(0, date(2025, 1, 1), 10_000), DueRow(1, date(2025, 2, 1), 30_000),
        DueRow(2, date(2025, 3, 1), 30_000), DueRow(3, date(2025, 4, 1), 30_000))
    no_down = build_schedule(replace(plan, down_payment_cents=0), start_on=date(2025, 1, 1))
    assert [row.number for row in due_rows(no_down, accepted_on=date(2025, 1, 1))] == [1, 2, 3]


@st.composite
def plans_and_payments(draw):
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))
    amounts = draw(st.lists(st.integers(1, 1_000_000), min_size=1, max_size=30))
    gaps = draw(st.lists(st.integers(0, 40), min_size=len(amounts), max_size=len(amounts)))
    rows, on = [], start
    for number, (amount, gap) in enumerate(zip(amounts, gaps, strict=True)):
        on += timedelta(days=gap)
        rows.append(DueRow(number, on, amount))
    paid = draw(st.integers(0, sum(amounts) + 1000))
    today = start + timedelta(days=draw(st.integers(-10, 40 * 31)))
    return rows, paid, today, draw(st.integers(0, 60))


@PROPERTY
@given(plans_and_payments())
def test_waterfall_invariants(drawn):
    rows, paid, today, grace = drawn
    state = progress(rows, paid, today=today, grace_days=grace)
    total = sum(row.amount_cents for row in rows)
    assert sum(row.paid_cents for row in state.rows) == min(paid, total)
    assert state.remaining_cents == sum(row.owing_cents for row in state.rows) == max(0, total - paid)
    assert all(row.paid_cents + row.owing_cents == row.amount_cents for row in state.rows)
    # Filled in order: full rows, at most one partly paid row, then untouched rows.
    filled = [row.owing_cents == 0 for row in state.rows]
    assert filled == sorted(filled, reverse=True)
    assert sum(0 < row.paid_cents < row.amount_cents for row in state.rows) <= 1
    assert state.completed == (paid >= total)
    # past its grace, unless what it owes is less than a charge can take
    late = [row for row in state.rows if row.owing_cents and (today - row.due_on).days > grace
            and row.owing_cents >= GATEWAY_MINIMUM_CENTS]
    assert state.in_default == bool(late) and state.first_missed == (late[0] if late else None)
    assert all((row.status is S.PAID) == (row.owing_cents == 0) for row in state.rows)


def test_the_next_charge_brings_the_next_row_along_for_a_few_cents():
    amounts = [10_000, 30_000, 30_000, 30_000]
    assert next_charge(amounts, 10_000) == (1, 1, 30_000)
    assert next_charge(amounts, 40_000 - 30) == (1, 2, 30 + 30_000)  # 30 cents alone cannot be charged
    assert next_charge(amounts, 100_000 - 30) == (3, 3, 30)  # the last row: nothing left to bring along
    assert next_charge(amounts, 100_000) is None


@PROPERTY
@given(st.lists(st.integers(1, 100_000), min_size=1, max_size=12), st.integers(0, 1_300_000))
def test_the_next_charge_takes_whole_rows_from_the_first_one_not_covered(amounts, covered):
    charge = next_charge(amounts, covered)
    if covered >= sum(amounts):
        assert charge is None
        return
    first, last, cents = charge
    assert sum(amounts[:first]) <= covered < sum(amounts[:first + 1])  # the first row not fully covered
    assert cents == sum(amounts[:last + 1]) - covered  # whole rows up to the last one it reaches
    assert cents >= GATEWAY_MINIMUM_CENTS or last == len(amounts) - 1
    assert last == first or sum(amounts[:last]) - covered < GATEWAY_MINIMUM_CENTS  # no row more than needed


# --- policy -----------------------------------------------------------------------------------------------------------

POLICY = Policy(max_balance_cents=500_000, max_installments=6, min_down_percent=Decimal("10"),
                frequencies=frozenset({Frequency.MONTHLY, Frequency.BIWEEKLY}), apr_percent=Decimal("0"),
                max_apr_percent=Decimal("18"), grace_days=5)
FITS = PlanTerms(123_450, 12_345, 6, Frequency.MONTHLY, date(2025, 2, 1))


def offer_refused(message, plan, *, by_client, policy=POLICY):
    with pytest.raises(DomainError) as caught:
        check_offer(plan, policy, by_client=by_client)
    assert str(caught.value) == message


def test_an_offer_within_policy_passes_for_both_sides():
    check_policy(POLICY)
    check_offer(FITS, POLICY, by_client=True)
    check_offer(FITS, POLICY, by_client=False)


@pytest.mark.parametrize(("plan", "message"), [
    (replace(FITS, installments=7), "At most 6 payments are allowed."),
    (replace(FITS, down_payment_cents=12_344), "The down payment must be at least 10% ($123.45)."),
    (replace(FITS, balance_cents=500_001, down_payment_cents=50_001),
     "Plans are available for balances up to $5,000.00."),
    (replace(FITS, frequency=Frequency.WEEKLY),
     "Payments every week are not offered; choose every two weeks or monthly."),
    (replace(FITS, frequency=Frequency.CUSTOM, installments=1, custom_dates=(date(2025, 2, 1),)),
     "Payments on chosen dates are not offered; choose every two weeks or monthly."),
    (replace(FITS, apr_percent=Decimal("5")), "Plans chosen here carry an APR of 0%."),
])
def test_a_client_proposal_must_fit_every_self_service_limit(plan, message):
    offer_refused(message, plan, by_client=True)
    check_offer(plan, POLICY, by_client=False)  # the MSP may offer it: that is negotiation


def test_the_maximum_apr_binds_both_sides():
    plan = replace(FITS, apr_percent=Decimal("18.5"))
    offer_refused("The APR may not exceed 18%.", plan, by_client=True)
    offer_refused("The APR may not exceed 18%.", plan, by_client=False)
    check_offer(replace(FITS, apr_percent=Decimal("18.000")), POLICY, by_client=False)
    offer_refused("The APR may not exceed 7.5%.", plan, by_client=False,
                  policy=replace(POLICY, max_apr_percent=Decimal("7.50")))


def test_a_client_must_take_the_policy_apr():
    policy = replace(POLICY, apr_percent=Decimal("9.90"))
    check_offer(replace(FITS, apr_percent=Decimal("9.9")), policy, by_client=True)
    offer_refused("Plans chosen here carry an APR of 9.9%.", FITS, by_client=True, policy=policy)


def test_the_msp_offer_still_needs_a_sane_schedule():
    offer_refused("The down payment cannot be more than the balance ($1,234.50).",
                  replace(FITS, down_payment_cents=200_000), by_client=False)
    offer_refused("The number of installments must be between 1 and 120.", replace(FITS, installments=0),
                  by_client=False)


@pytest.mark.parametrize(("change", "message"), [
    ({"max_balance_cents": 0}, "The maximum balance must be between $0.01 and $999,999,999,999.99."),
    ({"max_installments": 0}, "The maximum number of installments must be between 1 and 120."),
    ({"max_installments": 121}, "The maximum number of installments must be between 1 and 120."),
    ({"min_down_percent": Decimal("-1")}, "The minimum down payment must be between 0% and 100%."),
    ({"min_down_percent": Decimal("100.01")}, "The minimum down payment must be between 0% and 100%."),
    ({"apr_percent": Decimal("-0.5")}, "The APR must be between 0% and 100%."),
    ({"max_apr_percent": Decimal("101")}, "The maximum APR must be between 0% and 100%."),
    ({"max_apr_percent": Decimal("NaN")}, "The maximum APR must be between 0% and 100%."),
    ({"apr_percent": Decimal("19")}, "The APR cannot be more than the maximum APR (18%)."),
    ({"grace_days": -1}, "Grace days must be between 0 and 60."),
    ({"grace_days": 61}, "Grace days must be between 0 and 60."),
    ({"frequencies": frozenset()}, "Allow at least one payment frequency."),
])
def test_policy_settings_out_of_range_are_refused(change, message):
    with pytest.raises(DomainError) as caught:
        check_policy(replace(POLICY, **change))
    assert str(caught.value) == message


def test_policy_edges_are_allowed():
    check_policy(replace(POLICY, max_installments=120, min_down_percent=Decimal(100), apr_percent=Decimal(100),
                         max_apr_percent=Decimal(100), grace_days=60, frequencies=frozenset(Frequency)))
    check_policy(replace(POLICY, max_installments=1, min_down_percent=Decimal(0), grace_days=0,
                         max_apr_percent=Decimal(0)))


# --- allocation -------------------------------------------------------------------------------------------------------

OWED = [Owed(7, date(2025, 3, 1), 5_000), Owed(3, date(2025, 1, 15), 2_000), Owed(5, date(2025, 1, 15), 4_000),
        Owed(9, date(2025, 4, 1), 1_000)]


def test_allocation_pays_the_oldest_invoice_first():
    assert allocate(7_000, OWED) == [(3, 2_000), (5, 4_000), (7, 1_000)]  # same due date: the lower id first
    assert allocate(12_000, OWED) == [(3, 2_000), (5, 4_000), (7, 5_000), (9, 1_000)]


def test_named_invoices_come_first_in_the_order_given():
    assert allocate(6_500, OWED, first=[9, 7]) == [(9, 1_000), (7, 5_000), (3, 500)]
    assert allocate(500, OWED, first=[7]) == [(7, 500)]


def test_nothing_is_allocated_to_invoices_that_owe_nothing():
    owed = [Owed(1, date(2025, 1, 1), 0), Owed(2, date(2025, 1, 2), -300), Owed(3, date(2025, 1, 3), 800)]
    assert allocate(800, owed) == [(3, 800)]


@pytest.mark.parametrize(("amount", "first", "message"), [
    (0, (), "The amount must be more than zero."),
    (-100, (), "The amount must be more than zero."),
    (12_001, (), "The amount is more than the $120.00 owed."),
    (100, (4,), "Invoice 4 is not among the invoices this payment covers."),
])
def test_allocation_refusals(amount, first, message):
    with pytest.raises(AllocationError) as caught:
        allocate(amount, OWED, first=first)
    assert str(caught.value) == message


@st.composite
def owed_and_payment(draw):
    ids = draw(st.lists(st.integers(1, 10_000), min_size=1, max_size=20, unique=True))
    owed = [Owed(i, date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 400))), draw(st.integers(0, 10**8)))
            for i in ids]
    total = sum(line.balance_cents for line in owed)
    first = draw(st.lists(st.sampled_from(ids), max_size=5))
    return owed, draw(st.integers(1, max(1, total))), first, total


@PROPERTY
@given(owed_and_payment())
def test_allocation_sums_exactly_and_never_overpays_an_invoice(drawn):
    owed, amount, first, total = drawn
    if total == 0:
        with pytest.raises(AllocationError):
            allocate(amount, owed, first=first)
        return
    shares = allocate(amount, owed, first=first)
    balances = {line.invoice_id: line.balance_cents for line in owed}
    assert sum(cents for _, cents in shares) == amount
    assert all(0 < cents <= balances[invoice_id] for invoice_id, cents in shares)
    assert len({invoice_id for invoice_id, _ in shares}) == len(shares)
    # Only the last invoice paid into can be left partly paid.
    assert all(cents == balances[invoice_id] for invoice_id, cents in shares[:-1])
