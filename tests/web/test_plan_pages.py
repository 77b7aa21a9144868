"""The plan pages: the client's plan (schedule with paid and remaining per row, next due, pay next / another amount /
pay off, the down payment link), the admin's list (filters, outstanding on current plans, open offers) and detail
(record a check, timeline), isolation between clients (404), refusals shown with nothing changed, and CSRF."""

from __future__ import annotations

import re
import secrets
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.clock import now
from portal.domain.payments import PaymentRequestStatus
from portal.domain.plans import OfferStatus
from portal.models import LedgerAdjustment, Payment, PaymentPlan, PaymentRequest, PlanEvent, PlanOffer
from portal.services.plans import collection
from portal.services.plans.progress import progress_of
from tests.conftest import sign_in, statements_unchanged_as_rows_grow
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count
from tests.plans_fixtures import make_plan

FIRST_DUE = date(2026, 3, 23)


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def plan(session, shop):
    return make_plan(session, shop.client, [shop.first, shop.second], first_due_on=FIRST_DUE, apr=Decimal(12))


@pytest.fixture
def portal(http, shop):
    sign_in(http, shop.contact)
    return http


def requests_count(session) -> int:
    return count(session, PaymentRequest)


def test_the_client_sees_the_schedule_with_paid_and_remaining(portal, session, plan, shop):
    one = plan.installments[0]
    collection.record_check(session, plan, amount_cents=5_000, method="check", received_on=date(2026, 3, 16))

    page = text(portal.get(f"/plans/{plan.id}"))

    assert f"Payment plan {plan.reference}" in page
    assert re.search(r'data-row="1".*?\$50\.00.*?' + re.escape(f"${(one.amount_cents - 5_000) / 100:,.2f}"), page,
                     re.S)
    assert "Pay next installment" in page and "Pay off now" in page and "Pay another amount" in page
    next_due = re.search(r"<dd data-next-due>(.*?)</dd>", page).group(1)
    assert next_due == f"${(one.amount_cents - 5_000) / 100:,.2f} on Mar 23, 2026"
    assert f"/plans/{plan.id}" in text(portal.get("/"))  # the home page links to the current plan
    assert portal.get("/plans").headers["Location"].endswith(f"/plans/{plan.id}")


def test_pay_next_installment_hands_over_to_the_checkout(portal, session, plan):
    response = portal.post(f"/plans/{plan.id}/pay", data={"kind": "next"})

    assert response.status_code == 302
    request = session.scalar(select(PaymentRequest))
    assert response.headers["Location"].endswith(f"/pay/{request.public_id}")
    assert request.amount_cents == plan.installments[0].amount_cents
    assert portal.get(response.headers["Location"]).status_code == 200


def test_pay_off_now_asks_for_the_payoff_amount(portal, session, plan):
    quote = collection.payoff_quote(session, plan, date(2026, 3, 16))

    response = portal.post(f"/plans/{plan.id}/pay", data={"kind": "payoff"})

    assert response.status_code == 302
    assert session.scalar(select(PaymentRequest.amount_cents)) == quote.total_cents == 35_000  # no interest yet today


@pytest.mark.parametrize(("amount", "message"), [
    ("", "Enter the amount to pay."),
    ("abc", "is not an amount"),
    ("0", "Enter an amount above zero."),
    ("-5", "cannot be negative"),
    ("999999", "more than the plan still owes"),
])
def test_a_bad_amount_is_refused_with_a_message_and_nothing_written(portal, session, plan, amount, message):
    response = portal.post(f"/plans/{plan.id}/pay", data={"kind": "amount", "amount": amount})

    assert response.status_code == 400
    assert message in text(response)
    assert requests_count(session) == 0
    assert count(session, PlanEvent) == 0


def test_an_unknown_kind_is_refused(portal, session, plan):
    response = portal.post(f"/plans/{plan.id}/pay", data={"kind": "everything"})
    assert response.status_code == 400 and "Choose what to pay." in text(response)
    assert requests_count(session) == 0


def test_the_unpaid_down_payment_has_its_link(portal, session, make):
    client = make.client("Down Co LLC")
    contact = make.contact(client, email="ap@down.test")
    invoice = make.invoice(client, 40_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    plan = make_plan(session, client, [invoice], first_due_on=FIRST_DUE, down_payment_cents=10_000)
    request = PaymentRequest(public_id=secrets.token_urlsafe(24), client_id=client.id, contact_id=contact.id,
                             currency="USD", amount_cents=10_000, status=PaymentRequestStatus.OPEN, created_at=now())
    session.add(request)
    session.flush()
    session.get(PaymentPlan, plan.id).down_payment_request_id = request.id
    session.commit()
    sign_in(portal, contact)

    page = text(portal.get(f"/plans/{plan.id}"))

    assert "Pay the down payment" in page and f"/pay/{request.public_id}" in page
    assert "Down payment" in page


def test_another_clients_plan_is_404(http, session, plan, make):
    stranger = make.client("Bayside Law PC")
    contact = make.contact(stranger, email="ap@bayside.test")
    sign_in(http, contact)

    for response in (http.get(f"/plans/{plan.id}"), http.post(f"/plans/{plan.id}/pay", data={"kind": "next"}),
                     http.get("/plans/999999")):
        assert response.status_code == 404
        assert plan.reference not in text(response)
    assert requests_count(session) == 0
    assert "Payment plan" not in text(http.get("/"))


def test_plan_pages_need_the_right_person(http, plan):
    assert http.get(f"/plans/{plan.id}").status_code in (302, 401)
    assert http.get("/admin/plans").status_code in (302, 401, 403)


def test_the_admin_list_filters_and_totals(staff_http, session, plan, make):
    other = make.client("Bayside Law PC")
    offer = PlanOffer(public_id="offer-1", client_id=other.id, status=OfferStatus.OPEN, proposed_by="client",
                      currency="USD", balance_cents=12_345, installments=4, frequency="monthly",
                      first_due_on=FIRST_DUE, created_at=now())
    session.add(offer)
    session.commit()

    current = text(staff_http.get("/admin/plans"))
    offered = text(staff_http.get("/admin/plans?status=offered"))
    completed = text(staff_http.get("/admin/plans?status=completed"))

    assert plan.reference in current and "Outstanding on current plans: <strong>$350.00</strong>" in current
    assert "Bayside Law PC" in offered and "$123.45" in offered
    assert plan.reference not in completed and "No plans here." in completed
    assert staff_http.get("/admin/plans?status=bogus").status_code == 200  # an unknown filter shows the default


def test_the_admin_list_reads_all_its_plans_in_the_same_statements_however_many(app, staff_http, session, make,
                                                                               clock):
    """The list shows up to 500 plans with what each has paid and still owes, and the total outstanding on every
    current plan: the same few statements for one plan or many (each plan's progress was six statements, and the
    total read every current plan's again). Each row says what the plan's own page says."""
    def grow(n: int) -> None:
        for k in range(n):
            client = make.client()
            invoices = [make.invoice(client, 40_000), make.invoice(client, 20_000)]
            plan = make_plan(session, client, invoices, first_due_on=FIRST_DUE)
            if k % 2:  # every other plan part paid
                collection.record_check(session, plan, amount_cents=12_500, method="check",
                                        received_on=date(2026, 3, 16))
            session.add(PlanOffer(public_id=secrets.token_urlsafe(12), client_id=make.client().id,
                                  status=OfferStatus.OPEN, proposed_by="client", currency="USD",
                                  balance_cents=12_345, installments=4, frequency="monthly",
                                  first_due_on=FIRST_DUE, created_at=now()))
            session.commit()

    paths = ("/admin/plans", "/admin/plans?status=all", "/admin/plans?status=offered", "/admin/plan-offers/")
    grow(2)
    shown = [text(r) for r in statements_unchanged_as_rows_grow(
        app, [lambda p=p: staff_http.get(p) for p in paths], lambda: grow(4))]
    current = shown[0]
    plans = list(session.scalars(select(PaymentPlan)))
    assert len(plans) == 6 and current.count('data-plan="') == 6
    outstanding = 0
    for plan in plans:
        found = progress_of(session, plan, clock.today())
        row = re.search(rf'data-plan="{plan.id}">(.*?)</tr>', current, re.S).group(1)
        assert f"${found.paid_cents / 100:,.2f}" in row and f"${found.open_cents / 100:,.2f}" in row, row
        assert plan.client.legal_name in row
        outstanding += found.open_cents
    assert {progress_of(session, p, clock.today()).paid_cents for p in plans} == {0, 12_500}
    assert f"Outstanding on current plans: <strong>${outstanding / 100:,.2f}</strong>" in current
    assert shown[2].count("$123.45") == 6 and shown[3].count("$123.45") == 6


def test_the_admin_records_a_check_toward_the_plan(staff_http, session, plan):
    one = plan.installments[0]

    response = staff_http.post(f"/admin/plans/{plan.id}/payments", data={
        "amount": f"{one.amount_cents / 100:.2f}", "method": "check", "received_on": "2026-03-16",
        "reference": "CHK 1001", "memo": ""})

    assert response.status_code == 302
    page = text(staff_http.get(response.headers["Location"]))
    assert "recorded toward plan" in page
    assert "CHK 1001" in page  # in the payments and the timeline
    assert session.scalar(select(func.count()).select_from(Payment)) == 1
    assert plan.reference in text(staff_http.get(f"/admin/clients/{plan.client_id}?tab=plans"))


@pytest.mark.parametrize(("data", "message"), [
    ({"amount": "", "method": "check"}, "Enter the amount."),
    ({"amount": "12.345", "method": "check"}, "is not an amount"),
    ({"amount": "100", "method": "bitcoin"}, "Not a valid choice"),
    ({"amount": "100000", "method": "check"}, "more than the plan still owes"),
    ({"amount": "100", "method": "check", "received_on": "2027-01-01"}, "cannot be received in the future"),
])
def test_a_bad_check_is_refused_and_nothing_changes(staff_http, session, plan, data, message):
    response = staff_http.post(f"/admin/plans/{plan.id}/payments", data=data)

    assert response.status_code == 400
    assert message in text(response)
    assert count(session, Payment) == 0
    assert count(session, PlanEvent) == 0


def short_by_30_cents(session, plan):
    total = sum(row.amount_cents for row in plan.installments)
    collection.record_check(session, plan, amount_cents=total - 30, method="check", received_on=date(2026, 3, 16))


def test_the_admin_writes_off_a_few_cents_left_and_the_plan_completes(app, staff_http, session, plan, shop):
    assert 'id="write-off"' not in text(staff_http.get(f"/admin/plans/{plan.id}"))  # $3,000-odd is not a few cents
    short_by_30_cents(session, plan)
    page = text(staff_http.get(f"/admin/plans/{plan.id}"))
    assert 'id="write-off"' in page and "Write off $0.30" in page

    response = staff_http.post(f"/admin/plans/{plan.id}/write-off")

    assert response.status_code == 302
    done = text(staff_http.get(response.headers["Location"]))
    assert f"$0.30 written off; plan {plan.reference} is complete." in done
    assert session.get(PaymentPlan, plan.id).status == "completed"
    # the invoice shows it as its own line, apart from the money paid; its total is untouched
    contact = app.test_client()
    sign_in(contact, shop.contact)
    for page in (text(staff_http.get(f"/admin/invoices/{shop.second.id}")),
                 text(contact.get(f"/invoices/{shop.second.id}"))):
        assert re.search(r'id="write-off".*?Small balance written off \(plan PLAN-\d+\).*?&minus;\$0\.30', page, re.S)
        assert re.search(r"Paid</td><td class=\"num\">\$249\.70<", page)
        assert "$250.00" in page


def test_the_client_is_told_a_few_cents_left_are_not_charged_and_cannot_pay_them_by_card(portal, session, plan):
    short_by_30_cents(session, plan)
    page = text(portal.get(f"/plans/{plan.id}"))
    assert "$0.30 is left on this plan: less than a card can be charged" in page
    assert "Pay next installment" not in page and "Pay this amount" not in page

    refused = portal.post(f"/plans/{plan.id}/pay", data={"kind": "next"})

    assert refused.status_code == 400 and "$0.50" in text(refused)
    assert requests_count(session) == 0


def test_a_write_off_of_more_than_a_few_cents_is_refused_and_changes_nothing(staff_http, session, plan):
    response = staff_http.post(f"/admin/plans/{plan.id}/write-off")

    assert response.status_code == 302
    assert "Only a remainder below $0.50" in text(staff_http.get(response.headers["Location"]))
    assert count(session, LedgerAdjustment) == 0 and count(session, PlanEvent) == 0
    assert session.get(PaymentPlan, plan.id).status == "current"


class TestCsrf:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["WTF_CSRF_ENABLED"] = True
        return app_config

    def test_a_plan_payment_needs_the_forms_token(self, portal, session, plan):
        forged = portal.post(f"/plans/{plan.id}/pay", data={"kind": "next"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', text(portal.get(f"/plans/{plan.id}"))).group(1)
        real = portal.post(f"/plans/{plan.id}/pay", data={"kind": "next", "csrf_token": token})

        assert forged.status_code == 400
        assert real.status_code == 302
        assert requests_count(session) == 1

    def test_a_check_needs_the_forms_token(self, staff_http, session, plan):
        forged = staff_http.post(f"/admin/plans/{plan.id}/payments", data={"amount": "10", "method": "check"})
        page = text(staff_http.get(f"/admin/plans/{plan.id}"))
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        real = staff_http.post(f"/admin/plans/{plan.id}/payments",
                               data={"amount": "10", "method": "check", "csrf_token": token})

        assert forged.status_code == 400
        assert real.status_code == 302
        assert count(session, Payment) == 1

    def test_a_write_off_needs_the_forms_token(self, staff_http, session, plan):
        short_by_30_cents(session, plan)
        forged = staff_http.post(f"/admin/plans/{plan.id}/write-off")
        token = re.search(r'id="write-off".*?name="csrf_token" value="([^"]+)"',
                          text(staff_http.get(f"/admin/plans/{plan.id}")), re.S).group(1)
        real = staff_http.post(f"/admin/plans/{plan.id}/write-off", data={"csrf_token": token})

        assert forged.status_code == 400
        assert real.status_code == 302
        assert count(session, LedgerAdjustment) == 1


def test_a_signed_plan_links_its_agreement_and_down_payment(portal, session, shop, make, rt):
    from tests.integration.test_plan_offers import offer_to, sign

    done = sign(session, rt, shop.contact, offer_to(session, rt, shop, make.staff(), down_payment_cents=5_000))
    session.expire_all()
    agreement = done.agreement

    page = text(portal.get(f"/plans/{done.plan.id}"))

    assert f"/pay/{done.down_payment.public_id}" in page  # the down payment is still unpaid
    before = count(session, PaymentRequest)
    next_one = portal.post(f"/plans/{done.plan.id}/pay", data={"kind": "next"})
    assert next_one.headers["Location"].endswith(f"/pay/{done.down_payment.public_id}")  # not a second request
    assert count(session, PaymentRequest) == before
    assert agreement.signed_pdf is not None  # made when it was signed
    assert f"/agreements/{agreement.reference}/pdf" in page
    assert portal.get(f"/agreements/{agreement.reference}/pdf").mimetype == "application/pdf"


PAY_BY_CARD = {"attempt": "1", "method": "card", "card_number": "4242 4242 4242 4242", "card_expiry": "12/30",
               "card_cvc": "123"}


def test_a_down_payment_recorded_as_a_check_withdraws_its_checkout(portal, session, shop, make, rt, clock,
                                                                  sandbox_gateway):
    from portal.models import ChargeAttempt
    from tests.integration.test_plan_offers import offer_to, sign

    done = sign(session, rt, shop.contact, offer_to(session, rt, shop, make.staff(), down_payment_cents=5_000))
    plan, public_id = done.plan, done.down_payment.public_id
    collection.record_check(session, plan, amount_cents=2_000, method="check", received_on=clock.today())
    assert portal.get(f"/pay/{public_id}").status_code == 200  # $30.00 of the down payment still owed: still open

    collection.record_check(session, plan, amount_cents=3_000, method="check", received_on=clock.today())
    payments_before = count(session, Payment)
    page = portal.get(f"/pay/{public_id}")
    paid = portal.post(f"/pay/{public_id}", data={"nonce": public_id, **PAY_BY_CARD})  # from the browser's history

    assert page.status_code == paid.status_code == 410
    assert "no longer asked for" in text(page) and "Nothing was charged" in text(paid)
    assert count(session, ChargeAttempt) == 0 and count(session, Payment) == payments_before
    assert session.get(PaymentRequest, done.down_payment.id).status == PaymentRequestStatus.WITHDRAWN
    assert f"/pay/{public_id}" not in text(portal.get(f"/plans/{plan.id}"))
    collection.record_check(session, plan, amount_cents=1_000, method="check", received_on=clock.today())
    assert session.get(PaymentRequest, done.down_payment.id).status == PaymentRequestStatus.WITHDRAWN  # stays so


def test_canceling_a_plan_withdraws_its_unpaid_down_payments_checkout(portal, session, shop, make, rt):
    from portal.services.plans import acceptance
    from tests.integration.test_plan_offers import offer_to, sign

    staff = make.staff()
    done = sign(session, rt, shop.contact, offer_to(session, rt, shop, staff, down_payment_cents=5_000))

    acceptance.cancel_plan(session, done.plan.id, staff=staff, reason="The client asked to pay in full instead")

    assert session.get(PaymentRequest, done.down_payment.id).status == PaymentRequestStatus.WITHDRAWN
    assert portal.get(f"/pay/{done.down_payment.public_id}").status_code == 410


def test_the_admin_detail_links_the_offer_renegotiation_and_cancel(staff_http, session, plan):
    page = text(staff_http.get(f"/admin/plans/{plan.id}"))

    assert f'href="/admin/plan-offers/{plan.offer_id}"' in page
    assert f"/admin/clients/{plan.client_id}/plan-offer?renegotiate={plan.id}" in page
    assert f'action="/admin/plans/{plan.id}/cancel"' in page
    canceled = staff_http.post(f"/admin/plans/{plan.id}/cancel", data={"reason": "Client paid in full by wire"})

    assert canceled.headers["Location"].endswith(f"/admin/plans/{plan.id}")
    after = text(staff_http.get(canceled.headers["Location"]))
    assert "Canceled" in after and "Record a check" not in after and "Pay off" not in after
    assert plan.reference in text(staff_http.get("/admin/plans?status=canceled"))
    assert plan.reference not in text(staff_http.get("/admin/plans"))
