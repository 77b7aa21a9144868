"""`portal run-due` against the fake Stripe server through the real ``stripe`` SDK: off-session charges and each
decline class with its consequence (hard: the method is retired and the fallback charged the same run; soft:
retried on the MSP's schedule, then stopped; authentication_required: the client approves it on-session), bank
debits processing then settled or returned, the pre-charge notice and the expiring-card email sent once, the cap,
and a gateway timeout replayed with the same idempotency key (never a second charge)."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal.domain import autopay as A
from portal.domain.errors import DomainError
from portal.models import AutopayCharge, AutopayNotice, ChargeAttempt, DueRunSkip, InvoiceEvent, SavedPaymentMethod
from portal.services.autopay import cap_approvals
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, read_outbox, runtime_for
from tests.run_due_fixtures import CARD, enroll_rows, enroll_through_portal, run, set_rules

DUE = date(2026, 3, 16)  # the clock's day


def charges(session, invoice) -> list[tuple[int, str, str, str | None]]:
    """(charge number, method, attempt status, decline class) of each autopay charge of the invoice."""
    session.expire_all()
    return [(c.charge_number, c.method_id, a.status, c.decline_class) for c, a in session.execute(
        select(AutopayCharge, ChargeAttempt).join(ChargeAttempt, ChargeAttempt.id == AutopayCharge.attempt_id)
        .where(AutopayCharge.invoice_id == invoice.id).order_by(AutopayCharge.charge_number))]


def subjects(outbox) -> list[str]:
    return [m["Subject"] for m in read_outbox(outbox)]


def body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_a_saved_card_is_charged_off_session_once(app, session, shop, stripe_gateway, fake_stripe, outbox):
    rt = runtime_for(stripe_gateway)
    enroll_through_portal(session, rt, shop.contact, fake_stripe.confirmation_token("pm_card_visa"))

    report = run(app, session, rt)
    again = run(app, session, rt)

    assert (report.charged, report.succeeded, again.charged) == (1, 1, 0)
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 1}  # the one due; the second is not yet
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert invoice_state(session, shop.second)[0] == "open"
    [(_, _, status, _)] = charges(session, shop.first)
    assert status == "succeeded"
    [call] = [r for r in fake_stripe.requests if r.method == "POST" and r.path == "/v1/payment_intents"]
    assert (call.params["off_session"], call.params["confirm"]) == ("true", "true")


def test_hard_decline_retires_the_card_and_charges_the_fallback_in_the_same_run(app, session, shop, stripe_gateway,
                                                                                fake_stripe, outbox):
    rt = runtime_for(stripe_gateway)
    # a card saved fine that the bank has since reported lost
    enroll_rows(session, rt, shop.client, [("pm_card_chargeDeclinedLostCard", CARD), ("pm_card_mastercard", CARD)])

    report = run(app, session, rt)

    assert (report.charged, report.failed, report.succeeded) == (2, 1, 1)
    assert charges(session, shop.first) == [(1, "pm_card_chargeDeclinedLostCard", "failed", "hard"),
                                             (2, "pm_card_mastercard", "succeeded", None)]
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 2}
    assert invoice_state(session, shop.first) == ("paid", 0)
    lost = session.scalar(select(SavedPaymentMethod).where(
        SavedPaymentMethod.method_id == "pm_card_chargeDeclinedLostCard"))
    assert lost.status == A.SavedMethodStatus.BLOCKED
    [declined] = [m for m in read_outbox(outbox) if "did not go through" in m["Subject"]]
    text = body(declined)
    assert "backup method" in text and urlsplit(rt.url("autopay.methods")).path in text

    # the blocked card is never charged again
    assert run(app, session, rt).charged == 0


def test_hard_decline_without_a_fallback_stops_and_tells_the_client(app, session, shop, stripe_gateway, fake_stripe,
                                                                    outbox):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, shop.client, [("pm_card_chargeDeclinedLostCard", CARD)])

    first = run(app, session, rt)
    for _ in range(3):
        app.extensions["clock"].advance(days=3)
        assert run(app, session, rt).charged == 0

    assert (first.charged, first.failed) == (1, 1)
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 1}
    [declined] = [m for m in read_outbox(outbox) if "did not go through" in m["Subject"]]
    assert "will not try this invoice again" in body(declined)
    assert invoice_state(session, shop.first) == ("open", 10_000)


def test_soft_decline_is_retried_on_the_schedule_then_stops(app, session, shop, stripe_gateway, fake_stripe, outbox):
    rt = runtime_for(stripe_gateway)
    clock = app.extensions["clock"]
    enroll_through_portal(session, rt, shop.contact,
                          fake_stripe.confirmation_token("pm_card_chargeDeclinedInsufficientFunds"))
    set_rules(session, shop.client.id, retry_days="3,5,7")

    skips: set[str] = set()  # each run's own report: the run log keeps a quiet run for a week only
    for day in range(0, 30):
        clock.set(DUE + timedelta(days=day))
        skips |= {reason for invoice_id, reason in run(app, session, rt).skips if invoice_id == shop.first.id}

    charged_on = [(c.charged_on - DUE).days for c in session.scalars(
        select(AutopayCharge).where(AutopayCharge.invoice_id == shop.first.id).order_by(AutopayCharge.charge_number))]
    assert charged_on == [0, 3, 8, 15]  # the first try, then +3, +5, +7 days after each failure
    assert [c[3] for c in charges(session, shop.first)] == ["soft"] * 4
    assert fake_stripe.charges_by("invoice_id")[str(shop.first.id)] == 4
    declined = [body(m) for m in read_outbox(outbox)
                if "did not go through" in m["Subject"] and shop.first.number in body(m)]
    assert len(declined) == 4
    assert "try again on March 19, 2026" in declined[0]
    assert "will not try this invoice again" in declined[-1]
    assert {"retry_scheduled", "gave_up"} <= skips


def test_authentication_required_emails_an_approval_link_that_charges_on_session(
        app, session, shop, stripe_gateway, fake_stripe, outbox, http):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, shop.client, [("pm_card_authenticationRequired", CARD)])

    report = run(app, session, rt)
    app.extensions["clock"].advance(days=5)
    later = run(app, session, rt)

    assert (report.charged, report.failed, later.charged) == (1, 1, 0)  # no unattended retry can succeed
    assert charges(session, shop.first) == [(1, "pm_card_authenticationRequired", "failed", "authentication_required")]
    [approve_mail] = [m for m in read_outbox(outbox) if "approve" in m["Subject"].lower()]
    link = next(w for w in body(approve_mail).split() if "/confirm?t=" in w)
    path = urlsplit(link).path + "?" + urlsplit(link).query

    page = http.get(path)
    assert page.status_code == 200 and b"Approve the payment" in page.data
    assert http.get(path.replace("?t=", "?t=x")).status_code == 404  # a forged token opens nothing

    sent = http.post(path)
    assert sent.status_code == 302 and "/fake/3ds/" in sent.headers["Location"]  # the bank's page
    assert http.post(path).status_code == 302  # pressed twice: still one on-session charge
    intent_id = sent.headers["Location"].rsplit("/", 1)[-1]
    fake_stripe.authenticate(intent_id)
    back = http.get(path)
    assert b"Payment received" in back.data
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 2}  # the declined one and the approved one


def test_ach_debit_processing_then_settled(app, session, shop, stripe_gateway, fake_stripe, outbox):
    rt = runtime_for(stripe_gateway)
    enroll_through_portal(session, rt, shop.contact, fake_stripe.confirmation_token("pm_usBankAccount_success"))

    sent = run(app, session, rt)
    assert (sent.charged, sent.pending) == (1, 1)
    assert invoice_state(session, shop.first)[0] == "open"
    assert run(app, session, rt).charged == 0  # on its way: not charged again

    [intent_id] = list(fake_stripe.ledger.payment_intents)
    fake_stripe.settle(intent_id)
    app.extensions["clock"].advance(days=2)
    settled = run(app, session, rt)

    assert (settled.settled, settled.charged) == (1, 0)
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 1}


def test_ach_return_r02_is_a_hard_decline_that_retires_the_account(app, session, shop, stripe_gateway, fake_stripe,
                                                                    outbox):
    rt = runtime_for(stripe_gateway)
    enroll_through_portal(session, rt, shop.contact,
                          fake_stripe.confirmation_token("pm_usBankAccount_accountClosed"))

    assert run(app, session, rt).pending == 1
    [intent_id] = list(fake_stripe.ledger.payment_intents)
    fake_stripe.settle(intent_id)  # the bank returns it: account closed
    app.extensions["clock"].advance(days=3)
    returned = run(app, session, rt)

    [(_, _, status, kind)] = charges(session, shop.first)
    assert (status, kind) == ("failed", "hard")
    assert session.scalar(select(AutopayCharge.decline_code)) == "R02"
    assert session.scalar(select(SavedPaymentMethod.status)) == A.SavedMethodStatus.BLOCKED
    assert returned.charged == 0 and invoice_state(session, shop.first) == ("open", 10_000)
    assert len([m for m in read_outbox(outbox) if "did not go through" in m["Subject"]]) == 1
    app.extensions["clock"].advance(days=5)
    assert run(app, session, rt).charged == 0
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 1}


def test_pre_charge_notice_goes_once_then_the_charge_on_the_date(app, session, make, stripe_gateway, fake_stripe,
                                                                   outbox):
    rt = runtime_for(stripe_gateway)
    clock = app.extensions["clock"]
    client = make.client("Birch Dental LLC")
    make.contact(client, email="ap@birch.test")
    invoice = make.invoice(client, 30_000, issue_date=date(2026, 3, 1), due_date=DUE + timedelta(days=5))
    enroll_rows(session, rt, client, [("pm_card_visa", CARD)], notice_days=3)

    clock.set(DUE + timedelta(days=1))  # not yet: the notice goes 3 days before the due date
    assert run(app, session, rt).notices == 0
    clock.set(DUE + timedelta(days=2))
    first = run(app, session, rt)
    again = run(app, session, rt)
    clock.set(DUE + timedelta(days=4))
    before = run(app, session, rt)
    clock.set(DUE + timedelta(days=5))
    on_the_day = run(app, session, rt)

    assert (first.notices, again.notices, before.notices, before.charged) == (1, 0, 0, 0)
    assert on_the_day.charged == 1 and invoice_state(session, invoice) == ("paid", 0)
    [notice] = [m for m in read_outbox(outbox) if m["Subject"].startswith("Upcoming automatic payment")]
    text = body(notice)
    assert invoice.number in text and "$300.00" in text and "March 21, 2026" in text
    assert len(session.scalars(select(AutopayNotice)).all()) == 1


def test_expiring_card_is_emailed_once(app, session, shop, stripe_gateway, fake_stripe, outbox):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)], exp=(3, 2026))  # ends within 30 days of Mar 16

    runs = [run(app, session, rt).notices for _ in range(2)]

    assert runs == [1, 0]
    assert len([s for s in subjects(outbox) if "expires soon" in s]) == 1


def test_an_invoice_over_the_cap_is_left_for_the_admin(app, session, shop, stripe_gateway, fake_stripe, outbox):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    set_rules(session, shop.client.id, has_cap_override=True, cap_cents=5_000)  # the first invoice is $100.00

    report = run(app, session, rt)

    assert report.charged == 0 and fake_stripe.charges_by("invoice_id") == {}
    # the first is due (listed for the admin); the second ($250, due on the 31st) is not skipped by today's run yet
    assert report.skips == [(shop.first.id, "over_cap")]
    assert [(s.invoice_id, s.reason) for s in session.scalars(select(DueRunSkip))] == [(shop.first.id, "over_cap")]


def test_an_admin_approves_an_invoice_over_the_cap_and_autopay_charges_it(app, session, shop, stripe_gateway,
                                                                           fake_stripe, outbox, make):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    set_rules(session, shop.client.id, has_cap_override=True, cap_cents=5_000)
    staff = make.staff()
    assert run(app, session, rt).charged == 0

    state = cap_approvals.approve(session, shop.first.id, staff=staff)
    with pytest.raises(DomainError, match="already approved"):  # a second click
        cap_approvals.approve(session, shop.first.id, staff=staff)
    report = run(app, session, rt)

    assert (state.cap_cents, state.balance_cents, state.approved) == (5_000, 10_000, True)
    assert (report.charged, report.succeeded, report.skips) == (1, 1, [])
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 1}
    assert invoice_state(session, shop.first) == ("paid", 0)
    [event] = session.scalars(select(InvoiceEvent).where(InvoiceEvent.kind == cap_approvals.APPROVED)).all()
    assert (event.invoice_id, event.actor_id) == (shop.first.id, staff.id)
    assert event.detail == "Approved for autopay over the $50.00 cap ($100.00)"
    assert invoice_state(session, shop.second)[0] == "open"  # approvals are one invoice at a time


def test_a_withdrawn_approval_leaves_the_invoice_to_the_client_again(app, session, shop, stripe_gateway, fake_stripe,
                                                                     outbox, make):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    set_rules(session, shop.client.id, has_cap_override=True, cap_cents=5_000)
    staff = make.staff()
    cap_approvals.approve(session, shop.first.id, staff=staff)
    cap_approvals.withdraw(session, shop.first.id, staff=staff)
    with pytest.raises(DomainError, match="not approved"):
        cap_approvals.withdraw(session, shop.first.id, staff=staff)

    report = run(app, session, rt)

    assert report.charged == 0 and fake_stripe.charges_by("invoice_id") == {}
    assert report.skips == [(shop.first.id, "over_cap")]
    assert cap_approvals.approved_ids(session, [shop.first.id]) == set()


@pytest.mark.parametrize("case", ["under the cap", "no cap", "not on autopay", "unknown"])
def test_an_approval_is_refused_unless_the_invoice_is_over_the_cap_of_a_client_on_autopay(
        app, session, shop, stripe_gateway, make, case):
    rt = runtime_for(stripe_gateway)
    if case != "not on autopay":
        enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    if case in ("under the cap", "unknown"):
        set_rules(session, shop.client.id, has_cap_override=True, cap_cents=10_000)
    invoice_id = 999_999 if case == "unknown" else shop.first.id  # $100.00: not over a $100.00 cap

    with pytest.raises(DomainError, match="Unknown invoice" if case == "unknown" else "not over the autopay cap"):
        cap_approvals.approve(session, invoice_id, staff=make.staff())

    assert session.scalars(select(InvoiceEvent)).all() == []


def test_a_timeout_mid_charge_is_replayed_with_the_same_key_never_charged_twice(app, session, shop, stripe_gateway,
                                                                                fake_stripe, outbox):
    rt = runtime_for(stripe_gateway)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])
    fake_stripe.fail_next(None, after_processing=True)  # the charge happens; its answer is lost on the way back

    lost = run(app, session, rt)
    assert (lost.charged, lost.succeeded) == (1, 0)
    assert any("same key" in p for p in lost.problems)
    key = session.scalar(select(ChargeAttempt.idempotency_key))
    assert run(app, session, rt).charged == 0  # too young to replay; not charged anew either

    app.extensions["clock"].advance(minutes=10)
    replayed = run(app, session, rt)

    assert replayed.charged == 0
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert fake_stripe.charges_by("invoice_id") == {str(shop.first.id): 1}
    posts = [r for r in fake_stripe.requests if r.method == "POST" and r.path == "/v1/payment_intents"]
    assert len(posts) >= 2 and {r.idempotency_key for r in posts} == {key}
