"""Likely duplicate bills on a real database: flagged on creation and on import, held from sending (email and
magic link) until the admin decides, sendable once confirmed distinct, voided once confirmed a duplicate."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain.duplicates import DuplicateStatus
from portal.domain.errors import DomainError
from portal.domain.invoices import OPEN, VOID, LineInput
from portal.models import DuplicateFlag, Invoice, InvoiceDelivery
from portal.services import billing, delivery
from portal.services.collections import duplicates
from portal.services.collections.settings import update_collection_settings
from tests.integration.test_import import row, run_import, write_csv

ISSUED = date(2026, 3, 2)


@pytest.fixture
def client(make):
    client = make.client("Harbor Dental Group LLC")
    make.contact(client, "dana@harbor.test", name="Dana Whitfield")
    return client


@pytest.fixture
def original(make, client):
    return make.invoice(client, 125_000, issue_date=ISSUED)


def flags(session) -> list[tuple[int, int, str]]:
    session.expire_all()
    return [(f.invoice_id, f.duplicate_of_id, f.status)
            for f in session.scalars(select(DuplicateFlag).order_by(DuplicateFlag.id))]


def sent(session, invoice) -> int:
    return session.scalar(select(func.count()).select_from(InvoiceDelivery)
                          .where(InvoiceDelivery.invoice_id == invoice.id))


def test_same_client_amount_and_close_dates_under_another_number_is_flagged(session, make, client, original):
    again = make.invoice(client, 125_000, issue_date=date(2026, 3, 6))  # 4 days later (window: 5)
    assert flags(session) == [(again.id, original.id, DuplicateStatus.FLAGGED)]
    assert duplicates.is_held(session, again.id) and not duplicates.is_held(session, original.id)
    assert duplicates.held_ids(session, [original.id, again.id]) == {again.id}


@pytest.mark.parametrize("change", ["other client", "other amount", "too far apart", "void original"])
def test_what_is_not_a_likely_duplicate(session, make, client, original, change):
    if change == "other client":
        make.invoice(make.client(), 125_000, issue_date=ISSUED)
    elif change == "other amount":
        make.invoice(client, 125_001, issue_date=ISSUED)
    elif change == "too far apart":
        make.invoice(client, 125_000, issue_date=date(2026, 3, 8))  # 6 days
    else:
        billing.void_invoice(session, original, "wrong client")  # the usual void-and-reissue correction
        make.invoice(client, 125_000, issue_date=ISSUED)
    assert flags(session) == []


def test_the_window_is_the_msps_setting(session, make, client, original):
    update_collection_settings(session, borrowing_rate_percent=Decimal(8), call_after_days=3, duplicate_window_days=10)
    far = make.invoice(client, 125_000, issue_date=date(2026, 3, 12))
    assert flags(session) == [(far.id, original.id, DuplicateStatus.FLAGGED)]


def test_a_draft_edited_to_another_amount_is_no_longer_held(session, make, client, original):
    draft = make.invoice(client, 125_000, issue=False, issue_date=ISSUED)
    assert duplicates.is_held(session, draft.id)
    billing.update_draft(session, draft, lines=[LineInput("Project work", Decimal(1), 99_000, taxable=False)],
                         issue_date=ISSUED, due_date=date(2026, 4, 1), tax_rate=Decimal(0))
    assert flags(session) == []


def test_an_imported_duplicate_is_flagged_and_the_import_report_is_unchanged(session, tmp_path):
    first = write_csv(tmp_path / "first.csv", [row("1001")])
    run_import(session, first)
    both = write_csv(tmp_path / "both.csv", [row("1001"), row("1001-B", issue_date="2026-03-03"),
                                             row("2001", client="PSA-2", name="Cedar & Pine Law")])
    report = run_import(session, both)
    assert report.summary() == "2 created, 0 updated, 1 unchanged, 0 failed"
    numbers = dict(session.execute(select(Invoice.id, Invoice.number)).all())
    assert [(numbers[a], numbers[b], s) for a, b, s in flags(session)] == [("1001-B", "1001", "flagged")]
    again = run_import(session, both)  # idempotent: nothing new, no second flag
    assert again.summary() == "0 created, 0 updated, 3 unchanged, 0 failed"
    assert len(flags(session)) == 1


def test_a_dry_run_import_leaves_no_flag(session, tmp_path):
    run_import(session, write_csv(tmp_path / "a.csv", [row("1001")]))
    report = run_import(session, write_csv(tmp_path / "b.csv", [row("1002")]), dry_run=True)
    assert report.created == 1 and not report.saved
    assert flags(session) == []


def test_duplicates_within_one_import_file_hold_only_the_later_one(session, tmp_path):
    run_import(session, write_csv(tmp_path / "a.csv", [row("1001"), row("1002")]))
    numbers = dict(session.execute(select(Invoice.id, Invoice.number)).all())
    assert [(numbers[a], numbers[b]) for a, b, _ in flags(session)] == [("1002", "1001")]


def test_an_import_flags_a_twin_only_within_the_window_not_the_monthly_bill(session, tmp_path):
    run_import(session, write_csv(tmp_path / "a.csv", [row("1001", issue_date="2026-03-01")]))
    monthly = run_import(session, write_csv(tmp_path / "b.csv", [row("1002", issue_date="2026-04-01",
                                                                      due_date="2026-04-30")]))
    assert monthly.created == 1 and flags(session) == []  # next month's bill for the same service
    again = run_import(session, write_csv(tmp_path / "c.csv", [row("1003", issue_date="2026-04-06",
                                                                    due_date="2026-05-06")]))
    assert again.created == 1  # 5 days after 1002: the window's edge
    numbers = dict(session.execute(select(Invoice.id, Invoice.number)).all())
    assert [(numbers[a], numbers[b]) for a, b, _ in flags(session)] == [("1003", "1002")]


def test_sending_a_held_invoice_is_refused_until_the_admin_decides(app, session, make, client, original, rt):
    again = make.invoice(client, 125_000, issue_date=ISSUED)
    with pytest.raises(DomainError, match=f"looks like a duplicate of invoice {original.number}"):
        delivery.send_invoice(session, rt, again)
    session.rollback()
    assert sent(session, again) == 0
    result = delivery.send_many(session, rt, [original.id, again.id], actor=None)
    assert result.sent == [original.number]
    assert [n for n, _ in result.failed] == [again.number] and "duplicate" in result.failed[0][1]

    admin = make.staff()
    duplicates.confirm_distinct(session, again.id, staff=admin)
    assert flags(session) == [(again.id, original.id, DuplicateStatus.DISTINCT)]
    assert not duplicates.is_held(session, again.id)
    delivery.send_invoice(session, rt, session.get(Invoice, again.id))
    assert sent(session, again) == 1
    with pytest.raises(DomainError, match="is not held as a likely duplicate"):
        duplicates.confirm_duplicate(session, again.id, staff=admin)


def test_confirming_a_duplicate_voids_it_with_the_reason(session, make, client, original):
    again = make.invoice(client, 125_000, issue_date=ISSUED)
    duplicates.confirm_duplicate(session, again.id, staff=make.staff())
    session.expire_all()
    voided = session.get(Invoice, again.id)
    assert (voided.status, voided.void_reason) == (VOID, f"duplicate of {original.number}")
    assert flags(session)[0][2] == DuplicateStatus.DUPLICATE
    assert session.get(Invoice, original.id).status == OPEN


def test_a_duplicate_with_money_applied_is_not_voided_and_nothing_changes(session, make, client, original):
    again = make.invoice(client, 125_000, issue_date=ISSUED)
    make.payment(client, 1_000, allocations={again.id: 1_000})
    with pytest.raises(DomainError, match="payments applied"):
        duplicates.confirm_duplicate(session, again.id, staff=make.staff())
    session.rollback()
    assert flags(session) == [(again.id, original.id, DuplicateStatus.FLAGGED)]
    assert session.get(Invoice, again.id).status == OPEN


def test_issue_and_send_of_a_held_draft_issues_it_and_says_why_no_email_left(app, session, make, client, original,
                                                                                rt):
    draft = make.invoice(client, 125_000, issue=False, issue_date=ISSUED)
    result = delivery.issue_and_send(session, rt, draft, actor=None)
    assert result.deliveries == [] and "looks like a duplicate" in result.not_sent
    session.expire_all()
    assert session.get(Invoice, draft.id).status == OPEN and sent(session, draft) == 0


def test_a_draft_confirmed_distinct_and_edited_again_stays_distinct(session, make, client, original):
    draft = make.invoice(client, 125_000, issue=False, issue_date=ISSUED)
    duplicates.confirm_distinct(session, draft.id, staff=make.staff())
    draft = session.get(Invoice, draft.id)

    billing.update_draft(session, draft, lines=[LineInput("Managed services, March", Decimal(1), 125_000)],
                         issue_date=ISSUED, tax_rate=Decimal(0), memo="PO 4471")

    assert flags(session) == [(draft.id, original.id, DuplicateStatus.DISTINCT)]  # the admin's answer stands
    assert not duplicates.is_held(session, draft.id)
