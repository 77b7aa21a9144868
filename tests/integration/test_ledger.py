"""The ledger's promises, on SQLite and PostgreSQL: balances are always total minus what is applied, nothing is
over-allocated, overpayment becomes credit, and money-moving rows are never edited or deleted."""

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.domain.errors import AllocationError, DomainError, InvalidAmount, InvalidTransition
from portal.models import Allocation, Invoice, Payment, Refund
from portal.services import billing, ledger, payments, reports


def owed(session, *invoices):
    return [ledger.balance_of(session, i) for i in invoices]


def test_partial_payments_leave_the_invoice_open_until_paid(session, make):
    client = make.client()
    inv = make.invoice(client, 10_000)
    make.payment(client, 2_500)
    assert (inv.status, owed(session, inv)) == ("open", [7_500])
    make.payment(client, 7_500)
    assert (inv.status, owed(session, inv)) == ("paid", [0])
    assert inv.paid_at is not None


def test_one_payment_across_several_invoices_oldest_due_first(session, make, clock):
    client = make.client()
    today = clock.today()
    newest = make.invoice(client, 3_000, issue_date=today - timedelta(days=5), due_date=today + timedelta(days=25))
    oldest = make.invoice(client, 5_000, issue_date=today - timedelta(days=60), due_date=today - timedelta(days=30))
    middle = make.invoice(client, 4_000, issue_date=today - timedelta(days=30), due_date=today)
    payment = make.payment(client, 10_000)
    assert owed(session, oldest, middle, newest) == [0, 0, 2_000]
    assert {(a.invoice_id, a.amount_cents) for a in payment.allocations} == {(oldest.id, 5_000), (middle.id, 4_000),
                                                                              (newest.id, 1_000)}


def test_explicit_allocation_is_respected(session, make):
    client = make.client()
    a, b = make.invoice(client, 5_000), make.invoice(client, 5_000)
    make.payment(client, 6_000, allocations={b.id: 5_000, a.id: 1_000})
    assert owed(session, a, b) == [4_000, 0]
    assert ledger.credit_cents(session, client.id) == 0


def test_overpayment_becomes_credit_and_can_be_applied_later(session, make):
    client = make.client()
    first = make.invoice(client, 4_000)
    make.payment(client, 10_000)
    assert owed(session, first) == [0]
    assert ledger.credit_cents(session, client.id) == 6_000
    second = make.invoice(client, 7_000)
    applied = payments.apply_credit(session, client)
    assert applied == 6_000
    assert owed(session, second) == [1_000]
    assert ledger.credit_cents(session, client.id) == 0


def test_over_allocation_is_refused_and_saves_nothing(session, make):
    client = make.client()
    inv = make.invoice(client, 5_000)
    with pytest.raises(AllocationError):
        make.payment(client, 6_000, allocations={inv.id: 6_000})
    with pytest.raises(AllocationError):
        make.payment(client, 1_000, allocations={inv.id: 2_000})
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Payment)) == 0
    assert session.scalar(select(func.count()).select_from(Allocation)) == 0


def test_a_payment_cannot_be_applied_to_another_clients_invoice(session, make):
    mine, theirs = make.client(), make.client()
    foreign = make.invoice(theirs, 5_000)
    with pytest.raises(AllocationError):
        make.payment(mine, 5_000, allocations={foreign.id: 5_000})
    session.rollback()
    assert owed(session, foreign) == [5_000]


def test_drafts_and_void_invoices_take_no_money(session, make):
    client = make.client()
    draft = make.invoice(client, 5_000, issue=False)
    make.payment(client, 1_000)
    assert session.scalar(select(func.count()).select_from(Allocation)) == 0
    assert ledger.credit_cents(session, client.id) == 1_000
    with pytest.raises(AllocationError):
        payments.apply_credit(session, client, {draft.id: 1_000})


@pytest.mark.parametrize("bad", [0, -100])
def test_payment_amount_must_be_positive(make, bad):
    with pytest.raises(InvalidAmount):
        make.payment(make.client(), bad)


def test_payment_cannot_be_dated_in_the_future(make, clock):
    with pytest.raises(DomainError):
        make.payment(make.client(), 100, received_on=clock.today() + timedelta(days=1))


def test_paid_invoice_cannot_be_voided_without_a_refund(session, make):
    client = make.client()
    inv = make.invoice(client, 5_000)
    payment = make.payment(client, 5_000)
    with pytest.raises(InvalidTransition):
        billing.void_invoice(session, inv, "billed twice")
    session.rollback()
    partially = make.invoice(client, 5_000)
    make.payment(client, 100)
    with pytest.raises(InvalidTransition):
        billing.void_invoice(session, partially, "wrong client")
    session.rollback()

    payments.refund_payment(session, payment, amount_cents=5_000, reason="billed twice")
    assert inv.status == "open"
    billing.void_invoice(session, inv, "billed twice")
    assert inv.status == "void"
    assert owed(session, inv) == [0]


def test_unapplying_moves_money_back_to_credit_so_the_invoice_can_be_voided(session, make):
    client = make.client()
    inv = make.invoice(client, 5_000)
    make.payment(client, 5_000)
    assert payments.unapply_invoice(session, inv) == 5_000
    assert inv.status == "open"
    assert ledger.credit_cents(session, client.id) == 5_000
    billing.void_invoice(session, inv, "issued to the wrong client")
    # the original allocation is still there, cancelled by a reversing row: nothing was deleted
    rows = session.scalars(select(Allocation.amount_cents).where(Allocation.invoice_id == inv.id)).all()
    assert sorted(rows) == [-5_000, 5_000]


def test_void_needs_a_reason_and_happens_once(session, make):
    inv = make.invoice(make.client(), 5_000)
    with pytest.raises(InvalidAmount):
        billing.void_invoice(session, inv, "  ")
    billing.void_invoice(session, inv, "duplicate")
    with pytest.raises(InvalidTransition):
        billing.void_invoice(session, inv, "again")


def test_refund_takes_unapplied_money_first_then_reopens_newest_invoices(session, make):
    client = make.client()
    a = make.invoice(client, 3_000, due_date=date(2026, 3, 20))
    b = make.invoice(client, 3_000, due_date=date(2026, 3, 30))
    payment = make.payment(client, 8_000)  # 3,000 + 3,000 applied, 2,000 credit
    payments.refund_payment(session, payment, amount_cents=2_000, reason="overpaid")
    assert owed(session, a, b) == [0, 0]
    assert ledger.credit_cents(session, client.id) == 0
    payments.refund_payment(session, payment, amount_cents=1_000, reason="disputed line")
    assert owed(session, a, b) == [0, 1_000]
    assert b.status == "open"
    with pytest.raises(InvalidAmount):
        payments.refund_payment(session, payment, amount_cents=5_001, reason="too much")
    session.rollback()
    assert sum(r.amount_cents for r in session.scalars(select(Refund))) == 3_000


def test_zero_total_invoice_is_paid_on_issue(make):
    inv = make.invoice(make.client(), 0)
    assert inv.status == "paid"


def test_invoice_numbers_are_unique_and_sequential(session, make):
    from portal.services.errors import Conflict

    client = make.client()
    first = make.invoice(client, 100)
    second = make.invoice(client, 100)
    assert (first.number, second.number) == ("INV-000001", "INV-000002")
    with pytest.raises(Conflict):
        make.invoice(client, 100, number="INV-000001")


def test_numbering_skips_imported_numbers_of_another_shape(session, make):
    """An imported 'INV-²' (a Unicode digit: str.isdigit() says yes, int() says no) or 'INV-12A' is not a number
    of ours and must not break numbering."""
    client = make.client()
    for odd in ("INV-²", "INV-12A", "INV-000007"):
        make.invoice(client, 100, number=odd)
    assert make.invoice(client, 100).number == "INV-000008"
    # ours by shape whatever their zeros; not ours: another case, prefix or length, or no digits at all
    for odd in ("INV-0000011", "inv-000050", "XINV-000060", "INV-1234567890123", "INV-", "INV-9.5"):
        make.invoice(client, 100, number=odd)
    assert make.invoice(client, 100).number == "INV-000012"


def test_the_next_number_is_read_through_the_index_of_our_numbers(session, make):
    """The query's condition is the index's, word for word (models/billing.OUR_NUMBER): if one changed without the
    other, every new invoice would read every number again (310 ms at a million, under the numbering lock). The
    imported history, numbered otherwise, is what the index leaves out: without it a test's one invoice is as cheap to
    find through the index of all numbers, which the planner picks when earlier tests left it the statistics of a
    one-row table (as they can in the search test, which CI saw fail that way)."""
    client = make.client()
    make.invoice(client, 100)
    make.backlog(client, 100, issue_date=date(2025, 1, 1), due_date=date(2025, 1, 31))
    plan = plan_of(session, billing._HIGHEST_NUMBER[session.get_bind().dialect.name])
    assert any("ix_invoices_our_number" in line for line in plan), plan
    assert billing.next_invoice_number(session) == "INV-000002"


def plan_of(session, statement) -> list[str]:
    """The database's plan for ``statement`` (its values written in); plain scans turned off on PostgreSQL, where
    a test's few rows would be scanned whatever indexes there are."""
    connection = session.connection()
    sql = str(statement.compile(connection, compile_kwargs={"literal_binds": True}))
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return connection.exec_driver_sql(f"EXPLAIN {sql}").scalars().all()
    return [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]


def test_receivables_match_per_invoice_balances(session, make, clock):
    today = clock.today()
    client = make.client()
    make.invoice(client, 1_000, issue_date=today - timedelta(days=100), due_date=today - timedelta(days=95))
    make.invoice(client, 2_000, issue_date=today - timedelta(days=50), due_date=today - timedelta(days=45))
    make.invoice(client, 3_000, issue_date=today, due_date=today + timedelta(days=30))
    make.payment(client, 1_500)  # pays the 90+ one and 500 of the 31-60 one
    report = ledger.receivables(session, today)
    assert report.totals == {"current": 3_000, "1-30": 0, "31-60": 1_500, "61-90": 0, "90+": 0}
    assert report.counts["31-60"] == 1 and report.counts["90+"] == 0
    summary = ledger.client_summary(session, client.id, today)
    assert (summary.balance_due_cents, summary.overdue_cents, summary.next_due_date) == (
        4_500, 1_500, today + timedelta(days=30))


operations = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), st.integers(min_value=0, max_value=50_000)),
        st.tuples(st.just("pay"), st.integers(min_value=1, max_value=60_000)),
        st.tuples(st.just("credit"), st.just(0)),
        st.tuples(st.just("refund"), st.integers(min_value=1, max_value=60_000)),
        st.tuples(st.just("unapply"), st.integers(min_value=0, max_value=20)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_ledger_invariants_hold_after_any_sequence_of_operations(session, make, ops):
    """After any mix of invoices, payments, credit, refunds and unapplying, for every invoice
    balance == total - net allocations, 0 <= balance <= total, status agrees, and the money adds up."""
    client = make.client()  # a fresh client per example keeps examples independent
    for op, n in ops:
        try:
            if op == "invoice":
                make.invoice(client, n)
            elif op == "pay":
                make.payment(client, n)
            elif op == "credit":
                payments.apply_credit(session, client)
            elif op == "refund":
                paid = session.scalars(select(Payment).where(Payment.client_id == client.id)).all()
                if paid:
                    payments.refund_payment(session, paid[n % len(paid)], amount_cents=n, reason="test")
            elif op == "unapply":
                invs = session.scalars(select(Invoice).where(Invoice.client_id == client.id)).all()
                if invs:
                    payments.unapply_invoice(session, invs[n % len(invs)])
        except DomainError:
            session.rollback()  # refused operations must leave no trace; the checks below prove it

    invoices = session.scalars(select(Invoice).where(Invoice.client_id == client.id)).all()
    paid = ledger.paid_cents(session, [i.id for i in invoices])
    for inv in invoices:
        assert 0 <= paid[inv.id] <= inv.total_cents
        session.refresh(inv)
        assert inv.settled_cents == paid[inv.id]  # the sum the database keeps for reports (models/settled.py)
        assert ledger.balance_of(session, inv) == inv.total_cents - paid[inv.id]
        assert inv.status == ("paid" if paid[inv.id] == inv.total_cents else "open")
    received = session.scalar(select(func.coalesce(func.sum(Payment.amount_cents), 0))
                              .where(Payment.client_id == client.id))
    refunded = session.scalar(select(func.coalesce(func.sum(Refund.amount_cents), 0)).join(Payment)
                              .where(Payment.client_id == client.id))
    assert received == sum(paid.values()) + ledger.credit_cents(session, client.id) + refunded


# --- the rules in SQL agree with the domain --------------------------------------------------------------------


def test_the_sql_balance_is_the_domain_balance_for_every_status(session, make):
    """ledger.balance_expr (standing) and stored_balance (aging, client lists, a client's figures: over the kept
    sum, and only for owing invoices, which every query over it filters on) are domain.ledger.invoice_balance in
    SQL: they sum the same balances the invoice pages show."""
    client = make.client()
    draft = make.invoice(client, 1_000, issue=False)
    part_paid, paid, untouched = (make.invoice(client, cents) for cents in (5_000, 2_000, 3_000))
    voided = make.invoice(client, 4_000)
    make.payment(client, 2_000 + 1_500, allocations={paid.id: 2_000, part_paid.id: 1_500})
    billing.void_invoice(session, voided, "billed twice")
    invoices = [draft, part_paid, paid, untouched, voided]

    applied = ledger.applied_by_invoice()
    in_sql = dict(session.execute(select(Invoice.id, ledger.balance_expr(applied))
                                  .outerjoin(applied, applied.c.invoice_id == Invoice.id)).all())
    kept = dict(session.execute(select(Invoice.id, ledger.stored_balance())
                                .where(Invoice.status.in_(ledger.OWING))).all())

    expected = {draft.id: 0, part_paid.id: 3_500, paid.id: 0, untouched.id: 3_000, voided.id: 0}
    assert {i.id: ledger.balance_of(session, i) for i in invoices} == expected
    assert {i: int(cents) for i, cents in in_sql.items()} == expected
    assert {i: int(cents) for i, cents in kept.items()} == {part_paid.id: 3_500, untouched.id: 3_000}


def test_the_sql_credit_is_the_domain_credit(session, make):
    """ledger.credit_expr is domain.payments.payment_credit in SQL: money not applied nor refunded, and only
    money that arrived."""
    client = make.client()
    invoice = make.invoice(client, 3_000)
    applied_and_refunded = make.payment(client, 10_000, allocations={invoice.id: 3_000})
    payments.refund_payment(session, applied_and_refunded, amount_cents=2_000, reason="overpaid")
    pending = make.payment(client, 7_000)
    pending.status = "processing"  # an ACH debit still on its way: nobody's credit yet
    session.commit()

    rows = payments_report_rows(session, [applied_and_refunded, pending])

    assert {p.id: credit for p, credit in ledger.unallocated_by_payment(session, client.id)} == {
        applied_and_refunded.id: 5_000}
    assert rows == {applied_and_refunded.id: 5_000, pending.id: 0}
    assert ledger.credit_cents(session, client.id) == 5_000

    # the sums kept on the payment (models/settled.py) follow a refund that fails and money applied later
    refund = applied_and_refunded.refunds[0]
    refund.status = "failed"  # what the gateway's webhook records
    session.commit()
    make.payment(make.client(), 4_000)  # another client's credit is not this one's
    payments.apply_credit(session, client)
    assert ledger.balance_of(session, invoice) == 0
    assert payments_report_rows(session, [applied_and_refunded]) == {applied_and_refunded.id: 7_000}
    assert ledger.credit_cents(session, client.id) == 7_000 == sum(
        credit for _, credit in ledger.unallocated_by_payment(session, client.id))


def test_a_clients_credit_is_read_through_the_index_of_payments_holding_credit(session, make):
    """The credit's condition is the index's, word for word (models/billing.HOLDS_CREDIT): if one changed without
    the other the database would read the client's whole payment history again, which no figure would show."""
    client = make.client()
    make.payment(client, 1_000)
    plan = plan_of(session, ledger._CREDIT.params(client_id=client.id))
    assert any("ix_payments_credit" in line for line in plan), plan
    assert ledger.credit_cents(session, client.id) == 1_000


def payments_report_rows(session, found) -> dict[int, int]:
    """The credit each payment shows on the staff pages (domain rule over per-payment sums)."""
    return {p.id: reports.payment_row(session, p).unapplied_cents for p in found}


def test_plain_rows_reads_what_session_execute_would(session, make):
    """keysets.plain_rows (the busiest reads, past the ORM's result handling) sees the session's pending changes as
    session.execute does (it flushes first), and under no_autoflush it leaves them pending, as session.execute
    does."""
    from portal.services.keysets import plain_rows

    client = make.client()
    statement = select(Payment.amount_cents).where(Payment.client_id == client.id).order_by(Payment.id)
    make.payment(client, 1_000)
    pending = Payment(client_id=client.id, method="check", amount_cents=2_000, currency="USD",
                      received_on=client.created_at.date(), created_at=client.created_at)
    session.add(pending)
    with session.no_autoflush:
        assert plain_rows(session, statement).scalars().all() == session.execute(statement).scalars().all() == [1_000]
    assert plain_rows(session, statement).scalars().all() == [1_000, 2_000]
    session.rollback()
