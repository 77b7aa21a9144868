"""Online payments through Stripe: the services with the real `stripe` SDK talking to the fake Stripe server.

Each test drives the outside world through the fake (settle or fail a bank debit, open a dispute, lose a response)
and asserts both the database (attempt, payment, allocations, invoice status) and what the client is told.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from portal import db
from portal.domain.errors import DomainError
from portal.models import (
    Allocation,
    ChargeAttempt,
    Dispute,
    GatewayCustomer,
    GatewayRefund,
    Payment,
    PaymentRequest,
    Refund,
)
from portal.services import payments
from portal.services.payments import charging
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count, invoice_state, new_request, read_outbox, runtime_for


def pay(session, gateway, request, token, number=1, accepted=None):
    return payments.pay(session, runtime_for(gateway), request, token=token, attempt_number=number,
                        accepted_surcharge_cents=accepted)


def deliver(session, gateway, fake, event_type, intent_id):
    """A signed webhook for the intent as it is now, verified and handled like the endpoint does."""
    payload, header = fake.payment_intent_event(event_type, intent_id)
    return payments.handle_event(session, runtime_for(gateway), gateway.parse_webhook(payload, header), payload)


def outage_at_charge(monkeypatch, gateway, fake, status, *, after_processing=False):
    """The network fails exactly at the charge request (the confirmation-token preview before it goes through)."""
    real_charge = gateway.charge

    def charge(**kwargs):
        monkeypatch.setattr(gateway, "charge", real_charge)
        fake.fail_next(status, after_processing=after_processing)
        return real_charge(**kwargs)

    monkeypatch.setattr(gateway, "charge", charge)


def payment_of(session, attempt) -> Payment | None:
    session.expire_all()
    fresh = session.get(ChargeAttempt, attempt.id)
    return fresh.payment


def set_surcharge(session, rate="3", blocked=""):
    payments.update_payment_settings(session, surcharge_percent=Decimal(rate), blocked_regions=blocked,
                                            partial_minimum_cents=1_000)


# --- cards ----------------------------------------------------------------------------------------------------


def test_card_success_pays_the_invoice_and_emails_a_receipt(session, shop, stripe_gateway, fake_stripe, outbox):
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))

    assert attempt.status == "succeeded"
    assert attempt.gateway_id.startswith("pi_") and attempt.brand == "visa" and attempt.last4 == "4242"
    intent = fake_stripe.payment_intent(attempt.gateway_id)
    assert intent["amount"] == 10_000 and intent["status"] == "succeeded"
    assert intent["metadata"]["portal_charge_attempt"] == str(attempt.id)
    payment = payment_of(session, attempt)
    assert (payment.status, payment.method, payment.amount_cents, payment.reference) == (
        "succeeded", "card", 10_000, attempt.gateway_id)
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert invoice_state(session, shop.second) == ("open", 25_000)
    [receipt] = read_outbox(outbox)
    assert receipt["To"] == "pat@acme-dental.test"
    assert "Payment received" in receipt["Subject"]
    text = receipt.get_body(("plain",)).get_content()
    assert f"Invoice {shop.first.number}: $100.00" in text and attempt.gateway_id in text


def test_the_stripe_customer_is_created_once_and_reused(session, shop, stripe_gateway, fake_stripe):
    pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))
    second = pay(session, stripe_gateway, new_request(session, shop, {shop.second.id: 25_000}),
                 fake_stripe.confirmation_token("pm_card_visa"))

    assert second.status == "succeeded"
    assert count(session, GatewayCustomer) == 1
    assert fake_stripe.count("POST", "/v1/customers") == 1
    customer = session.scalar(select(GatewayCustomer.customer_id))
    assert fake_stripe.payment_intent(second.gateway_id)["customer"] == customer


@pytest.mark.parametrize(("method", "message"), [
    ("pm_card_chargeDeclined", "Your card was declined. Please use a different card or contact your bank."),
    ("pm_card_chargeDeclinedInsufficientFunds", "Your card has insufficient funds."),
])
def test_a_declined_card_changes_nothing_and_can_be_retried(session, shop, stripe_gateway, fake_stripe, outbox,
                                                              method, message):
    request = new_request(session, shop)
    attempt = pay(session, stripe_gateway, request, fake_stripe.confirmation_token(method))

    assert attempt.status == "failed"
    assert attempt.failure_message == message
    assert attempt.gateway_id.startswith("pi_")  # the failed intent is on record for support
    assert attempt.payment_id is None and count(session, Payment) == 0
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert read_outbox(outbox) == []  # the client sees the decline on screen; no email
    # the next try is attempt 2 of the same request
    retry = pay(session, stripe_gateway, request, fake_stripe.confirmation_token("pm_card_visa"), number=2)
    assert retry.status == "succeeded" and retry.attempt_number == 2
    assert invoice_state(session, shop.first) == ("paid", 0)


# --- ACH ------------------------------------------------------------------------------------------------------


def test_ach_stays_processing_until_stripe_says_it_succeeded(session, shop, stripe_gateway, fake_stripe, outbox):
    attempt = pay(session, stripe_gateway, new_request(session, shop),
                  fake_stripe.confirmation_token("pm_usBankAccount_success"))

    assert attempt.status == "processing"
    payment = payment_of(session, attempt)
    assert (payment.status, payment.method) == ("processing", "ach")
    assert count(session, Allocation) == 0
    assert invoice_state(session, shop.first) == ("open", 10_000)  # not paid while the bank decides
    assert read_outbox(outbox) == []

    fake_stripe.settle(attempt.gateway_id)
    assert deliver(session, stripe_gateway, fake_stripe, "payment_intent.succeeded", attempt.gateway_id) == (
        f"charge attempt {attempt.id} is succeeded")

    assert payment_of(session, attempt).status == "succeeded"
    assert invoice_state(session, shop.first) == ("paid", 0)
    [receipt] = read_outbox(outbox)
    assert "bank account ending 6789" in receipt.get_body(("plain",)).get_content()


def test_ach_that_fails_after_processing_leaves_the_invoice_open_and_tells_the_client(
        session, shop, stripe_gateway, fake_stripe, outbox):
    attempt = pay(session, stripe_gateway, new_request(session, shop),
                  fake_stripe.confirmation_token("pm_usBankAccount_insufficientFunds"))
    assert attempt.status == "processing"

    fake_stripe.settle(attempt.gateway_id)  # the bank returns the debit
    deliver(session, stripe_gateway, fake_stripe, "payment_intent.payment_failed", attempt.gateway_id)

    session.expire_all()
    attempt = session.get(ChargeAttempt, attempt.id)
    assert attempt.status == "failed"
    assert attempt.failure_message == "ACH debit failed: the bank account has insufficient funds."
    assert attempt.payment.status == "failed" and count(session, Allocation) == 0
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert attempt.request.status == "open"  # the client may pay again
    [notice] = read_outbox(outbox)
    assert notice["To"] == "pat@acme-dental.test" and "did not go through" in notice["Subject"]
    text = notice.get_body(("plain",)).get_content()
    assert "insufficient funds" in text and f"Invoice {shop.first.number}: $100.00 is still open." in text
    # and the balance is payable again
    assert payments.payable(session, shop.client.id)[0].balance_cents == 10_000


# --- amounts --------------------------------------------------------------------------------------------------


def test_partial_payment(session, shop, stripe_gateway, fake_stripe):
    request = new_request(session, shop, {shop.second.id: 4_000})
    attempt = pay(session, stripe_gateway, request, fake_stripe.confirmation_token("pm_card_visa"))

    assert fake_stripe.payment_intent(attempt.gateway_id)["amount"] == 4_000
    assert invoice_state(session, shop.second) == ("open", 21_000)
    assert invoice_state(session, shop.first) == ("open", 10_000)


def test_a_part_payment_below_the_minimum_or_more_than_owed_is_refused(session, shop):
    with pytest.raises(DomainError, match=r"at least \$10\.00"):
        new_request(session, shop, {shop.second.id: 999})
    with pytest.raises(DomainError, match="more than is owed"):
        new_request(session, shop, {shop.second.id: 25_001})
    assert count(session, ChargeAttempt) == 0


def test_several_invoices_in_one_payment(session, shop, stripe_gateway, fake_stripe):
    request = new_request(session, shop, {shop.first.id: 10_000, shop.second.id: 25_000})
    attempt = pay(session, stripe_gateway, request, fake_stripe.confirmation_token("pm_card_mastercard"))

    assert fake_stripe.payment_intent_count == 1
    assert fake_stripe.payment_intent(attempt.gateway_id)["amount"] == 35_000
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert invoice_state(session, shop.second) == ("paid", 0)
    allocations = session.scalars(select(Allocation).order_by(Allocation.invoice_id)).all()
    assert [(a.invoice_id, a.amount_cents) for a in allocations] == [(shop.first.id, 10_000), (shop.second.id, 25_000)]


def test_money_on_its_way_cannot_be_paid_twice(session, shop, stripe_gateway, fake_stripe):
    stale = new_request(session, shop)  # opened in another tab before the bank payment below
    pay(session, stripe_gateway, new_request(session, shop),
        fake_stripe.confirmation_token("pm_usBankAccount_success"))

    with pytest.raises(DomainError, match="cannot be paid online now"):
        new_request(session, shop)
    with pytest.raises(payments.PaymentUnavailable, match="no longer owes that much"):
        pay(session, stripe_gateway, stale, fake_stripe.confirmation_token("pm_card_visa"))
    assert fake_stripe.payment_intent_count == 1


def test_a_payment_that_arrives_after_the_invoice_was_paid_otherwise_becomes_credit(
        session, shop, stripe_gateway, fake_stripe):
    attempt = pay(session, stripe_gateway, new_request(session, shop),
                  fake_stripe.confirmation_token("pm_usBankAccount_success"))
    payments.record_payment(session, shop.client, amount_cents=10_000, method="check",
                            allocations={shop.first.id: 10_000})

    fake_stripe.settle(attempt.gateway_id)
    deliver(session, stripe_gateway, fake_stripe, "payment_intent.succeeded", attempt.gateway_id)

    assert invoice_state(session, shop.first) == ("paid", 0)
    payment = payment_of(session, attempt)
    assert payment.status == "succeeded" and payment.allocations == []
    from portal.services.ledger import credit_cents
    assert credit_cents(session, shop.client.id) == 10_000


def test_a_second_submission_of_the_same_attempt_never_charges_again(session, shop, stripe_gateway, fake_stripe):
    request = new_request(session, shop)
    token = fake_stripe.confirmation_token("pm_card_visa")
    first = pay(session, stripe_gateway, request, token)
    again = pay(session, stripe_gateway, request, token)
    other_token = pay(session, stripe_gateway, request, fake_stripe.confirmation_token("pm_card_visa"), number=2)

    assert first.id == again.id == other_token.id  # paid already: every later submission shows that payment
    assert fake_stripe.payment_intent_count == 1
    assert count(session, Payment) == 1


# --- surcharges -----------------------------------------------------------------------------------------------


def test_a_credit_card_surcharge_needs_consent_and_is_its_own_line(session, shop, stripe_gateway, fake_stripe,
                                                                    outbox):
    set_surcharge(session, "3")
    request = new_request(session, shop)
    token = fake_stripe.confirmation_token("pm_card_visa")

    with pytest.raises(payments.SurchargeConsentNeeded) as asked:
        pay(session, stripe_gateway, request, token)
    assert (asked.value.quote.surcharge.cents, asked.value.quote.total_cents) == (300, 10_300)
    assert fake_stripe.payment_intent_count == 0 and count(session, ChargeAttempt) == 0

    attempt = pay(session, stripe_gateway, request, token, accepted=300)
    assert fake_stripe.payment_intent(attempt.gateway_id)["amount"] == 10_300
    assert (attempt.amount_cents, attempt.surcharge_cents, attempt.charged_cents) == (10_000, 300, 10_300)
    payment = payment_of(session, attempt)
    assert payment.amount_cents == 10_000  # the ledger holds invoice money only; no surcharge "credit"
    assert invoice_state(session, shop.first) == ("paid", 0)
    text = read_outbox(outbox)[0].get_body(("plain",)).get_content()
    assert "Credit card surcharge (3%): $3.00" in text and "Total paid: $103.00" in text


def test_consent_to_another_surcharge_amount_does_not_count(session, shop, stripe_gateway, fake_stripe):
    set_surcharge(session, "3")
    with pytest.raises(payments.SurchargeConsentNeeded):
        pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"),
            accepted=200)


@pytest.mark.parametrize("method", ["pm_card_visa_debit", "pm_card_mastercard_prepaid", "pm_usBankAccount_success"])
def test_debit_prepaid_and_ach_are_never_surcharged(session, shop, stripe_gateway, fake_stripe, method):
    set_surcharge(session, "3")
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token(method))

    assert attempt.surcharge_cents == 0
    assert fake_stripe.payment_intent(attempt.gateway_id)["amount"] == 10_000


def test_no_surcharge_for_a_client_billed_in_a_blocked_state(session, shop, stripe_gateway, fake_stripe):
    set_surcharge(session, "3", blocked="ct, ma")  # shop's client is billed in CT
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))

    assert attempt.status == "succeeded" and attempt.surcharge_cents == 0
    assert fake_stripe.payment_intent(attempt.gateway_id)["amount"] == 10_000


def test_surcharge_settings_are_capped(session):
    with pytest.raises(DomainError, match="capped at 3%"):
        set_surcharge(session, "3.5")
    assert payments.payment_settings(session).surcharge_percent == 0


# --- refunds --------------------------------------------------------------------------------------------------


def test_refund_in_part_then_in_full_through_stripe(session, shop, stripe_gateway, fake_stripe, make):
    set_surcharge(session, "3", blocked="")
    staff = make.staff()
    token = fake_stripe.confirmation_token("pm_card_visa")
    attempt = pay(session, stripe_gateway, new_request(session, shop), token, accepted=300)

    partial = payments.refund(session, runtime_for(stripe_gateway), attempt, amount_cents=2_500,
                              reason="Duplicate line", staff=staff, form_nonce="form-1")
    assert (partial.status, partial.amount_cents, partial.surcharge_cents) == ("succeeded", 2_500, 75)
    assert fake_stripe.charge(attempt.gateway_id)["amount_refunded"] == 2_575
    assert invoice_state(session, shop.first) == ("open", 2_500)
    ledger_refund = session.get(Refund, partial.refund_id)
    assert ledger_refund.gateway_ref == partial.gateway_refund_id and ledger_refund.amount_cents == 2_500

    rest = payments.refund(session, runtime_for(stripe_gateway), attempt, amount_cents=7_500, reason="Cancelled",
                                 staff=staff, form_nonce="form-2")
    assert rest.surcharge_cents == 225
    assert fake_stripe.charge(attempt.gateway_id)["amount_refunded"] == 10_300  # every cent, surcharge included
    assert invoice_state(session, shop.first) == ("open", 10_000)
    row = payments.attempt_row(session, session.get(ChargeAttempt, attempt.id))
    assert row.state == "refunded"

    with pytest.raises(DomainError, match="more than is left"):
        payments.refund(session, runtime_for(stripe_gateway), attempt, amount_cents=1, reason="x", staff=staff,
                              form_nonce="form-3")


def test_a_resubmitted_refund_form_refunds_once(session, shop, stripe_gateway, fake_stripe):
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))
    first = payments.refund(session, runtime_for(stripe_gateway), attempt, amount_cents=1_000, reason="r", staff=None,
                                  form_nonce="same")
    again = payments.refund(session, runtime_for(stripe_gateway), attempt, amount_cents=1_000, reason="r", staff=None,
                                  form_nonce="same")

    assert first.id == again.id
    assert fake_stripe.count("POST", "/v1/refunds") == 1
    assert count(session, Refund) == 1


def test_a_refund_made_in_the_stripe_dashboard_reaches_the_ledger(session, shop, stripe_gateway, fake_stripe):
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))
    stripe_gateway.refund(idempotency_key="dashboard-1", gateway_id=attempt.gateway_id, amount_cents=4_000)

    payload, header = fake_stripe.charge_refunded_event(attempt.gateway_id)
    outcome = payments.handle_event(session, runtime_for(stripe_gateway),
                                    stripe_gateway.parse_webhook(payload, header), payload)

    assert outcome == "recorded a dashboard refund of 4000 cents"
    assert invoice_state(session, shop.first) == ("open", 4_000)
    [row] = session.scalars(select(GatewayRefund)).all()
    assert (row.source, row.amount_cents) == ("gateway", 4_000)


def test_refunds_of_our_own_are_not_counted_twice_by_the_refund_event(session, shop, stripe_gateway, fake_stripe):
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))
    payments.refund(session, runtime_for(stripe_gateway), attempt, amount_cents=1_000, reason="r", staff=None,
                          form_nonce="n")
    payload, header = fake_stripe.charge_refunded_event(attempt.gateway_id)
    outcome = payments.handle_event(session, runtime_for(stripe_gateway),
                                    stripe_gateway.parse_webhook(payload, header), payload)

    assert outcome.startswith("no change")
    assert count(session, Refund) == 1 and invoice_state(session, shop.first) == ("open", 1_000)


# --- disputes -------------------------------------------------------------------------------------------------


def dispute_event(session, gateway, fake, event_type, dispute):
    payload, header = fake.event(event_type, dispute)
    return payments.handle_event(session, runtime_for(gateway), gateway.parse_webhook(payload, header), payload)


def test_a_lost_dispute_takes_the_money_back_off_the_invoice(session, shop, stripe_gateway, fake_stripe):
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))
    dispute = fake_stripe.create_dispute(attempt.gateway_id)

    assert dispute_event(session, stripe_gateway, fake_stripe, "charge.dispute.created", dispute) == (
        "dispute needs_response")
    row = payments.attempt_row(session, session.get(ChargeAttempt, attempt.id))
    assert row.state == "disputed"
    assert invoice_state(session, shop.first) == ("paid", 0)  # the bank has not decided yet
    with pytest.raises(DomainError, match="disputed"):
        payments.refund(session, runtime_for(stripe_gateway), attempt, amount_cents=100, reason="r", staff=None,
                              form_nonce="n")
    assert [d.dispute_id for d in payments.disputes_for(session, invoice_id=shop.first.id)] == [dispute["id"]]
    assert [d.dispute_id for d in payments.disputes_for(session, client_id=shop.client.id)] == [dispute["id"]]

    closed = fake_stripe.close_dispute(dispute["id"], "lost")
    dispute_event(session, stripe_gateway, fake_stripe, "charge.dispute.closed", closed)

    assert invoice_state(session, shop.first) == ("open", 10_000)
    stored = session.scalar(select(Dispute))
    assert stored.status == "lost" and stored.closed_at is not None
    assert session.get(Refund, stored.reversal_refund_id).reason == "Dispute lost (fraudulent)"
    # a late, out-of-order "created" changes nothing and reverses nothing twice
    dispute_event(session, stripe_gateway, fake_stripe, "charge.dispute.created", dispute)
    assert session.scalar(select(Dispute)).status == "lost" and count(session, Refund) == 1


def test_a_won_dispute_changes_nothing_in_the_books(session, shop, stripe_gateway, fake_stripe):
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))
    dispute = fake_stripe.create_dispute(attempt.gateway_id, reason="product_not_received")
    dispute_event(session, stripe_gateway, fake_stripe, "charge.dispute.created", dispute)
    dispute_event(session, stripe_gateway, fake_stripe, "charge.dispute.closed",
                  fake_stripe.close_dispute(dispute["id"], "won"))

    assert invoice_state(session, shop.first) == ("paid", 0)
    assert count(session, Refund) == 0
    assert payments.attempt_row(session, session.get(ChargeAttempt, attempt.id)).state == "succeeded"


# --- reconciliation -------------------------------------------------------------------------------------------


def test_reconcile_fixes_a_missed_webhook(session, shop, stripe_gateway, fake_stripe, outbox):
    attempt = pay(session, stripe_gateway, new_request(session, shop),
                  fake_stripe.confirmation_token("pm_usBankAccount_success"))
    fake_stripe.settle(attempt.gateway_id)  # Stripe sent payment_intent.succeeded; it never arrived

    report = payments.reconcile(session, runtime_for(stripe_gateway))

    assert (report.checked, report.settled, report.still_open, report.problems) == (1, 1, 0, [])
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert len(read_outbox(outbox)) == 1
    # safe to run again: nothing left to do
    again = payments.reconcile(session, runtime_for(stripe_gateway))
    assert (again.checked, again.changed) == (0, 0)


@pytest.mark.parametrize("finisher", ["reconcile", "status page"])
def test_a_success_recorded_but_not_booked_holds_the_invoice_until_it_is_booked(session, shop, stripe_gateway,
                                                                               fake_stripe, outbox, finisher):
    """The gateway's answer is committed before the booking; if the process dies between the two (or the booking
    fails), the attempt already says the money arrived: nobody can pay the invoice again meanwhile, and
    reconciliation or the client's status page books it and sends the receipt once."""
    from portal.services.payments import results

    attempt = pay(session, stripe_gateway, new_request(session, shop),
                  fake_stripe.confirmation_token("pm_usBankAccount_success"))
    fake_stripe.settle(attempt.gateway_id)
    results.record(session, attempt.id, stripe_gateway.retrieve(attempt.gateway_id))  # step 1 only

    session.expire_all()
    assert session.get(ChargeAttempt, attempt.id).status == "succeeded"
    assert invoice_state(session, shop.first) == ("open", 10_000)
    with pytest.raises(DomainError):
        new_request(session, shop)  # the arrived money still holds the invoice
    session.rollback()

    if finisher == "reconcile":
        payments.reconcile(session, runtime_for(stripe_gateway))
    else:
        payments.refresh_attempt(session, runtime_for(stripe_gateway), session.get(ChargeAttempt, attempt.id))

    assert invoice_state(session, shop.first) == ("paid", 0)
    assert payment_of(session, attempt).status == "succeeded"
    [receipt] = read_outbox(outbox)
    assert receipt["Subject"].startswith("Payment received")
    payments.reconcile(session, runtime_for(stripe_gateway))
    assert len(read_outbox(outbox)) == 1 and invoice_state(session, shop.first) == ("paid", 0)


@pytest.fixture
def payments_refused(session):
    """The database refuses every new payment row (as it would a full disk), until the test calls the result."""
    if session.get_bind().dialect.name == "postgresql":
        ddl = ["CREATE FUNCTION refuse_payment() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ "
               "LANGUAGE plpgsql",
               "CREATE TRIGGER refuse_payment BEFORE INSERT ON payments FOR EACH ROW EXECUTE FUNCTION refuse_payment()"]
        undo = ["DROP TRIGGER refuse_payment ON payments", "DROP FUNCTION refuse_payment()"]
    else:
        ddl = ["CREATE TRIGGER refuse_payment BEFORE INSERT ON payments BEGIN SELECT RAISE(ABORT, 'disk full'); END"]
        undo = ["DROP TRIGGER refuse_payment"]

    def run(statements):
        for statement in statements:
            session.execute(text(statement))
        session.commit()

    run(ddl)
    yield lambda: run(undo)


def test_an_answer_whose_booking_the_database_refuses_is_still_recorded(session, shop, stripe_gateway, fake_stripe,
                                                                       outbox, payments_refused, caplog):
    """The answer and its booking commit together; when that transaction fails, the answer is recorded on its own,
    so the money that moved is known (and holds the invoice) until reconciliation books it."""
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))

    session.expire_all()
    assert session.get(ChargeAttempt, attempt.id).status == "succeeded"
    assert count(session, Payment) == 0 and invoice_state(session, shop.first) == ("open", 10_000)
    assert "recorded but not booked yet" in caplog.text and read_outbox(outbox) == []
    with pytest.raises(DomainError):
        new_request(session, shop)
    session.rollback()

    payments_refused()  # the disk has room again
    payments.reconcile(session, runtime_for(stripe_gateway))
    assert invoice_state(session, shop.first) == ("paid", 0)
    [receipt] = read_outbox(outbox)
    assert receipt["Subject"].startswith("Payment received")


def test_reconcile_leaves_a_still_processing_debit_alone(session, shop, stripe_gateway, fake_stripe):
    pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_usBankAccount_success"))
    report = payments.reconcile(session, runtime_for(stripe_gateway))

    assert (report.checked, report.changed, report.still_open) == (1, 0, 1)
    assert invoice_state(session, shop.first) == ("open", 10_000)


def test_a_lost_response_is_unknown_until_reconcile_replays_the_same_key(session, shop, stripe_gateway,
                                                                         fake_stripe, clock, monkeypatch):
    # Stripe charged the card; the answer never came back
    outage_at_charge(monkeypatch, stripe_gateway, fake_stripe, 500, after_processing=True)
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))

    assert attempt.status == "unknown" and attempt.gateway_id is None
    assert count(session, Payment) == 0 and invoice_state(session, shop.first) == ("open", 10_000)
    # while unknown, the amount is held: the client cannot start a second payment of the same invoice
    with pytest.raises(DomainError):
        new_request(session, shop)
    assert payments.reconcile(session, runtime_for(stripe_gateway)).checked == 0  # too fresh: maybe still in flight

    clock.advance(minutes=5)
    report = payments.reconcile(session, runtime_for(stripe_gateway))

    assert report.settled == 1
    assert fake_stripe.payment_intent_count == 1  # the replay returned the first charge; nothing charged twice
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_an_outage_before_stripe_saw_the_request_is_charged_once_by_reconcile(session, shop, stripe_gateway,
                                                                              fake_stripe, clock, monkeypatch):
    outage_at_charge(monkeypatch, stripe_gateway, fake_stripe, 503)
    attempt = pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_card_visa"))
    assert attempt.status == "unknown" and fake_stripe.payment_intent_count == 0

    clock.advance(minutes=5)
    fake_stripe.fail_next(503)
    report = payments.reconcile(session, runtime_for(stripe_gateway))
    assert report.problems and report.still_open == 1  # still down: reported, nothing changed

    report = payments.reconcile(session, runtime_for(stripe_gateway))
    assert report.settled == 1 and fake_stripe.payment_intent_count == 1
    assert invoice_state(session, shop.first) == ("paid", 0)


# --- authentication (3-D Secure) --------------------------------------------------------------------------------


def test_a_card_that_needs_authentication_waits_for_the_client(session, shop, stripe_gateway, fake_stripe):
    request = new_request(session, shop)
    attempt = pay(session, stripe_gateway, request, fake_stripe.confirmation_token("pm_card_authenticationRequired"))

    assert attempt.status == "requires_action"
    assert attempt.next_action_url.endswith(f"/fake/3ds/{attempt.gateway_id}")
    intent = fake_stripe.payment_intent(attempt.gateway_id)
    assert intent["next_action"]["redirect_to_url"]["return_url"] == (
        f"http://localhost/pay/{request.public_id}/status")
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert count(session, Payment) == 0  # nothing on the ledger until the bank approves it

    fake_stripe.authenticate(attempt.gateway_id)
    attempt = payments.refresh_attempt(session, runtime_for(stripe_gateway), attempt)  # back on our status page
    assert attempt.status == "succeeded"
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_an_abandoned_authentication_is_canceled_before_another_card_is_tried(session, shop, stripe_gateway,
                                                                               fake_stripe):
    request = new_request(session, shop)
    first = pay(session, stripe_gateway, request, fake_stripe.confirmation_token("pm_card_authenticationRequired"))
    second = pay(session, stripe_gateway, request, fake_stripe.confirmation_token("pm_card_visa"), number=2)

    assert second.status == "succeeded"
    assert fake_stripe.payment_intent(first.gateway_id)["status"] == "canceled"
    session.expire_all()
    assert session.get(ChargeAttempt, first.id).status == "canceled"
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_two_simultaneous_submissions_of_the_same_form_charge_once(app, session, shop, stripe_gateway, fake_stripe,
                                                                   monkeypatch):
    """Two requests racing with the same form (two nodes behind a load balancer): one attempt row, one charge.
    Both are held until each is about to write its attempt row, so the unique constraint really decides."""
    request = new_request(session, shop)
    token = fake_stripe.confirmation_token("pm_card_visa")
    write_attempt = charging._write_attempt
    together = threading.Barrier(2, timeout=30)
    written: list[bool] = []

    def write_together(*args, **kwargs):
        together.wait()
        attempt, call, wrote = write_attempt(*args, **kwargs)
        written.append(wrote)
        return attempt, call, wrote

    monkeypatch.setattr(charging, "_write_attempt", write_together)
    outcomes: list[object] = []

    def submit():
        with app.app_context():
            own = db.session()  # each thread has its own session and connection, like a separate process
            try:
                attempt = payments.pay(own, runtime_for(stripe_gateway), own.get(PaymentRequest, request.id),
                                              token=token, attempt_number=1)
                outcomes.append(attempt.id)
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                outcomes.append(e)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == 2 and all(isinstance(o, int) for o in outcomes), outcomes
    assert sorted(written) == [False, True]  # one wrote the row; the other found it and did not charge
    assert len(set(outcomes)) == 1
    assert count(session, ChargeAttempt) == 1
    assert fake_stripe.payment_intent_count == 1
    assert invoice_state(session, shop.first) == ("paid", 0)


# --- the command -------------------------------------------------------------------------------------------------


def test_the_reconcile_command_settles_a_sandbox_bank_payment(app, session, shop, sandbox_gateway, clock):
    from portal.gateways.payments import sandbox_token

    attempt = pay(session, sandbox_gateway, new_request(session, shop), sandbox_token("us_bank_account",
                                                                                      "000123456789"))
    runner = app.test_cli_runner()

    early = runner.invoke(args=["payments", "reconcile"])
    assert early.exit_code == 0, early.output
    assert "1 checked, 0 changed, 0 settled, 1 still open." in early.output
    assert invoice_state(session, shop.first) == ("open", 10_000)

    clock.advance(minutes=2)  # the sandbox bank has decided
    result = runner.invoke(args=["payments", "reconcile"])

    assert result.exit_code == 0, result.output
    assert "Reconciling online payments with the SANDBOX gateway" in result.output
    assert "1 checked, 1 changed, 1 settled, 0 still open." in result.output
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert payment_of(session, attempt).status == "succeeded"


def test_the_reconcile_command_fails_loudly_when_stripe_cannot_be_asked(app, session, shop, stripe_gateway,
                                                                        fake_stripe):
    pay(session, stripe_gateway, new_request(session, shop), fake_stripe.confirmation_token("pm_usBankAccount_success"))
    fake_stripe.fail_next(500)

    result = app.test_cli_runner().invoke(args=["payments", "reconcile"])

    assert result.exit_code == 1
    assert "problem: charge attempt 1: Stripe unavailable" in result.output
    assert invoice_state(session, shop.first) == ("open", 10_000)


def test_reconcile_cancels_an_authentication_step_abandoned_for_an_hour(session, shop, stripe_gateway, fake_stripe,
                                                                        clock):
    attempt = pay(session, stripe_gateway, new_request(session, shop),
                  fake_stripe.confirmation_token("pm_card_authenticationRequired"))
    with pytest.raises(DomainError):
        new_request(session, shop)  # the amount is held while the client may still approve it

    assert payments.reconcile(session, runtime_for(stripe_gateway)).still_open == 1  # a fresh one is left alone
    clock.advance(minutes=61)
    report = payments.reconcile(session, runtime_for(stripe_gateway))

    assert report.settled == 1
    assert fake_stripe.payment_intent(attempt.gateway_id)["status"] == "canceled"
    session.expire_all()
    assert session.get(ChargeAttempt, attempt.id).status == "canceled"
    assert new_request(session, shop).amount_cents == 10_000  # payable again
