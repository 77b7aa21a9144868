"""Late-fee rules without a database: periods at their exact boundaries, the arithmetic (hypothesis: never
negative, rounded once, never compounding), reading the signed terms and quoting their clause."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import evidence
from portal.domain import late_fees as L
from portal.domain import terms as T

DUE = date(2026, 3, 1)


@pytest.mark.parametrize(("today", "period"), [
    (date(2026, 3, 1), None), (date(2026, 3, 6), None),  # the due date and the last grace day
    (date(2026, 3, 7), 1), (date(2026, 4, 6), 1),  # period 1: the day after due + grace, to a month later
    (date(2026, 4, 7), 2), (date(2026, 5, 6), 2), (date(2026, 5, 7), 3), (date(2027, 3, 7), 13),
])
def test_periods_start_the_day_after_the_grace_days_then_monthly(today, period):
    assert L.current_period(DUE, 5, today) == period


def test_with_no_grace_period_one_starts_the_day_after_due():
    assert L.current_period(DUE, 0, DUE) is None
    assert L.current_period(DUE, 0, DUE + timedelta(days=1)) == 1


def test_month_ends_clamp_without_drifting():
    due = date(2026, 1, 30)  # grace 0: period 1 starts Jan 31
    assert [L.period_start(due, 0, k) for k in (1, 2, 3, 4)] == [date(2026, 1, 31), date(2026, 2, 28),
                                                                 date(2026, 3, 31), date(2026, 4, 30)]
    assert L.current_period(due, 0, date(2026, 2, 27)) == 1
    assert L.current_period(due, 0, date(2026, 2, 28)) == 2
    assert L.current_period(due, 0, date(2026, 3, 30)) == 2
    assert L.current_period(due, 0, date(2026, 3, 31)) == 3


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)), st.integers(0, 60),
       st.integers(0, 800))
def test_the_current_period_always_contains_today(due, grace, days_after):
    today = due + timedelta(days=days_after)
    period = L.current_period(due, grace, today)
    if period is None:
        assert today <= due + timedelta(days=grace)
    else:
        assert L.period_start(due, grace, period) <= today < L.period_start(due, grace, period + 1)


def test_the_fee_is_the_percent_of_the_basis_rounded_half_up_once():
    assert L.fee_cents(100_000, Decimal("1.5")) == 1_500
    assert L.fee_cents(123_456, Decimal("1.5")) == 1_852  # 1851.84
    assert L.fee_cents(100, Decimal("1.5")) == 2  # 1.5 rounds half up
    assert L.fee_cents(33, Decimal("1.5")) == 0  # 0.495
    assert L.fee_cents(0, Decimal("5")) == 0
    assert L.fee_cents(-5_000, Decimal("5")) == 0


@given(st.integers(-10**12, 10**12), st.decimals(min_value=0, max_value=100, places=2))
def test_a_fee_is_never_negative_and_is_one_rounding_of_the_exact_amount(basis, percent):
    fee = L.fee_cents(basis, percent)
    assert fee >= 0
    if basis > 0:
        exact = Decimal(basis) * percent / 100
        assert fee == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        assert abs(Decimal(fee) - exact) <= Decimal("0.5")


@given(st.integers(0, 10**11), st.integers(0, 10**9))
def test_without_compounding_earlier_fees_never_join_the_basis(overdue, unpaid_fees):
    assert L.fee_basis(overdue, unpaid_fees, compounding=False) == overdue
    assert L.fee_basis(overdue, unpaid_fees, compounding=True) == overdue + unpaid_fees


@given(st.integers(1, 10**10), st.decimals(min_value=Decimal("0.01"), max_value=5, places=2), st.integers(1, 24))
def test_each_period_charges_the_same_on_an_unchanged_balance(balance, percent, periods):
    # no compounding: period k's fee does not grow with the fees of periods 1..k-1
    fees = [L.fee_cents(L.fee_basis(balance, 0, compounding=False), percent) for _ in range(periods)]
    assert len(set(fees)) == 1


@pytest.mark.parametrize(("variables", "expected"), [
    ({"late_fee_percent": "1.5", "grace_days": "5"}, L.FeeTerms(Decimal("1.5"), 5)),
    ({"late_fee_percent": "0", "grace_days": "5"}, None),  # 0 means no late fee
    ({"late_fee_percent": "", "grace_days": "5"}, None),
    ({"late_fee_percent": "abc", "grace_days": "5"}, None),
    ({"late_fee_percent": "NaN", "grace_days": "5"}, None),
    ({"late_fee_percent": "-1", "grace_days": "5"}, None),
    ({"late_fee_percent": "2", "grace_days": "x"}, None),
    ({}, None),
])
def test_terms_from_the_signed_variables(variables, expected):
    assert L.terms_from_variables(variables) == expected


def _signed_document(**parameters) -> str:
    variables = T.merge_variables(msp_legal_name="Acme IT Services LLC", msp_email="billing@acme.test",
                                  client_legal_name="Harbor Dental", net_days=30,
                                  parameters={**T.DEFAULT_PARAMETERS, "governing_law": "Ohio", **parameters},
                                  effective_date=date(2026, 1, 5))
    return evidence.merge(T.DEFAULT_TERMS_TEXT, variables)


def test_the_clause_quoted_is_the_late_fee_section_of_the_signed_document():
    clause = L.late_fee_clause(_signed_document(late_fee_percent="1.5", grace_days="5"))
    assert clause == ("4. Late fees and interest: If a balance is still unpaid 5 days after its due date, we may add "
                      "a late fee of 1.5% per month on the overdue amount until it is paid, or the highest rate the "
                      "law allows if that is lower.")


def test_a_document_without_a_late_fee_section_quotes_nothing():
    assert L.late_fee_clause("# Payment Terms\n\n## 1. When invoices are due\n\nNet 30.\n") == ""


def test_the_line_names_the_percent_the_basis_the_invoice_and_the_period():
    label = L.period_label(DUE, 5, 1)
    assert L.line_text(Decimal("1.50"), 123_456, "USD", "INV-000042", label) == (
        "Late fee: 1.5% of $1,234.56 overdue on invoice INV-000042 for month 1 late (Mar 7, 2026 to Apr 6, 2026)")
