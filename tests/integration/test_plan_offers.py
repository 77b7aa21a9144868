"""Plan offers, negotiation and acceptance on a real database: MSP offers, client proposals and self-service picks
against the policy, every refusal changing nothing, signing (the same evidence and verify page as every
agreement), the plan and its installments, the down payment's checkout, counters with history, withdrawing,
renegotiating, canceling, and isolation between clients."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain.errors import DomainError
from portal.domain.plans import OfferStatus, PlanStatus
from portal.gateways.payments import sandbox_token
from portal.models import (
    Agreement,
    Installment,
    PaymentPlan,
    PaymentRequest,
    PlanEvent,
    PlanInvoice,
    PlanOffer,
    PlanOfferInvoice,
)
from portal.services import agreements, billing, payments
from portal.services.agreements.chain import Meta
from portal.services.errors import NotFound
from portal.services.plans import acceptance, negotiation, offers, policy
from portal.services.plans.offers import Choice
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, read_outbox

META = Meta(ip="203.0.113.7", user_agent="Mozilla/5.0 (test)", session_id="b" * 32)
APRIL_1 = date(2026, 4, 1)


def choice(shop_, **kw) -> Choice:
    values = {"invoice_ids": (shop_.first.id, shop_.second.id), "down_payment_cents": 5_000, "installments": 3,
              "frequency": "monthly", "first_due_on": APRIL_1}
    values.update(kw)
    return Choice(**values)


def offer_to(session, rt, shop_, staff, **kw):
    message = kw.pop("message", "")
    return negotiation.make_offer(session, rt, shop_.client.id, choice(shop_, **kw), staff=staff, message=message)


def sign(session, rt, contact, offer, *, sha=None):
    doc = acceptance.document(session, rt, offer)
    signed = acceptance.SignedBy(full_name="Pat Doe", title="Office Manager", authority_confirmed=True,
                                 consent_confirmed=True, signature=agreements.Signature(kind="typed", typed="Pat Doe"),
                                 shown_sha256=sha or doc.sha256)
    return acceptance.accept(session, rt, contact, offer.public_id, signed, meta=META)


def counts(session) -> tuple[int, int, int, int, int]:
    session.expire_all()
    return tuple(session.scalar(select(func.count()).select_from(m))  # type: ignore[return-value]
                 for m in (PlanOffer, PlanOfferInvoice, PlanEvent, PaymentPlan, Agreement))


@pytest.fixture
def staff(make):
    return make.staff()


# ---------------------------------------------------------------------------------------------------- offers

def test_an_msp_offer_is_stored_with_its_invoices_and_emailed_as_a_portal_link(session, rt, shop, staff, outbox):
    offer = offer_to(session, rt, shop, staff, message="Let's spread this out.")

    assert offer.status == OfferStatus.OPEN and offer.thread_id == offer.id and offer.proposed_by == "msp"
    assert offer.balance_cents == 35_000 and offer.down_payment_cents == 5_000 and offer.installments == 3
    assert [(i.invoice_id, i.balance_cents) for i in offer.invoices] == [(shop.first.id, 10_000),
                                                                         (shop.second.id, 25_000)]
    [event] = offers.history(session, offer.thread_id)
    assert event.kind == "offered" and "$350.00: $50.00 down, then 3 payments" in event.detail
    [mail] = read_outbox(outbox)
    assert mail["To"] == "pat@acme-dental.test" and "payment plan offer" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert f"http://localhost/plan-offers/{offer.public_id}" in text and "Let's spread this out." in text


def test_all_overdue_picks_only_the_overdue_invoices(session, rt, shop, staff):
    offer = offer_to(session, rt, shop, staff, invoice_ids=(), all_overdue=True, down_payment_cents=1_000)
    assert [i.invoice_id for i in offer.invoices] == [shop.first.id]


def test_down_payment_as_a_percentage_and_installments_by_amount(session, rt, shop, staff):
    offer = offer_to(session, rt, shop, staff, down_payment_cents=None, down_payment_percent=Decimal("20"),
                     installments=None, installment_cents=10_000)
    assert offer.down_payment_cents == 7_000 and offer.installments == 3  # 280.00 at 100.00 a payment


def _refusals(shop_, make, session):
    other = make.client("Other Co")
    foreign = make.invoice(other, 5_000)
    draft = make.invoice(shop_.client, 5_000, issue=False)
    return [
        ("foreign", dict(invoice_ids=(shop_.first.id, foreign.id)), "belongs to another client"),
        ("draft", dict(invoice_ids=(draft.id,), down_payment_cents=0), "only open invoices"),
        ("down too big", dict(down_payment_cents=40_000), "cannot be more than the balance"),
        ("zero installments", dict(installments=0), "at least 1"),
        ("negative amount", dict(installments=None, installment_cents=-100), "more than zero"),
        ("apr above max", dict(apr_percent=Decimal("25")), "may not exceed 18%"),
        ("pay now short", dict(pay_now_invoice_id=shop_.second.id), r"at least its balance, \$250.00"),
        ("past first date", dict(first_due_on=date(2026, 3, 1)), "cannot be due before"),
        ("no invoices", dict(invoice_ids=()), "Choose at least one invoice"),
    ]


def test_every_bad_offer_is_refused_with_a_clear_message_and_nothing_written(session, rt, shop, staff, make, outbox):
    cases = _refusals(shop, make, session)
    before = counts(session)
    for name, kw, message in cases:
        with pytest.raises(DomainError, match=message):
            offer_to(session, rt, shop, staff, **kw)
        assert counts(session) == before, name
    assert read_outbox(outbox) == []


def test_an_invoice_paid_meanwhile_owes_nothing_and_is_refused(session, rt, shop, staff, make):
    make.payment(shop.client, 10_000, allocations={shop.first.id: 10_000})
    with pytest.raises(DomainError, match=f"Invoice {shop.first.number} is paid: only open invoices"):
        offer_to(session, rt, shop, staff)
    assert counts(session)[0] == 0


def test_an_invoice_in_another_open_thread_or_on_a_current_plan_is_refused(session, rt, shop, staff):
    first = offer_to(session, rt, shop, staff, invoice_ids=(shop.first.id,), down_payment_cents=0)
    with pytest.raises(DomainError, match="already in an open plan offer"):
        offer_to(session, rt, shop, staff)
    sign(session, rt, shop.contact, first)
    before = counts(session)
    with pytest.raises(DomainError, match=r"already on plan PLAN-000001"):
        offer_to(session, rt, shop, staff)
    assert counts(session) == before


# ---------------------------------------------------------------------------------------------------- policy

def test_self_service_pick_must_fit_the_policy_but_a_proposal_may_not(session, rt, shop, staff):
    contact = shop.contact
    with pytest.raises(DomainError, match="At most 6 payments"):
        negotiation.choose(session, contact, choice(shop, installments=12))
    with pytest.raises(DomainError, match=r"at least 10% \(\$35.00\)"):
        negotiation.choose(session, contact, choice(shop, down_payment_cents=1_000))
    assert counts(session)[0] == 0

    picked = negotiation.choose(session, contact, choice(shop))
    assert picked.proposed_by == "policy" and picked.status == OfferStatus.OPEN
    # a new pick replaces the unsigned one
    again = negotiation.choose(session, contact, choice(shop, installments=4))
    session.refresh(picked)
    assert picked.status == OfferStatus.WITHDRAWN and again.status == OfferStatus.OPEN
    negotiation.withdraw(session, again.id, contact=contact)

    proposal = negotiation.propose(session, rt, contact, choice(shop, installments=12, down_payment_cents=0),
                                   message="We can pay monthly over a year.")
    assert proposal.proposed_by == "client" and proposal.installments == 12
    [event] = [e for e in offers.history(session, proposal.thread_id) if e.kind == "proposed"]
    assert "Outside the policy: At most 6 payments" in event.detail
    with pytest.raises(DomainError, match="your own proposal"):
        sign(session, rt, contact, proposal)


def test_self_service_is_off_or_not_overdue(session, rt, shop, make):
    policy.update_policy(session, policy.PolicyInput(
        self_service=False, max_balance_cents=1_000_000, max_installments=6, min_down_percent=Decimal(10),
        frequencies=("monthly",), apr_percent=Decimal(0), max_apr_percent=Decimal(18), grace_days=5,
        reminder_days=3))
    with pytest.raises(DomainError, match="propose a plan instead"):
        negotiation.choose(session, shop.contact, choice(shop))
    assert counts(session)[0] == 0


def test_policy_settings_are_validated_and_saved(session):
    bad = policy.PolicyInput(self_service=True, max_balance_cents=100_000, max_installments=6,
                             min_down_percent=Decimal(10), frequencies=("monthly",), apr_percent=Decimal(20),
                             max_apr_percent=Decimal(18), grace_days=5, reminder_days=3)
    with pytest.raises(DomainError, match="cannot be more than the maximum APR"):
        policy.update_policy(session, bad)
    assert session.scalar(select(func.count()).select_from(policy.PlanPolicy)) == 0
    from dataclasses import replace

    row = policy.update_policy(session, replace(bad, apr_percent=Decimal("4.5"), frequencies=("monthly", "weekly")))
    assert row.frequencies == "weekly,monthly" and row.apr_percent == Decimal("4.5")


# ---------------------------------------------------------------------------------------------------- acceptance

def test_accepting_signs_the_agreement_and_starts_the_plan_with_its_down_payment(session, rt, shop, staff, outbox):
    offer = offer_to(session, rt, shop, staff, down_payment_cents=12_000, pay_now_invoice_id=shop.first.id)
    done = sign(session, rt, shop.contact, offer)

    plan, agreement = done.plan, done.agreement
    assert plan.reference == f"PLAN-{plan.id:06d}" and plan.status == PlanStatus.CURRENT
    assert (plan.balance_cents, plan.down_payment_cents, plan.principal_cents) == (35_000, 12_000, 23_000)
    assert agreement.kind == "installment_plan" and plan.agreement_id == agreement.id
    found = agreements.verify_reference(session, rt, agreement.reference)
    assert found.intact and found.signed and found.breaks == ()
    assert "Invoice " + shop.first.number in agreement.document_text and "$230.00" in agreement.document_text
    rows = session.scalars(select(Installment).where(Installment.plan_id == plan.id)
                           .order_by(Installment.number)).all()
    assert [(r.number, r.amount_cents) for r in rows] == [(0, 12_000), (1, 7_666), (2, 7_666), (3, 7_668)]
    assert rows[0].due_on == date(2026, 3, 16) and rows[1].due_on == APRIL_1
    assert {pi.invoice_id: pi.current_key for pi in plan.invoices} == {shop.first.id: shop.first.id,
                                                                     shop.second.id: shop.second.id}
    request = done.down_payment
    assert plan.down_payment_request_id == request.id and request.amount_cents == 12_000
    assert [(i.invoice_id, i.amount_cents) for i in request.items] == [(shop.first.id, 10_000),
                                                                       (shop.second.id, 2_000)]
    session.refresh(offer)
    assert offer.status == OfferStatus.ACCEPTED and offer.accept_key == offer.thread_id
    assert [e.kind for e in offers.history(session, offer.thread_id)] == ["offered", "accepted"]
    assert any("Your signed copy" in m["Subject"] for m in read_outbox(outbox))

    # the down payment is an ordinary checkout: pay it in the sandbox
    payments.pay(session, rt, request, token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert invoice_state(session, shop.second) == ("open", 23_000)


def test_a_plan_without_down_payment_has_no_request_and_no_row_zero(session, rt, shop, staff):
    offer = offer_to(session, rt, shop, staff, down_payment_cents=0, installments=2)
    done = sign(session, rt, shop.contact, offer)
    assert done.down_payment is None and done.plan.down_payment_request_id is None
    assert [i.number for i in done.plan.installments] == [1, 2]


def test_a_formal_note_carries_the_amortization_table_and_apr(session, rt, shop, staff):
    offer = offer_to(session, rt, shop, staff, down_payment_cents=5_000, installments=12,
                     apr_percent=Decimal("12"), as_note=True)
    done = sign(session, rt, shop.contact, offer)
    text = done.agreement.document_text
    assert done.agreement.kind == "promissory_note" and done.plan.as_note
    assert "# Promissory note" in text and "annual percentage\nrate of **12%**" in text
    assert "### Amortization schedule" in text
    # 300.00 at 1% a month over 12 months: level payment 26.65 (P·r / (1 − (1 + r)^−12))
    assert "Payment 1, due April 1, 2026: **$26.65** (interest $3.00, principal $23.65" in text
    interest = sum(i.interest_cents for i in done.plan.installments)
    assert done.plan.total_interest_cents == interest > 0
    assert f"Total interest: **${interest / 100:,.2f}**" in text
    assert agreements.verify_reference(session, rt, done.agreement.reference).intact


def test_a_saved_method_is_named_in_the_authorization(session, rt, shop, staff, make):
    from portal.models import SavedPaymentMethod

    session.add(SavedPaymentMethod(client_id=shop.client.id, gateway="sandbox", customer_id="cus_1", method_id="pm_1",
                                   method_type="card", brand="visa", last4="4242", exp_month=12, exp_year=2030,
                                   status="active", is_default=True, created_at=shop.client.created_at))
    session.commit()
    offer = offer_to(session, rt, shop, staff)
    assert "to charge each installment, on its due date, to **Visa ending 4242**" in \
        acceptance.document(session, rt, offer).text


def test_accepting_twice_makes_one_plan(session, rt, shop, staff):
    offer = offer_to(session, rt, shop, staff)
    sign(session, rt, shop.contact, offer)
    before = counts(session)
    with pytest.raises(DomainError, match="This offer was already accepted."):
        sign(session, rt, shop.contact, offer)
    assert counts(session) == before


def test_a_changed_document_or_changed_balance_is_refused(session, rt, shop, staff, make):
    offer = offer_to(session, rt, shop, staff)
    with pytest.raises(DomainError, match="changed since you opened it"):
        sign(session, rt, shop.contact, offer, sha="0" * 64)
    make.payment(shop.client, 1_000, allocations={shop.second.id: 1_000})
    before = counts(session)
    with pytest.raises(DomainError, match="The balances changed since this offer was made"):
        sign(session, rt, shop.contact, offer)
    assert counts(session) == before
    session.refresh(offer)
    assert offer.status == OfferStatus.OPEN and offer.accept_key is None


def test_withdrawn_rejected_and_superseded_offers_cannot_be_accepted(session, rt, shop, staff):
    offer = offer_to(session, rt, shop, staff)
    negotiation.withdraw(session, offer.id, staff=staff, reason="Sent by mistake")
    before = counts(session)
    with pytest.raises(DomainError, match="withdrawn"):
        sign(session, rt, shop.contact, offer)
    assert counts(session) == before

    second = offer_to(session, rt, shop, staff)
    negotiation.reject(session, rt, second.id, contact=shop.contact, reason="Too short")
    with pytest.raises(DomainError, match="rejected"):
        sign(session, rt, shop.contact, second)

    a = offer_to(session, rt, shop, staff, invoice_ids=(shop.second.id,), down_payment_cents=0)
    pick = negotiation.choose(session, shop.contact,
                              choice(shop, invoice_ids=(shop.first.id,), down_payment_cents=1_000))
    sign(session, rt, shop.contact, pick)
    session.refresh(a)
    assert a.status == OfferStatus.OPEN  # another invoice: unaffected
    assert counts(session)[3] == 1


def test_counter_offer_round_trip_keeps_the_history(session, rt, shop, staff, outbox):
    from portal.services.settings import update_settings

    update_settings(session, email="billing@msp.test")
    contact = shop.contact
    proposal = negotiation.propose(session, rt, contact, choice(shop, installments=10, down_payment_cents=0),
                                   message="Ten months please")
    counter = negotiation.counter(session, rt, proposal.id, choice(shop, installments=6), staff=staff,
                                  message="Six months, with $50 down")
    assert (counter.thread_id, counter.parent_id, counter.proposed_by) == (proposal.thread_id, proposal.id, "msp")
    session.refresh(proposal)
    assert proposal.status == OfferStatus.COUNTERED
    with pytest.raises(DomainError, match="replaced by a counter-offer"):
        negotiation.counter(session, rt, proposal.id, choice(shop), staff=staff)

    back = negotiation.counter(session, rt, counter.id, choice(shop, installments=8, down_payment_cents=2_000),
                               contact=contact, message="Eight?")
    assert back.proposed_by == "client" and back.parent_id == counter.id
    with pytest.raises(DomainError, match="replaced by a counter-offer"):
        sign(session, rt, contact, counter)
    with pytest.raises(DomainError, match="You can only answer an offer made to you"):
        negotiation.reject(session, rt, back.id, contact=contact)
    with pytest.raises(DomainError, match="Say why"):
        negotiation.reject(session, rt, back.id, staff=staff)
    approved = negotiation.approve(session, rt, back.id, staff=staff, message="Fine")
    assert approved.proposed_by == "msp" and approved.installments == 8 and approved.down_payment_cents == 2_000
    done = sign(session, rt, contact, approved)
    assert done.plan.offer_id == approved.id

    kinds = [e.kind for e in offers.history(session, proposal.thread_id)]
    assert kinds == ["proposed", "countered", "countered", "approved", "accepted"]
    statuses = [o.status for o in offers.thread(session, proposal.thread_id)]
    assert statuses == ["countered", "countered", "countered", "accepted"]
    subjects = [m["Subject"] for m in read_outbox(outbox)]
    assert any("answered your payment plan proposal" in s for s in subjects)
    assert any("approved your payment plan" in s for s in subjects)
    to_staff = [m for m in read_outbox(outbox) if m["To"] == "billing@msp.test"]
    assert [m["Subject"] for m in to_staff] == ["Payment plan proposal from Acme Dental LLC"] * 2  # proposal, counter
    links = {m.get_body(("plain",)).get_content().strip().splitlines()[-1] for m in to_staff}
    assert links == {f"http://localhost/admin/plan-offers/{proposal.id}", f"http://localhost/admin/plan-offers/{back.id}"}


def test_renegotiating_supersedes_the_old_plan_only_when_the_new_one_is_signed(session, rt, shop, staff):
    old = sign(session, rt, shop.contact, offer_to(session, rt, shop, staff, down_payment_cents=0)).plan
    renegotiation = negotiation.make_offer(session, rt, shop.client.id,
                                           choice(shop, installments=6, down_payment_cents=0), staff=staff,
                                           renegotiates_plan_id=old.id)
    session.refresh(old)
    assert old.status == PlanStatus.CURRENT
    new = sign(session, rt, shop.contact, renegotiation).plan
    session.refresh(old)
    assert old.status == PlanStatus.SUPERSEDED and old.superseded_by_id == new.id
    assert "Renegotiated" in old.ended_reason
    assert {pi.current_key for pi in old.invoices} == {None}
    assert {pi.current_key for pi in new.invoices} == {shop.first.id, shop.second.id}


def test_canceling_a_plan_frees_its_invoices(session, rt, shop, staff):
    plan = sign(session, rt, shop.contact, offer_to(session, rt, shop, staff)).plan
    renegotiation = negotiation.make_offer(session, rt, shop.client.id, choice(shop, down_payment_cents=0),
                                           staff=staff, renegotiates_plan_id=plan.id)
    with pytest.raises(DomainError, match="Say why"):
        acceptance.cancel_plan(session, plan.id, staff=staff, reason=" ")
    acceptance.cancel_plan(session, plan.id, staff=staff, reason="Client sold the business")
    session.refresh(plan)
    assert plan.status == PlanStatus.CANCELED and "Client sold the business" in plan.ended_reason
    session.refresh(renegotiation)
    assert renegotiation.status == OfferStatus.SUPERSEDED
    with pytest.raises(DomainError, match="replaced by another plan"):
        sign(session, rt, shop.contact, renegotiation)
    assert session.scalar(select(func.count()).select_from(PlanInvoice).where(
        PlanInvoice.current_key.is_not(None))) == 0
    with pytest.raises(DomainError, match="only a current plan"):
        acceptance.cancel_plan(session, plan.id, staff=staff, reason="again")
    offer_to(session, rt, shop, staff)  # the invoices can go on a new plan


def test_another_clients_contact_can_neither_see_nor_accept_nor_preview(session, rt, shop, staff, make):
    offer = offer_to(session, rt, shop, staff)
    other = make.client("Other Co")
    stranger = make.contact(other, email="eve@other.test")
    make.invoice(other, 5_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    with pytest.raises(NotFound):
        offers.offer_for_client(session, other.id, offer.public_id)
    before = counts(session)
    with pytest.raises(NotFound):
        sign(session, rt, stranger, offer, sha="a" * 64)
    with pytest.raises(NotFound):
        offers.draft(session, other.id, choice(shop), proposer=offers.Proposer.POLICY)
    with pytest.raises(NotFound):
        negotiation.counter(session, rt, offer.id, choice(shop), contact=stranger)
    assert counts(session) == before


def test_a_voided_invoice_is_refused(session, rt, shop, staff):
    billing.void_invoice(session, shop.second, reason="duplicate")
    with pytest.raises(DomainError, match=f"Invoice {shop.second.number} is void"):
        offer_to(session, rt, shop, staff)


# ---------------------------------------------------------------------------------------------------- two processes

WORKERS = 3


def _accept_in_own_process(config: dict, public_id: str, contact_id: int, start) -> str:
    from portal import create_app, db
    from portal.domain.errors import DomainError
    from portal.models import Contact
    from portal.services import agreements
    from portal.services.plans import acceptance, offers
    from portal.web.runtime import runtime

    app = create_app(config)
    try:
        with app.app_context():
            session = db.session()
            contact = session.get(Contact, contact_id)
            offer = offers.offer_for_client(session, contact.client_id, public_id)
            sha = acceptance.document(session, runtime(), offer).sha256
            session.commit()
            start.wait(timeout=60)
            signed = acceptance.SignedBy(full_name="Pat Doe", title="Owner", authority_confirmed=True,
                                         consent_confirmed=True,
                                         signature=agreements.Signature(kind="typed", typed="Pat Doe"),
                                         shown_sha256=sha)
            try:
                acceptance.accept(session, runtime(), contact, public_id, signed,
                                  meta=Meta(ip="203.0.113.9", user_agent="race", session_id="c" * 32))
            except DomainError as e:
                return f"refused: {e}"
            return "accepted"
    except Exception as e:  # reported to the parent, which asserts on it
        return f"{type(e).__name__}: {e}"
    finally:
        app.extensions["db_engine"].dispose()


def test_processes_accepting_the_same_offer_at_once_make_one_plan(app, app_config, session, rt, shop, staff):
    # the processes run on the real clock, not the test's: a first due date ahead of both
    offer = offer_to(session, rt, shop, staff, first_due_on=datetime.now(UTC).date() + timedelta(days=60))
    agreements.disclosure_document(session)
    acceptance.document(session, rt, offer)  # publishes the default template version before the race
    session.commit()
    ctx = multiprocessing.get_context("spawn")
    config = {**app_config, "EVIDENCE_KEY": None}
    with ctx.Manager() as manager:
        start = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            outcomes = pool.starmap(_accept_in_own_process,
                                    [(config, offer.public_id, shop.contact.id, start)] * WORKERS)
    assert sorted(outcomes) == ["accepted"] + ["refused: This offer was already accepted."] * (WORKERS - 1), outcomes
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(PaymentPlan)) == 1
    assert session.scalar(select(func.count()).select_from(PaymentRequest)) == 1
    assert session.scalar(select(func.count()).select_from(Agreement).where(Agreement.kind == "installment_plan")) == 1


def test_custom_dates_make_the_schedule_and_are_signed_as_offered(session, rt, shop, staff):
    dates = (date(2026, 4, 10), date(2026, 5, 20), date(2026, 7, 1))
    with pytest.raises(DomainError, match="in order"):
        offer_to(session, rt, shop, staff, frequency="custom", custom_dates=(dates[1], dates[0], dates[2]))
    offer = offer_to(session, rt, shop, staff, frequency="custom", custom_dates=dates, first_due_on=None)
    assert offer.custom_dates == "2026-04-10,2026-05-20,2026-07-01" and offer.first_due_on == dates[0]
    plan = sign(session, rt, shop.contact, offer).plan
    assert [i.due_on for i in plan.installments if i.number] == list(dates)


@pytest.mark.parametrize("ending", ["defaulted", "completed"])
def test_an_open_renegotiation_is_superseded_when_its_plan_defaults_or_completes(session, rt, shop, staff, clock,
                                                                                 ending):
    from portal.services.plans import collection, lifecycle

    plan = sign(session, rt, shop.contact, offer_to(session, rt, shop, staff, down_payment_cents=0)).plan
    renegotiation = negotiation.make_offer(session, rt, shop.client.id,
                                           choice(shop, installments=6, down_payment_cents=0,
                                                  first_due_on=date(2026, 6, 1)),
                                           staff=staff, renegotiates_plan_id=plan.id)
    if ending == "defaulted":
        day = APRIL_1 + timedelta(days=plan.grace_days + 1)
        clock.set(day)
        assert lifecycle.default_if_missed(session, rt, plan.id, day)
    else:
        collection.record_check(session, plan, amount_cents=35_000, method="check", received_on=date(2026, 3, 16),
                                staff=staff)
        assert lifecycle.complete_if_done(session, rt, plan.id, date(2026, 3, 16))
    session.refresh(plan)
    assert plan.status == ending

    session.refresh(renegotiation)
    assert renegotiation.status == OfferStatus.SUPERSEDED  # it can no longer be signed: nothing waits on it
    assert offers.open_offers(session, shop.client.id) == []
    with pytest.raises(DomainError, match="replaced by another plan"):
        sign(session, rt, shop.contact, renegotiation)
