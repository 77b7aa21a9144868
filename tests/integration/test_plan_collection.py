"""Collecting a signed plan: installments charged by `run-due` on their dates (the real ``stripe`` SDK against the fake
Stripe server, and the sandbox), decline-aware retries, the fallback after a hard decline, reminders for clients with
no saved method, default after the grace days, pay ahead, early payoff (interest only to the day), checks recorded
by the admin, plan invoices left alone by autopay's full-invoice charging, and interest invoices that sum exactly.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain import autopay as A
from portal.domain.errors import DomainError
from portal.domain.plans import InstallmentStatus, PlanStatus
from portal.models import (
    AutopayCharge,
    ChargeAttempt,
    InstallmentCharge,
    Invoice,
    LedgerAdjustment,
    Payment,
    PaymentPlan,
    PlanEvent,
    PlanInvoice,
    SavedPaymentMethod,
)
from portal.services import payments
from portal.services.plans import collection, lifecycle
from portal.services.plans.progress import INTEREST, current_plan_invoice_ids, on_current_plan, progress_of
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count, invoice_state, read_outbox, runtime_for
from tests.plans_fixtures import make_plan
from tests.run_due_fixtures import CARD, charge_rows_read_back, enroll_rows, run

FIRST_DUE = date(2026, 3, 23)  # a week after the clock's day (2026-03-16)


def subjects(outbox) -> list[str]:
    return [m["Subject"] for m in read_outbox(outbox)]


def body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def fresh(session, plan) -> PaymentPlan:
    session.expire_all()
    return session.get(PaymentPlan, plan.id)


def charges(session, plan) -> list[tuple[int, int, str, str, str | None]]:
    """(installment number, charge number, method, attempt status, decline class) of the plan's charges."""
    session.expire_all()
    return [(c.installment.number, c.charge_number, c.method_id, a.status, c.decline_class) for c, a in session.execute(
        select(InstallmentCharge, ChargeAttempt).join(ChargeAttempt, ChargeAttempt.id == InstallmentCharge.attempt_id)
        .where(InstallmentCharge.plan_id == plan.id).order_by(InstallmentCharge.id))]


def interest_invoices(session, plan) -> list[tuple[int | None, int, str]]:
    session.expire_all()
    return [(link.installment_number, inv.total_cents, inv.status) for link, inv in session.execute(
        select(PlanInvoice, Invoice).join(Invoice, Invoice.id == PlanInvoice.invoice_id)
        .where(PlanInvoice.plan_id == plan.id, PlanInvoice.role == INTEREST).order_by(PlanInvoice.id))]


def rows(plan):
    return {i.number: i for i in plan.installments}


@pytest.fixture
def gateway(request):
    """Each charging test runs twice: the real stripe SDK against the fake Stripe server, and the sandbox."""
    return request.getfixturevalue(request.param)


both_gateways = pytest.mark.parametrize("gateway", ["stripe_gateway", "sandbox_gateway"], indirect=True)


@both_gateways
def test_an_installment_is_charged_by_run_due_on_its_date_once(app, session, shop, gateway, clock, outbox):
    rt = runtime_for(gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12))
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])  # autopay on too: it must leave them alone
    one = rows(plan)[1]

    before = run(app, session, rt)  # nothing due: the plan's first installment is a week away
    clock.set(FIRST_DUE)
    report = run(app, session, rt)
    again = run(app, session, rt)

    assert (before.charged, report.charged, report.succeeded, again.charged) == (0, 1, 1, 0)
    assert charges(session, plan) == [(1, 1, "pm_card_visa", "succeeded", None)]
    [attempt] = session.scalars(select(ChargeAttempt)).all()
    assert (attempt.origin, attempt.charged_cents) == ("autopay", one.amount_cents)
    assert interest_invoices(session, plan) == [(1, one.interest_cents, "paid")]
    assert invoice_state(session, shop.first) == ("paid", 0)  # principal goes to the oldest covered invoice first
    assert invoice_state(session, shop.second) == ("open", 35_000 - one.principal_cents)
    assert session.scalar(select(func.count()).select_from(AutopayCharge)) == 0  # never charged in full by autopay
    found = progress_of(session, fresh(session, plan), FIRST_DUE)
    assert found.paid_cents == one.amount_cents
    assert found.progress.rows[0].status is InstallmentStatus.PAID
    assert any("Payment received" in s for s in subjects(outbox))
    charged = select(func.count()).select_from(PlanEvent).where(PlanEvent.kind == "installment_charged")
    assert session.scalar(charged) == 1


def test_booking_an_installment_charge_reads_nothing_back_that_its_claim_wrote(app, session, shop, sandbox_gateway,
                                                                               clock):
    """As with autopay's charges (test_run_due.py): the installment's claim holds its attempt, request and items
    until the answer is booked, whenever Python's cycle collector runs."""
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    clock.set(FIRST_DUE)

    with charge_rows_read_back() as read_back:
        report = run(app, session, rt)

    assert (report.charged, report.succeeded) == (1, 1)
    assert charges(session, plan) == [(1, 1, "pm_card_visa", "succeeded", None)]
    assert read_back == []


def test_plan_invoices_are_skipped_by_autopay_full_invoice_charging(app, session, make, sandbox_gateway):
    rt = runtime_for(sandbox_gateway)
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test")
    on_plan = make.invoice(client, 30_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    other = make.invoice(client, 5_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    make_plan(session, client, [on_plan], first_due_on=FIRST_DUE)
    enroll_rows(session, rt, client, [("pm_card_visa", CARD)])

    report = run(app, session, rt)

    assert (report.charged, report.succeeded) == (1, 1)  # the other invoice only
    assert invoice_state(session, other) == ("paid", 0)
    assert invoice_state(session, on_plan) == ("open", 30_000)
    assert [c.invoice_id for c in session.scalars(select(AutopayCharge))] == [other.id]
    assert current_plan_invoice_ids(session, client.id) == {on_plan.id}
    assert session.scalars(select(Invoice.id).where(on_current_plan())).all() == [on_plan.id]


def test_a_soft_decline_is_retried_on_the_msps_schedule(app, session, shop, stripe_gateway, clock, outbox):
    rt = runtime_for(stripe_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
    enroll_rows(session, rt, shop.client, [("pm_card_chargeDeclinedInsufficientFunds", CARD)])
    clock.set(FIRST_DUE)

    first = run(app, session, rt)
    same_day = run(app, session, rt)
    clock.set(FIRST_DUE + timedelta(days=2))
    too_soon = run(app, session, rt)
    clock.set(FIRST_DUE + timedelta(days=3))  # the MSP's default schedule retries 3 days later
    retry = run(app, session, rt)

    assert (first.charged, first.failed, same_day.charged, too_soon.charged, retry.charged) == (1, 1, 0, 0, 1)
    method = "pm_card_chargeDeclinedInsufficientFunds"
    assert charges(session, plan) == [(1, 1, method, "failed", "soft"), (1, 2, method, "failed", "soft")]
    declined = [m for m in read_outbox(outbox) if "did not go through" in m["Subject"]]
    assert len(declined) == 2 and "try the same method again" in body(declined[0])
    assert fresh(session, plan).status == PlanStatus.CURRENT  # still within the grace days


def test_a_hard_decline_stops_and_tells_the_client(app, session, shop, stripe_gateway, clock, outbox):
    rt = runtime_for(stripe_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
    enroll_rows(session, rt, shop.client, [("pm_card_chargeDeclinedLostCard", CARD)])
    clock.set(FIRST_DUE)

    report = run(app, session, rt)
    clock.set(FIRST_DUE + timedelta(days=3))
    later = run(app, session, rt)

    assert (report.charged, report.failed, later.charged) == (1, 1, 0)
    assert charges(session, plan) == [(1, 1, "pm_card_chargeDeclinedLostCard", "failed", "hard")]
    lost = session.scalar(select(SavedPaymentMethod))
    assert lost.status == A.SavedMethodStatus.BLOCKED
    [declined] = [m for m in read_outbox(outbox) if "did not go through" in m["Subject"]]
    assert "will not try this method again" in body(declined)


def test_a_hard_decline_moves_to_the_fallback_in_the_same_run(app, session, shop, stripe_gateway, clock):
    rt = runtime_for(stripe_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
    enroll_rows(session, rt, shop.client, [("pm_card_chargeDeclinedLostCard", CARD), ("pm_card_mastercard", CARD)])
    clock.set(FIRST_DUE)

    report = run(app, session, rt)

    assert (report.charged, report.failed, report.succeeded) == (2, 1, 1)
    assert charges(session, plan) == [(1, 1, "pm_card_chargeDeclinedLostCard", "failed", "hard"),
                                      (1, 2, "pm_card_mastercard", "succeeded", None)]
    assert progress_of(session, fresh(session, plan), FIRST_DUE).progress.rows[0].status is InstallmentStatus.PAID


def test_a_missed_installment_defaults_the_plan_only_after_the_grace_days(app, session, shop, sandbox_gateway, clock,
                                                                       outbox, make):
    rt = runtime_for(sandbox_gateway)
    make.staff(email="billing@msp.test")
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, grace_days=5)
    clock.set(FIRST_DUE + timedelta(days=5))  # late, within grace

    run(app, session, rt)
    within = fresh(session, plan).status
    clock.set(FIRST_DUE + timedelta(days=6))
    run(app, session, rt)
    run(app, session, rt)

    plan = fresh(session, plan)
    assert (within, plan.status) == (PlanStatus.CURRENT, PlanStatus.DEFAULTED)
    assert plan.defaulted_at is not None and plan.default_notice_sent_at is not None
    assert session.scalars(select(PlanInvoice.current_key)).all() == [None, None]  # normal collection resumes
    assert current_plan_invoice_ids(session, shop.client.id) == set()
    notices = [m for m in read_outbox(outbox) if "defaulted" in m["Subject"] or "has ended" in m["Subject"]]
    assert sorted(m["To"] for m in notices) == ["billing@msp.test", "pat@acme-dental.test"]  # each told once
    assert session.scalar(select(func.count()).select_from(PlanEvent).where(PlanEvent.kind == "defaulted")) == 1


def test_a_plan_is_not_defaulted_while_its_saved_method_is_still_to_be_charged(app, session, shop, stripe_gateway,
                                                                              clock):
    """Several run-due nodes: one may reach "plan defaults" while another is charging this plan's rows, long past
    grace (cron was down). A row the saved method can still pay is charged first; only a charge that cannot be made
    or failed lets the plan default (CI caught one node defaulting a plan between another's charges)."""
    rt = runtime_for(stripe_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, grace_days=5)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    clock.set(FIRST_DUE + timedelta(days=70))  # all three monthly rows due, the first two past their grace

    assert lifecycle.default_if_missed(session, rt, plan.id, clock.today()) is False  # the charge comes first
    assert fresh(session, plan).status == PlanStatus.CURRENT
    run(app, session, rt)
    assert fresh(session, plan).status == PlanStatus.COMPLETED
    assert [c[:4] for c in charges(session, plan)] == [(n, 1, "pm_card_visa", "succeeded")
                                                        for n in sorted(rows(plan)) if n]


def test_a_plan_whose_saved_method_was_declined_defaults_after_the_grace_days(app, session, shop, stripe_gateway,
                                                                              clock):
    rt = runtime_for(stripe_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, grace_days=5)
    enroll_rows(session, rt, shop.client, [("pm_card_chargeDeclinedLostCard", CARD)])
    clock.set(FIRST_DUE)
    run(app, session, rt)  # a hard decline: the method is blocked, nothing left to charge
    clock.set(FIRST_DUE + timedelta(days=6))

    assert lifecycle.default_if_missed(session, rt, plan.id, clock.today()) is True
    assert fresh(session, plan).status == PlanStatus.DEFAULTED


def test_a_few_cents_left_on_an_installment_go_with_the_next_charge_and_never_default_the_plan(
        app, session, shop, sandbox_gateway, clock, make):
    """A check a little short of installment 1 leaves less on it than the card processor's smallest charge: it
    cannot be charged alone, so it is not "missed" while the next installment can carry it, and run-due charges it
    with installment 2 in one charge."""
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, grace_days=5)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    one, two = rows(plan)[1], rows(plan)[2]
    collection.record_check(session, plan, amount_cents=one.amount_cents - 30, method="check",
                            received_on=date(2026, 3, 16), staff=make.staff())

    # "Pay next installment" asks for what a card can take: the 30 cents with installment 2
    assert collection.next_installment_cents(session, fresh(session, plan)) == 30 + two.amount_cents

    clock.set(FIRST_DUE + timedelta(days=20))  # installment 1's 30 cents are past their grace; 2 is not due yet
    run(app, session, rt)
    assert fresh(session, plan).status == PlanStatus.CURRENT
    assert charges(session, plan) == []

    clock.set(two.due_on)
    run(app, session, rt)
    plan = fresh(session, plan)
    assert plan.status == PlanStatus.CURRENT
    assert charges(session, plan) == [(1, 1, "pm_card_visa", "succeeded", None)]
    [attempt] = session.scalars(select(ChargeAttempt)).all()
    assert attempt.charged_cents == 30 + two.amount_cents
    found = progress_of(session, plan, two.due_on)
    assert [r.status for r in found.progress.rows[:2]] == [InstallmentStatus.PAID, InstallmentStatus.PAID]


def test_a_few_cents_left_on_the_last_installment_wait_for_a_write_off_that_completes_the_plan(
        app, session, shop, sandbox_gateway, clock, make):
    """Nothing can carry what a last check leaves short, and a card cannot take it: the plan stays current past the
    grace days (no default over 30 cents) and the admin writes it off, as a ledger adjustment on the invoice."""
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, grace_days=5)
    staff = make.staff()
    total = sum(row.amount_cents for row in plan.installments)
    last = rows(plan)[3]

    def check(cents):
        collection.record_check(session, fresh(session, plan), amount_cents=cents, method="check",
                                received_on=clock.today(), staff=staff)

    check(total - 80)
    found = progress_of(session, fresh(session, plan), clock.today())
    assert collection.small_remainder_cents(found) == 0  # 80 cents: a card can take it
    with pytest.raises(DomainError, match=r"Only a remainder below \$0.50"):
        collection.write_off_remainder(session, fresh(session, plan), staff=staff)
    check(50)
    assert count(session, LedgerAdjustment) == 0

    clock.set(last.due_on + timedelta(days=20))
    run(app, session, rt)
    plan = fresh(session, plan)
    assert plan.status == PlanStatus.CURRENT and charges(session, plan) == []
    found = progress_of(session, plan, clock.today())
    assert found.progress.rows[-1].status is InstallmentStatus.LATE and found.open_cents == 30
    assert collection.small_remainder_cents(found) == 30

    assert collection.write_off_remainder(session, plan, staff=staff) == 30
    [adjustment] = session.scalars(select(LedgerAdjustment)).all()
    assert (adjustment.kind, adjustment.amount_cents, adjustment.invoice_id) == ("write_off", 30, shop.second.id)
    assert invoice_state(session, shop.second) == ("paid", 0)
    assert session.get(Invoice, shop.second.id).total_cents == 25_000  # never an edit of a total
    assert lifecycle.complete_if_done(session, rt, plan.id, clock.today())
    assert fresh(session, plan).status == PlanStatus.COMPLETED
    assert [e.kind for e in session.scalars(select(PlanEvent).where(PlanEvent.plan_id == plan.id)
                                            .order_by(PlanEvent.id))][-2:] == ["written_off", "completed"]
    with pytest.raises(DomainError, match="no longer current"):  # a second click: nothing more written off
        collection.write_off_remainder(session, fresh(session, plan), staff=staff)
    assert count(session, LedgerAdjustment) == 1


def test_a_client_with_no_saved_method_is_reminded_once_before_the_installment(app, session, shop, sandbox_gateway,
                                                                              clock, outbox):
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
    clock.set(FIRST_DUE - timedelta(days=4))
    early = run(app, session, rt)
    clock.set(FIRST_DUE - timedelta(days=3))  # the default reminder_days

    run(app, session, rt)
    run(app, session, rt)

    assert early.charged == 0
    reminders = [m for m in read_outbox(outbox) if m["Subject"].startswith(f"Payment plan {plan.reference}:")]
    assert len(reminders) == 1
    assert f"/plans/{plan.id}" in body(reminders[0])
    assert session.scalar(select(PlanEvent.kind).where(PlanEvent.once_key == f"remind:{rows(plan)[1].id}")) == \
        "reminder_sent"


def test_pay_ahead_fills_the_rows_in_order_interest_first(app, session, shop, sandbox_gateway):
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12))
    one, two = rows(plan)[1], rows(plan)[2]
    amount = one.amount_cents + two.amount_cents // 2

    request = collection.payment_for_plan(session, rt, plan, amount, date(2026, 3, 16), contact=shop.contact)
    attempt = payments.pay(session, rt, request, token="pm_card_visa", attempt_number=1)

    assert attempt.status == "succeeded"
    assert interest_invoices(session, plan) == [(1, one.interest_cents, "paid"), (2, two.interest_cents, "paid")]
    found = progress_of(session, fresh(session, plan), date(2026, 3, 16))
    assert found.paid_cents == amount
    assert [r.status for r in found.progress.rows] == [InstallmentStatus.PAID, InstallmentStatus.PARTLY_PAID,
                                                       InstallmentStatus.UPCOMING]
    assert collection.next_installment_cents(session, fresh(session, plan)) == two.amount_cents - two.amount_cents // 2


def test_more_than_the_plan_owes_is_refused_and_nothing_is_written(app, session, shop, sandbox_gateway):
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12))
    total = sum(i.amount_cents for i in plan.installments)

    with pytest.raises(DomainError, match="more than the plan still owes"):
        collection.payment_for_plan(session, rt, plan, total + 1, date(2026, 3, 16))
    with pytest.raises(DomainError, match="above zero"):
        collection.payment_for_plan(session, rt, plan, 0, date(2026, 3, 16))

    assert count(session, Invoice) == 2  # no interest invoice raised
    assert session.scalar(select(func.count()).select_from(PlanInvoice)) == 2


def test_early_payoff_charges_interest_only_to_the_day_and_completes_the_plan(app, session, shop, sandbox_gateway,
                                                                              clock, outbox):
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12),
                     installments=4, frequency="weekly")
    first = collection.payment_for_plan(session, rt, plan, rows(plan)[1].amount_cents, date(2026, 3, 16))
    payments.pay(session, rt, first, token="pm_card_visa", attempt_number=1)
    payoff_day = date(2026, 3, 26)
    clock.set(payoff_day)
    quote = collection.payoff_quote(session, fresh(session, plan), payoff_day)

    request = collection.payoff_request(session, rt, fresh(session, plan), payoff_day)
    attempt = payments.pay(session, rt, request, token="pm_card_visa", attempt_number=1)
    completed = lifecycle.complete_done(session, rt, payoff_day)

    plan = fresh(session, plan)
    assert attempt.status == "succeeded" and completed.completed == 1
    assert plan.status == PlanStatus.COMPLETED and plan.completed_at is not None
    assert invoice_state(session, shop.first) == ("paid", 0) and invoice_state(session, shop.second) == ("paid", 0)
    interest = interest_invoices(session, plan)
    assert interest == [(1, rows(plan)[1].interest_cents, "paid"), (None, quote.interest_cents, "paid")]
    assert 0 < quote.interest_cents < plan.total_interest_cents - rows(plan)[1].interest_cents
    assert request.amount_cents == quote.total_cents
    assert session.scalars(select(PlanInvoice.current_key)).all() == [None, None, None, None]
    assert any("paid in full" in s for s in subjects(outbox))


def test_a_check_recorded_by_the_admin_counts_toward_the_plan(app, session, shop, make):
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12))
    staff = make.staff()
    one = rows(plan)[1]

    payment = collection.record_check(session, plan, amount_cents=one.amount_cents, method="check",
                                      received_on=date(2026, 3, 16), reference="CHK 1001", staff=staff)

    assert payment.amount_cents == one.amount_cents
    found = progress_of(session, fresh(session, plan), date(2026, 3, 16))
    assert found.paid_cents == one.amount_cents
    assert found.progress.rows[0].status is InstallmentStatus.PAID
    assert interest_invoices(session, plan) == [(1, one.interest_cents, "paid")]
    assert invoice_state(session, shop.first) == ("paid", 0)
    [event] = session.scalars(select(PlanEvent).where(PlanEvent.kind == "payment_recorded")).all()
    assert "CHK 1001" in event.detail

    with pytest.raises(DomainError, match="more than the plan still owes"):
        collection.record_check(session, fresh(session, plan), amount_cents=10_000_000, method="check",
                                received_on=date(2026, 3, 16))
    assert count(session, Payment) == 1


def test_interest_invoices_sum_exactly_to_the_scheduled_interest(app, session, shop, make, clock):
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal("17.99"),
                     installments=5, frequency="biweekly", down_payment_cents=5_000)
    scheduled = plan.total_interest_cents
    for row in plan.installments:  # paid a little at a time, never on a row boundary
        collection.record_check(session, fresh(session, plan), amount_cents=row.amount_cents // 2, method="check",
                                received_on=date(2026, 3, 16))
    left = collection.remaining_cents(session, fresh(session, plan))
    collection.record_check(session, fresh(session, plan), amount_cents=left, method="wire",
                            received_on=date(2026, 3, 16))
    lifecycle.complete_done(session, app.extensions["runtime"], date(2026, 3, 16))

    plan = fresh(session, plan)
    assert sum(total for _, total, _ in interest_invoices(session, plan)) == scheduled > 0
    assert all(status == "paid" for _, _, status in interest_invoices(session, plan))
    assert invoice_state(session, shop.first) == ("paid", 0) and invoice_state(session, shop.second) == ("paid", 0)
    assert plan.status == PlanStatus.COMPLETED


class TestReminderOverSmtp:
    @pytest.fixture
    def app_config(self, app_config, smtp_server):
        app_config["SMTP_URL"] = smtp_server.url
        return app_config

    def test_a_refused_reminder_is_not_marked_sent_and_goes_on_the_next_run(self, app, session, shop,
                                                                            sandbox_gateway, clock, smtp_server):
        rt = runtime_for(sandbox_gateway)
        plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
        key = f"remind:{rows(plan)[1].id}"
        clock.set(FIRST_DUE - timedelta(days=3))
        smtp_server.reply_next("550 5.7.1 Relaying denied")

        run(app, session, rt)
        refused = session.scalar(select(PlanEvent).where(PlanEvent.once_key == key))
        run(app, session, rt)
        run(app, session, rt)

        assert refused is None  # the claim was given back
        subject = f"Payment plan {plan.reference}"
        reminders = [m for m in smtp_server.messages if m.message["Subject"].startswith(subject)]
        assert len(reminders) == 1 and reminders[0].rcpt_tos == ["pat@acme-dental.test"]
        assert session.scalar(select(PlanEvent.kind).where(PlanEvent.once_key == key)) == "reminder_sent"


def test_a_plan_accepted_through_the_portal_is_collected_by_run_due(app, session, shop, make, stripe_gateway,
                                                                   fake_stripe, clock):
    """The whole path with the acceptance service (H2's), not rows: offer, sign, pay the down payment at the
    checkout, then `run-due` charges the first installment on its date on the saved card."""
    from tests.integration.test_plan_offers import APRIL_1, offer_to, sign

    rt = runtime_for(stripe_gateway)
    staff = make.staff()
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    offer = offer_to(session, rt, shop, staff, down_payment_cents=5_000)
    done = sign(session, rt, shop.contact, offer)
    plan = done.plan

    same_day = run(app, session, rt)  # the down payment is the client's to pay at the checkout today
    payments.pay(session, rt, done.down_payment, token=fake_stripe.confirmation_token("pm_card_visa"),
                 attempt_number=1)
    clock.set(APRIL_1)
    report = run(app, session, rt)

    assert (same_day.charged, report.charged, report.succeeded) == (0, 1, 1)
    assert charges(session, plan) == [(1, 1, "pm_card_visa", "succeeded", None)]
    found = progress_of(session, fresh(session, plan), APRIL_1)
    assert [r.status for r in found.progress.rows] == [InstallmentStatus.PAID, InstallmentStatus.PAID,
                                                       InstallmentStatus.UPCOMING, InstallmentStatus.UPCOMING]
    assert found.paid_cents == 5_000 + rows(fresh(session, plan))[1].amount_cents


def test_a_payoff_with_an_installment_started_keeps_its_billed_interest_and_a_second_payoff_adds_none(
        app, session, shop, sandbox_gateway, clock):
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(18))
    one = rows(plan)[1]
    started = collection.payment_for_plan(session, rt, plan, 100, date(2026, 3, 16))  # reaches row 1's interest
    payments.pay(session, rt, started, token="pm_card_visa", attempt_number=1)
    day = date(2026, 3, 18)
    clock.set(day)
    quote = collection.payoff_quote(session, fresh(session, plan), day)

    abandoned = collection.payoff_request(session, rt, fresh(session, plan), day)
    request = collection.payoff_request(session, rt, fresh(session, plan), day)  # the first was never paid
    payments.pay(session, rt, request, token="pm_card_visa", attempt_number=1)
    lifecycle.complete_done(session, rt, day)

    assert quote.interest_cents == one.interest_cents - 100  # billed in full when row 1 was reached, 100 paid
    assert abandoned.amount_cents == request.amount_cents == quote.total_cents == 35_000 - 100 + one.interest_cents
    assert [n for n, _, _ in interest_invoices(session, plan)] == [1]  # no payoff interest beyond it
    assert fresh(session, plan).status == PlanStatus.COMPLETED


def test_a_bank_payment_still_clearing_is_pending_not_paid_and_never_charged_again(app, session, shop,
                                                                                   sandbox_gateway, clock):
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
    one = rows(plan)[1]
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    clock.set(FIRST_DUE)  # paid by bank on the due date: the debit settles a minute (of the sandbox's clock) later
    request = collection.payment_for_plan(session, rt, plan, one.amount_cents, FIRST_DUE)
    attempt = payments.pay(session, rt, request, token="pm_usBankAccount_success", attempt_number=1)

    found = progress_of(session, fresh(session, plan), FIRST_DUE)
    charged = run(app, session, rt).charged

    assert attempt.status == "processing"
    assert (found.paid_cents, found.pending_cents) == (0, one.amount_cents)
    assert found.progress.rows[0].status is InstallmentStatus.DUE
    assert charged == 0  # the installment's money is on its way: no card charge beside it
    with pytest.raises(DomainError, match="still on its way"):
        collection.payoff_request(session, rt, fresh(session, plan), FIRST_DUE)
    assert collection.next_installment_cents(session, fresh(session, plan)) == rows(plan)[2].amount_cents


def test_overdue_reminders_leave_a_current_plans_invoices_alone_until_it_defaults(app, session, make,
                                                                                 sandbox_gateway, clock):
    from portal.models import ReminderSend
    from portal.services.collections import reminders

    rt = runtime_for(sandbox_gateway)
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test")
    on_plan = make.invoice(client, 30_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    off_plan = make.invoice(client, 5_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    plan = make_plan(session, client, [on_plan], first_due_on=FIRST_DUE, grace_days=5)

    reminders.send_due(session, rt, date(2026, 3, 16))
    while_current = set(session.scalars(select(ReminderSend.invoice_id)))
    clock.set(FIRST_DUE + timedelta(days=6))
    lifecycle.default_missed(session, rt, FIRST_DUE + timedelta(days=6))
    reminders.send_due(session, rt, FIRST_DUE + timedelta(days=6))
    after_default = set(session.scalars(select(ReminderSend.invoice_id)))

    assert while_current == {off_plan.id}  # reminders run, but not for the plan's invoice
    assert fresh(session, plan).status == PlanStatus.DEFAULTED
    assert on_plan.id in after_default  # the normal collection rules resumed


def test_an_installment_bank_debit_returned_days_later_is_handled_once(app, session, shop, stripe_gateway,
                                                                       fake_stripe, clock, outbox):
    from tests.run_due_fixtures import enroll_through_portal

    rt = runtime_for(stripe_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE)
    enroll_through_portal(session, rt, shop.contact, fake_stripe.confirmation_token("pm_usBankAccount_accountClosed"))
    clock.set(FIRST_DUE)

    sent = run(app, session, rt)
    found = progress_of(session, fresh(session, plan), FIRST_DUE)
    [intent_id] = list(fake_stripe.ledger.payment_intents)
    fake_stripe.settle(intent_id)  # the bank returns it: account closed
    clock.advance(days=3)
    returned = run(app, session, rt)
    again = run(app, session, rt)

    assert (sent.charged, sent.pending) == (1, 1)
    assert (found.paid_cents, found.pending_cents) == (0, rows(plan)[1].amount_cents)
    [(number, charge, _method, status, kind)] = charges(session, plan)
    assert (number, charge, status, kind) == (1, 1, "failed", "hard")
    assert session.scalar(select(SavedPaymentMethod.status)) == A.SavedMethodStatus.BLOCKED
    assert returned.charged == again.charged == 0
    assert len([m for m in read_outbox(outbox) if "did not go through" in m["Subject"]]) == 1
    assert fake_stripe.payment_intent_count == 1


def test_an_abandoned_payoff_is_not_billed_once_the_schedule_is_paid_in_full(app, session, shop, sandbox_gateway,
                                                                             clock):
    rt = runtime_for(sandbox_gateway)
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12))
    day = date(2026, 3, 20)
    clock.set(day)
    collection.payoff_request(session, rt, fresh(session, plan), day)  # "Pay off now", then the checkout is left
    [(number, payoff_interest, status)] = interest_invoices(session, plan)
    assert (number, status) == (None, "open") and payoff_interest > 0
    for n in (1, 2, 3):  # the client goes on paying the schedule as signed, interest included
        due_on = rows(fresh(session, plan))[n].due_on
        clock.set(due_on)
        cents = collection.next_installment_cents(session, fresh(session, plan))
        request = collection.payment_for_plan(session, rt, fresh(session, plan), cents, due_on)
        assert payments.pay(session, rt, request, token="pm_card_visa", attempt_number=1).status == "succeeded"

    completed = lifecycle.complete_done(session, rt, clock.today())

    plan = fresh(session, plan)
    assert completed.completed == 1 and plan.status == PlanStatus.COMPLETED
    paid_interest = sum(cents for n, cents, status in interest_invoices(session, plan) if n is not None)
    assert paid_interest == plan.total_interest_cents  # the schedule's interest, all of it, was paid
    # the payoff that never happened bills nothing more: the client owes nothing once the schedule is paid
    assert [status for n, _, status in interest_invoices(session, plan) if n is None] == ["void"]
    owed = session.scalars(select(Invoice).where(Invoice.client_id == shop.client.id, Invoice.status == "open")).all()
    assert owed == []


def test_a_check_dated_in_the_future_is_refused_before_any_interest_invoice_is_raised(app, session, shop):
    plan = make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12))
    invoices, links = count(session, Invoice), count(session, PlanInvoice)

    with pytest.raises(DomainError, match="cannot be received in the future"):
        collection.record_check(session, fresh(session, plan), amount_cents=rows(plan)[1].amount_cents,
                                method="check", received_on=date(2026, 3, 17))  # the clock's tomorrow

    assert (count(session, Invoice), count(session, PlanInvoice)) == (invoices, links)  # nothing was written
    assert interest_invoices(session, plan) == [] and count(session, Payment) == 0
