from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import aging
from portal.domain.errors import AllocationError
from portal.domain.ledger import OpenItem, allocate_oldest_first, check_allocation, reversal_plan
from portal.domain.statements import Entry, build_statement

balances = st.lists(st.integers(min_value=1, max_value=10**9), min_size=0, max_size=30)


@given(st.integers(min_value=0, max_value=10**10), balances)
def test_oldest_first_never_over_allocates_and_keeps_the_rest(amount, owed):
    items = [OpenItem(i, b) for i, b in enumerate(owed)]
    plan = allocate_oldest_first(amount, items)
    assert sum(plan.values()) == min(amount, sum(owed))
    for item in items:
        assert 0 <= plan.get(item.invoice_id, 0) <= item.balance_cents
    # oldest first: an invoice is only touched once every older one is fully paid
    touched = [i for i in items if i.invoice_id in plan]
    for earlier in items[: items.index(touched[-1])] if touched else []:
        assert plan[earlier.invoice_id] == earlier.balance_cents
    check_allocation(amount, plan, items)


def test_explicit_allocations_are_checked():
    items = [OpenItem(1, 500, "INV-1"), OpenItem(2, 300, "INV-2")]
    check_allocation(800, {1: 500, 2: 300}, items)
    with pytest.raises(AllocationError, match="more than is owed on INV-2"):
        check_allocation(1000, {2: 301}, items)
    with pytest.raises(AllocationError, match="more than the payment"):
        check_allocation(600, {1: 500, 2: 200}, items)
    with pytest.raises(AllocationError, match="this client's open invoices"):
        check_allocation(100, {99: 100}, items)
    with pytest.raises(AllocationError):
        check_allocation(100, {1: -1}, items)


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=10), st.data())
def test_reversal_takes_newest_first_and_exactly(applied_amounts, data):
    applied = [(i, c) for i, c in enumerate(applied_amounts)]
    amount = data.draw(st.integers(min_value=0, max_value=sum(applied_amounts)))
    plan = reversal_plan(amount, applied)
    assert sum(plan.values()) == amount
    for invoice_id, cents in plan.items():
        assert cents <= dict(applied)[invoice_id]


def test_reversal_cannot_exceed_what_is_applied():
    with pytest.raises(AllocationError):
        reversal_plan(101, [(1, 100)])


def test_aging_buckets():
    today = date(2026, 3, 16)
    due = [(today, 100, 1), (today - timedelta(days=1), 200, 1), (today - timedelta(days=30), 300, 1),
           (today - timedelta(days=31), 400, 1), (today - timedelta(days=90), 500, 3),
           (today - timedelta(days=91), 600, 2), (today + timedelta(days=10), 700, 1),
           (today - timedelta(days=5), 0, 1)]  # (due date, cents owed, invoices): grouped rows count their invoices
    report = aging.age(due, today)
    assert report.totals == {"current": 800, "1-30": 500, "31-60": 400, "61-90": 500, "90+": 600}
    assert report.counts == {"current": 2, "1-30": 2, "31-60": 1, "61-90": 3, "90+": 2}
    assert report.total_cents == 2800
    assert report.overdue_cents == 2000
    assert report.overdue_count == 8


def test_statement_running_balance_and_opening():
    d = date(2026, 3, 1)
    entries = [
        Entry(d - timedelta(days=40), "invoice", "INV-1", "Invoice INV-1", 10_000, 0),
        Entry(d - timedelta(days=10), "payment", "P-1", "Payment", 0, 4_000),
        Entry(d + timedelta(days=1), "invoice", "INV-2", "Invoice INV-2", 5_000, 0),
        Entry(d + timedelta(days=1), "payment", "P-2", "Payment", 0, 6_000),
        Entry(d + timedelta(days=3), "refund", "R-1", "Refund", 1_000, 0),
        Entry(d + timedelta(days=60), "invoice", "INV-3", "Invoice INV-3", 9_999, 0),
    ]
    statement = build_statement(entries, d, d + timedelta(days=30))
    assert statement.opening_cents == 6_000
    assert [line.balance_cents for line in statement.lines] == [11_000, 5_000, 6_000]
    assert statement.closing_cents == 6_000
