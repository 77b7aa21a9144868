"""Likely-duplicate rules without a database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain.duplicates import Bill, is_likely_duplicate, originals_of

DAY = date(2026, 3, 2)


def bill(invoice_id: int, *, client: int = 1, number: str | None = None, cents: int = 125_000, day: date = DAY,
         currency: str = "USD") -> Bill:
    return Bill(invoice_id, client, number or f"INV-{invoice_id}", cents, day, currency)


@pytest.mark.parametrize(("other", "expected"), [
    (bill(1), True),
    (bill(1, day=DAY - timedelta(days=5)), True),  # at the window's edge
    (bill(1, day=DAY + timedelta(days=5)), True),
    (bill(1, day=DAY - timedelta(days=6)), False),
    (bill(1, client=2), False),
    (bill(1, cents=125_001), False),
    (bill(1, currency="CAD"), False),
    (bill(1, number="INV-2"), False),  # the same number is the same invoice (a re-import), not a duplicate
    (bill(3), False),  # a newer invoice is never the original
])
def test_likely_duplicate(other, expected):
    assert is_likely_duplicate(bill(2), other, 5) is expected


def test_a_zero_invoice_is_never_held():
    assert not is_likely_duplicate(bill(2, cents=0), bill(1, cents=0), 5)


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(0, 20)), min_size=2, max_size=12),
       st.integers(0, 10))
def test_of_any_pair_at_most_the_newer_is_held_and_the_rule_is_symmetric_in_dates(rows, window):
    bills = [bill(i, client=c, cents=1000 * a, day=DAY + timedelta(days=d % 7))
             for i, (c, a, d) in enumerate(rows, start=1)]
    for new in bills:
        for original in originals_of(new, bills, window):
            assert original.invoice_id < new.invoice_id
            assert new not in originals_of(original, bills, window)
