"""Late fees on a real database (SQLite, and PostgreSQL with PORTAL_TEST_DATABASE_URL): charged by `run-due` per
period exactly as the client's signed terms say, once however many runs (and OS processes) race, never on plan,
promised, voided or paid invoices, never compounding; waived with a reason, and a waived period stays waived."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.clock import today
from portal.domain.dunning import PromiseStatus
from portal.domain.errors import DomainError
from portal.domain.evidence import AgreementStatus
from portal.domain.invoices import OPEN, PAID, VOID
from portal.domain.late_fees import FEE_SOURCE
from portal.domain.plans import PlanStatus
from portal.models import Allocation, Invoice, LateFee
from portal.services import ledger
from portal.services.collections import late_fees
from tests.late_fee_fixtures import promise, publish_terms, put_on_plan, sign_terms
from tests.run_due_fixtures import run

SIGNED_ON = date(2026, 1, 5)
ISSUED, DUE = date(2026, 2, 1), date(2026, 3, 1)  # grace 5 days: period 1 starts Mar 7, period 2 Apr 7


@pytest.fixture
def admin(make):
    return make.staff()


@pytest.fixture
def terms_v1(session, admin):
    return publish_terms(session, staff=admin)


@pytest.fixture
def client(session, make, terms_v1):
    client = make.client("Harbor Dental Group LLC")
    sign_terms(session, client, terms_v1, on=SIGNED_ON)
    return client


def late_invoice(make, client, cents: int = 100_000, **kw):
    return make.invoice(client, cents, issue_date=kw.pop("issue_date", ISSUED), due_date=kw.pop("due_date", DUE), **kw)


def fees(session, invoice=None) -> list[LateFee]:
    session.expire_all()
    query = select(LateFee).order_by(LateFee.late_invoice_id, LateFee.period)
    if invoice is not None:
        query = query.where(LateFee.late_invoice_id == invoice.id)
    return list(session.scalars(query))


def charge_on(session, clock, day: date):
    clock.set(day)
    return late_fees.charge_late_fees(session, today())


def test_no_fee_on_the_last_grace_day_then_one_fee_per_period_at_its_first_day(session, make, clock, client):
    invoice = late_invoice(make, client)

    charge_on(session, clock, date(2026, 3, 6))  # due + 5 grace days: still within grace
    assert fees(session) == []

    charge_on(session, clock, date(2026, 3, 7))  # the day after: period 1
    [first] = fees(session)
    assert (first.period, first.period_start, first.basis_cents, first.percent, first.amount_cents) == (
        1, date(2026, 3, 7), 100_000, Decimal("1.5"), 1_500)

    charge_on(session, clock, date(2026, 3, 7))  # a second run the same day
    charge_on(session, clock, date(2026, 4, 6))  # the last day of period 1
    assert len(fees(session)) == 1

    charge_on(session, clock, date(2026, 4, 7))  # one month later: period 2
    assert [(f.period, f.period_start) for f in fees(session)] == [(1, date(2026, 3, 7)), (2, date(2026, 4, 7))]
    assert session.scalar(select(func.count()).select_from(Invoice).where(Invoice.source == FEE_SOURCE)) == 2
    assert invoice.status == OPEN


def test_the_fee_invoice_is_issued_due_at_once_and_cites_the_signed_clause(session, make, clock, client):
    invoice = late_invoice(make, client, 123_456)
    charge_on(session, clock, date(2026, 3, 9))
    [fee] = fees(session)
    fee_invoice = session.get(Invoice, fee.fee_invoice_id)
    assert fee_invoice.number.startswith("INV-") and fee_invoice.number != invoice.number
    assert (fee_invoice.status, fee_invoice.issue_date, fee_invoice.due_date) == (OPEN, date(2026, 3, 9),
                                                                                  date(2026, 3, 9))
    assert fee_invoice.total_cents == fee.amount_cents == 1_852  # 1.5% of $1,234.56 = 18.5184 -> $18.52
    [line] = fee_invoice.lines
    assert line.description == (f"Late fee: 1.5% of $1,234.56 overdue on invoice {invoice.number} for month 1 late "
                                "(Mar 7, 2026 to Apr 6, 2026)")
    assert fee.clause.startswith("4. Late fees and interest: If a balance is still unpaid 5 days after its due "
                                 "date, we may add a late fee of 1.5% per month on the overdue amount")
    assert fee.clause in fee_invoice.memo and invoice.number in fee_invoice.memo
    assert fee.agreement_id is not None
    assert late_fees.fee_for_invoice(session, fee_invoice.id).id == fee.id


def test_run_due_has_a_late_fee_step(app, session, make, clock, client, rt):
    late_invoice(make, client)
    clock.set(date(2026, 3, 10))
    report = run(app, session, rt)
    assert not [p for p in report.problems if p.startswith("late fees")], report.problems
    assert len(fees(session)) == 1
    run(app, session, rt)
    assert len(fees(session)) == 1


def test_a_client_who_signed_no_terms_gets_no_late_fee(session, make, clock, terms_v1):
    unsigned = make.client("Never Signed LLC")
    invited = make.client("Only Invited LLC")
    declined = make.client("Declined LLC")
    sign_terms(session, invited, terms_v1, on=SIGNED_ON, status=AgreementStatus.INVITED)
    sign_terms(session, declined, terms_v1, on=SIGNED_ON, status=AgreementStatus.DECLINED)
    for c in (unsigned, invited, declined):
        late_invoice(make, c)
    charge_on(session, clock, date(2026, 4, 20))
    assert fees(session) == []


def test_a_balance_owed_when_the_client_first_signed_is_under_that_signature(session, make, clock, terms_v1):
    client = make.client()
    sign_terms(session, client, terms_v1, on=date(2026, 2, 10))
    v2 = publish_terms(session, percent="2", grace="5")
    sign_terms(session, client, v2, on=date(2026, 2, 20))
    before = late_invoice(make, client, issue_date=date(2026, 2, 1))  # owed when v1 was signed
    charge_on(session, clock, date(2026, 3, 20))
    [fee] = fees(session, before)
    assert (fee.percent, fee.period) == (Decimal("1.5"), 1)  # v1's, and only the current period


def test_the_percent_is_the_signed_versions_not_todays_draft_or_a_newer_version(session, make, clock, client):
    invoice = late_invoice(make, client)
    publish_terms(session, percent="3", grace="0")  # v2: 3%, no grace; the client has not signed it
    charge_on(session, clock, date(2026, 3, 7))
    [fee] = fees(session)
    assert (fee.percent, fee.amount_cents) == (Decimal("1.5"), 1_500)
    assert fees(session, invoice)[0].period_start == date(2026, 3, 7)  # v1's grace days, not v2's


def test_an_invoice_stays_under_the_version_signed_when_it_was_issued(session, make, clock, client):
    v2 = publish_terms(session, percent="2", grace="10")
    sign_terms(session, client, v2, on=date(2026, 2, 15))
    old = late_invoice(make, client)  # issued Feb 1: under v1 (1.5%, grace 5)
    new = late_invoice(make, client, issue_date=date(2026, 2, 20), due_date=DUE)  # under v2 (2%, grace 10)
    charge_on(session, clock, date(2026, 3, 12))
    assert [(f.late_invoice_id, f.percent, f.period_start) for f in fees(session)] == [
        (old.id, Decimal("1.5"), date(2026, 3, 7)), (new.id, Decimal("2"), date(2026, 3, 12))]


def test_terms_with_no_late_fee_charge_none(session, make, clock):
    version = publish_terms(session, percent="0")
    client = make.client()
    sign_terms(session, client, version, on=SIGNED_ON)
    late_invoice(make, client)
    charge_on(session, clock, date(2026, 4, 20))
    assert fees(session) == []


def test_no_fee_on_an_invoice_on_a_current_plan(session, make, clock, client):
    on_plan = late_invoice(make, client)
    ended_plan = late_invoice(make, client, 50_000)
    put_on_plan(session, client, [on_plan])
    put_on_plan(session, client, [ended_plan], status=PlanStatus.DEFAULTED)
    charge_on(session, clock, date(2026, 3, 20))
    assert [f.late_invoice_id for f in fees(session)] == [ended_plan.id]


def test_no_fee_with_an_open_promise_not_yet_due_or_a_kept_one(session, make, clock, client):
    open_promise = late_invoice(make, client, 10_000)
    kept = late_invoice(make, client, 20_000)
    past_due_promise = late_invoice(make, client, 30_000)
    broken = late_invoice(make, client, 40_000)
    clock.set(date(2026, 3, 5))
    promise(session, client, open_promise, on=date(2026, 3, 25))
    promise(session, client, kept, on=date(2026, 3, 3), status=PromiseStatus.KEPT)
    promise(session, client, past_due_promise, on=date(2026, 3, 6))  # its date passed: no longer a reason
    promise(session, client, broken, on=date(2026, 3, 6), status=PromiseStatus.BROKEN)
    charge_on(session, clock, date(2026, 3, 10))
    assert sorted(f.late_invoice_id for f in fees(session)) == sorted([past_due_promise.id, broken.id])


def test_a_promise_for_the_whole_past_due_balance_covers_invoices_already_due(session, make, clock, client):
    due_then = late_invoice(make, client)
    clock.set(date(2026, 3, 5))
    promise(session, client, None, on=date(2026, 3, 30))
    charge_on(session, clock, date(2026, 3, 10))
    assert fees(session, due_then) == []


def test_a_past_due_promise_made_on_an_invoices_due_date_does_not_cover_it(session, make, clock, client):
    already_due = late_invoice(make, client, 30_000)
    due_that_day = late_invoice(make, client, 100_000, due_date=date(2026, 3, 5))  # not past due on Mar 5
    clock.set(date(2026, 3, 5))
    promise(session, client, None, on=date(2026, 3, 6), amount_cents=30_000, status=PromiseStatus.KEPT)
    charge_on(session, clock, date(2026, 3, 11))  # due_that_day's first period (grace 5 days)
    assert [f.late_invoice_id for f in fees(session)] == [due_that_day.id]
    assert fees(session, already_due) == []


def test_a_promise_kept_on_its_date_is_not_charged_a_fee_the_next_morning(session, make, clock, client):
    from portal.services.collections import promises

    invoice = late_invoice(make, client, 100_000)
    clock.set(date(2026, 3, 3))
    made = promise(session, client, invoice, on=date(2026, 3, 8), amount_cents=10_000)
    clock.set(date(2026, 3, 8))
    make.payment(client, 10_000, allocations={invoice.id: 10_000})  # paid on the promised day, after that day's run
    charge_on(session, clock, date(2026, 3, 9))  # run-due charges late fees before it settles promises
    assert promises.settle(session, today()).kept == 1
    session.refresh(made)
    assert made.status == PromiseStatus.KEPT
    assert fees(session, invoice) == []


def test_no_fee_on_a_voided_or_paid_invoice(session, make, clock, client):
    from portal.services import billing

    voided = late_invoice(make, client)
    billing.void_invoice(session, voided, "billed in error")
    paid = late_invoice(make, client, 20_000)
    make.payment(client, 20_000, allocations={paid.id: 20_000})
    assert session.get(Invoice, paid.id).status == PAID
    charge_on(session, clock, date(2026, 3, 10))
    assert fees(session) == []


def test_the_basis_is_the_late_invoices_own_balance_never_earlier_fees(session, make, clock, client):
    invoice = late_invoice(make, client, 100_000)
    charge_on(session, clock, date(2026, 3, 7))
    make.payment(client, 40_000, allocations={invoice.id: 40_000})  # part paid; period 1's fee still unpaid
    charge_on(session, clock, date(2026, 4, 7))
    first, second = fees(session)
    assert (first.basis_cents, first.amount_cents) == (100_000, 1_500)
    assert (second.basis_cents, second.amount_cents) == (60_000, 900)  # not 61,500: the unpaid fee is not a basis
    # a late fee invoice is never itself charged a late fee
    charge_on(session, clock, date(2026, 6, 30))
    assert {f.late_invoice_id for f in fees(session)} == {invoice.id}


# --- waivers ----------------------------------------------------------------------------------------------------

@pytest.fixture
def fee(session, make, clock, client):
    late_invoice(make, client)
    charge_on(session, clock, date(2026, 3, 7))
    return fees(session)[0]


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_waiver_needs_a_reason_and_changes_nothing_without_one(session, admin, fee, reason):
    with pytest.raises(DomainError, match="Say why the late fee is waived"):
        late_fees.waive_fee(session, fee.id, staff=admin, reason=reason)
    session.rollback()
    [again] = fees(session)
    assert (again.waived_at, again.waiver_reason) == (None, "")
    assert session.get(Invoice, fee.fee_invoice_id).status == OPEN


def test_a_waiver_is_recorded_voids_the_fee_invoice_and_the_period_is_not_charged_again(session, admin, clock, fee):
    late_fees.waive_fee(session, fee.id, staff=admin, reason="First time late; goodwill")
    [waived] = fees(session)
    assert waived.waived_at is not None and waived.waived_by_id == admin.id
    assert waived.waiver_reason == "First time late; goodwill"
    fee_invoice = session.get(Invoice, fee.fee_invoice_id)
    assert (fee_invoice.status, fee_invoice.void_reason) == (VOID, "Late fee waived: First time late; goodwill")
    assert ledger.balance_of(session, fee_invoice) == 0

    charge_on(session, clock, date(2026, 3, 20))  # same period: stays waived
    assert len(fees(session)) == 1
    with pytest.raises(DomainError, match="already waived"):
        late_fees.waive_fee(session, fee.id, staff=admin, reason="again")
    session.rollback()
    charge_on(session, clock, date(2026, 4, 7))  # the next period is charged as usual
    assert [(f.period, f.waived_at is None) for f in fees(session)] == [(1, False), (2, True)]


def test_waiving_a_paid_fee_moves_the_money_to_the_clients_credit(session, make, admin, fee, client):
    make.payment(client, 1_500, allocations={fee.fee_invoice_id: 1_500})
    assert session.get(Invoice, fee.fee_invoice_id).status == PAID
    result = late_fees.waive_fee(session, fee.id, staff=admin, reason="Paid by mistake, refund as credit")
    assert result.credited_cents == 1_500
    session.expire_all()
    assert session.get(Invoice, fee.fee_invoice_id).status == VOID
    assert ledger.credit_cents(session, client.id) == 1_500
    assert session.scalar(select(func.sum(Allocation.amount_cents))
                          .where(Allocation.invoice_id == fee.fee_invoice_id)) == 0


# --- concurrency -------------------------------------------------------------------------------------------------

PORTAL = Path(sys.executable).parent / "portal"


def _env(app_config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.update({"PORTAL_ENV": "test", "PORTAL_DATABASE_URL": app_config["DATABASE_URL"],
                "PORTAL_INSTANCE_PATH": app_config["INSTANCE_PATH"], "PORTAL_SECRET_KEY": app_config["SECRET_KEY"],
                "PORTAL_BASE_URL": "http://localhost"})
    return env


def test_three_run_due_processes_at_once_charge_each_period_once(app, app_config, session, make, terms_v1):
    # the processes read the real clock: dates are relative to the real today
    real_today = datetime.now(UTC).date()
    signed_on, issued, due = (real_today - timedelta(days=120), real_today - timedelta(days=70),
                              real_today - timedelta(days=40))
    invoices = []
    for n in range(12):
        client = make.client(f"Clinic {n} LLC")
        sign_terms(session, client, terms_v1, on=signed_on)
        for k in range(3):
            invoices.append(late_invoice(make, client, 10_000 + 100 * k, issue_date=issued, due_date=due))
    session.commit()
    env = _env(app_config)

    processes, files = [], []
    for _ in range(3):
        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed below)
        files.append((out, err))
        processes.append(subprocess.Popen([str(PORTAL), "run-due"], env=env, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, text=True))
    for p, (out, err) in zip(processes, files, strict=True):
        p.wait(timeout=300)
        err.seek(0)
        text = err.read()
        out.close()
        err.close()
        assert "Traceback" not in text, text[-3000:]

    session.rollback()
    rows = session.execute(select(LateFee.late_invoice_id, LateFee.period, LateFee.fee_invoice_id)).all()
    assert sorted(r.late_invoice_id for r in rows) == sorted(i.id for i in invoices)  # one each, none twice
    assert {r.period for r in rows} == {2}  # due 40 days ago, 5 grace days: the second month
    fee_invoices = session.scalars(select(Invoice).where(Invoice.source == FEE_SOURCE)).all()
    assert len(fee_invoices) == len(invoices)
    assert {f.id for f in fee_invoices} == {r.fee_invoice_id for r in rows}


def test_the_demo_helpers_charge_then_waive_the_smallest_fee(session, make, clock, client, admin):
    from portal.services import demo_fees

    late_invoice(make, client, 100_000)
    late_invoice(make, client, 20_000)
    clock.set(date(2026, 3, 10))
    assert demo_fees.seed_fees(session, today()) == 2
    waived = demo_fees.waive_one(session, admin)
    assert waived.amount_cents == 300 and waived.waiver_reason == demo_fees.WAIVER_REASON
    assert [f.waived_at is None for f in fees(session)] == [True, False]


def test_a_backlog_larger_than_a_statement_can_bind_is_checked(session, make, clock, client):
    """The fees already charged are looked up for every late invoice at once, the ids one parameter
    (keysets.among): PostgreSQL binds at most 65,535 a statement, and an ``IN`` list of a large MSP's backlog
    stopped the whole run. (Within grace here, so nothing is charged: the lookup is what is tested.)"""
    make.backlog(client, 66_000, issue_date=ISSUED, due_date=DUE)

    run = charge_on(session, clock, DUE + timedelta(days=1))

    assert (run.charged, run.skipped, fees(session)) == ([], [], [])
