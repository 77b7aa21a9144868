"""Statements: the opening balance summed in SQL equals replaying the whole history, on both databases."""

from datetime import date, timedelta

from portal.services import billing, ledger, payments, statements
from portal.services.autopay import incentives


def test_statement_opening_running_and_closing_balances(session, make, clock):
    client = make.client()
    other = make.client()
    make.invoice(other, 99_999, issue_date=date(2026, 1, 2))  # another client's activity never shows

    clock.set(date(2026, 1, 5))
    old = make.invoice(client, 10_000, issue_date=date(2026, 1, 5))
    voided_early = make.invoice(client, 7_000, issue_date=date(2026, 1, 6))
    billing.void_invoice(session, voided_early, "duplicate")
    clock.set(date(2026, 1, 20))
    early = make.payment(client, 6_000, received_on=date(2026, 1, 20))
    clock.set(date(2026, 1, 25))
    payments.refund_payment(session, early, amount_cents=1_000, reason="overcharge", refunded_on=date(2026, 1, 25))

    clock.set(date(2026, 2, 10))
    voided_late = make.invoice(client, 3_000, issue_date=date(2026, 1, 30))
    new = make.invoice(client, 5_000, issue_date=date(2026, 2, 10))
    billing.void_invoice(session, voided_late, "wrong client")
    make.payment(client, 2_500, received_on=date(2026, 2, 10))
    clock.set(date(2026, 3, 16))
    make.invoice(client, 1_000, issue_date=date(2026, 3, 10))  # after the range

    statement = statements.client_statement(session, client.id, date(2026, 2, 1), date(2026, 2, 28))

    # before Feb 1: 10,000 + 7,000 − 7,000 (void) − 6,000 + 1,000 (refund) + 3,000 (voided later) = 8,000
    assert statement.opening_cents == 8_000
    assert [(line.entry.kind, line.entry.reference, line.balance_cents) for line in statement.lines] == [
        ("invoice", new.number, 13_000),
        ("void", voided_late.number, 10_000),
        ("payment", statement.lines[2].entry.reference, 7_500),
    ]
    assert statement.closing_cents == 7_500
    assert old.number not in {line.entry.reference for line in statement.lines}

    whole = statements.client_statement(session, client.id, date(2025, 1, 1), date(2026, 2, 28))
    assert whole.opening_cents == 0 and whole.closing_cents == statement.closing_cents


def test_reversed_range_is_read_forwards(session, make):
    client = make.client()
    make.invoice(client, 1_000)
    today = date(2026, 3, 16)
    flipped = statements.client_statement(session, client.id, today, today - timedelta(days=30))
    assert (flipped.start, flipped.end, flipped.closing_cents) == (today - timedelta(days=30), today, 1_000)


def test_an_autopay_discount_is_a_credit_line_so_the_statement_ends_at_the_ledgers_balance(session, make, clock):
    """The discount settles part of the invoice without money moving: left out, the statement would show the client
    owing it."""
    client = make.client()
    clock.set(date(2026, 2, 3))
    invoice = make.invoice(client, 10_000, issue_date=date(2026, 2, 3))
    clock.set(date(2026, 2, 10))
    make.payment(client, 9_500, received_on=date(2026, 2, 10), method="card")
    incentives.record_discount(session, invoice, 500, attempt_id=7)
    session.commit()
    assert ledger.balance_of(session, invoice) == 0

    statement = statements.client_statement(session, client.id, date(2026, 2, 1), date(2026, 2, 28))
    assert [(line.entry.kind, line.entry.charge_cents, line.entry.credit_cents, line.balance_cents)
            for line in statement.lines] == [("invoice", 10_000, 0, 10_000), ("payment", 0, 9_500, 500),
                                             ("adjustment", 0, 500, 0)]
    assert statement.lines[-1].entry.description == f"Autopay discount on invoice {invoice.number}"
    assert statement.closing_cents == 0
    later = statements.client_statement(session, client.id, date(2026, 3, 1), date(2026, 3, 31))
    assert later.opening_cents == 0 and later.lines == ()  # summed in SQL before the range too
