from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import invoices as rules
from portal.domain.errors import InvalidAmount, InvalidTransition
from portal.domain.invoices import LineInput, compute_totals


def test_totals_round_each_line_once_and_tax_once():
    lines = [
        LineInput("Managed services per user", Decimal("12"), 4_500),
        LineInput("Project hours", Decimal("2.5"), 12_999),  # 32,497.5 -> 32,498
        LineInput("Hardware (tax exempt)", Decimal("1"), 10_000, taxable=False),
    ]
    totals = compute_totals(lines, Decimal("8.25"))
    assert totals.line_amounts == (54_000, 32_498, 10_000)
    assert totals.subtotal_cents == 96_498
    assert totals.tax_cents == 7_136  # 8.25% of 86,498 = 7,136.085
    assert totals.total_cents == 103_634


@given(
    st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1000"), places=4),
            st.integers(min_value=0, max_value=10_000_000),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    ),
    st.decimals(min_value=Decimal(0), max_value=Decimal(30), places=4),
)
def test_total_is_exactly_the_sum_of_its_parts(raw_lines, rate):
    lines = [LineInput("x", q, p, t) for q, p, t in raw_lines]
    totals = compute_totals(lines, rate)
    assert totals.subtotal_cents == sum(totals.line_amounts)
    assert totals.total_cents == totals.subtotal_cents + totals.tax_cents
    taxable = sum(a for a, line in zip(totals.line_amounts, lines, strict=True) if line.taxable)
    assert abs(totals.tax_cents * 100 - taxable * rate) <= 50  # one half-up rounding, at most half a cent off


@pytest.mark.parametrize(
    ("lines", "rate"),
    [
        ([], Decimal(0)),
        ([LineInput(" ", Decimal(1), 100)], Decimal(0)),
        ([LineInput("x", Decimal(0), 100)], Decimal(0)),
        ([LineInput("x", Decimal(1), 100)], Decimal(-1)),
        ([LineInput("x", Decimal(1), 100)], Decimal(101)),
        ([LineInput("credit", Decimal(1), -500)], Decimal(0)),
    ],
)
def test_bad_lines_are_refused(lines, rate):
    with pytest.raises(InvalidAmount):
        compute_totals(lines, rate)


def test_due_date_cannot_precede_issue_date():
    with pytest.raises(InvalidAmount):
        rules.check_dates(date(2026, 3, 2), date(2026, 3, 1))
    rules.check_dates(date(2026, 3, 1), date(2026, 3, 1))


def test_state_transitions():
    rules.check_issue(rules.DRAFT)
    for status in (rules.OPEN, rules.PAID, rules.VOID):
        with pytest.raises(InvalidTransition):
            rules.check_issue(status)
        with pytest.raises(InvalidTransition):
            rules.check_editable(status)
    rules.check_void(rules.OPEN, 0)
    rules.check_void(rules.DRAFT, 0)
    with pytest.raises(InvalidTransition, match="Refund or unapply"):
        rules.check_void(rules.PAID, 100)
    with pytest.raises(InvalidTransition):
        rules.check_void(rules.OPEN, 1)
    with pytest.raises(InvalidTransition):
        rules.check_void(rules.VOID, 0)


def test_status_follows_the_ledger():
    assert rules.status_for_balance(rules.OPEN, 1000, 1000) == rules.PAID
    assert rules.status_for_balance(rules.PAID, 1000, 999) == rules.OPEN
    assert rules.status_for_balance(rules.VOID, 1000, 1000) == rules.VOID
    assert rules.status_for_balance(rules.DRAFT, 1000, 0) == rules.DRAFT


def test_display_status():
    today = date(2026, 3, 16)
    assert rules.display_status(rules.OPEN, 1000, 0, date(2026, 3, 20), today) == "open"
    assert rules.display_status(rules.OPEN, 1000, 400, date(2026, 3, 20), today) == "partially paid"
    assert rules.display_status(rules.OPEN, 1000, 400, date(2026, 3, 15), today) == "overdue"
    assert rules.display_status(rules.PAID, 1000, 1000, date(2026, 3, 1), today) == "paid"
