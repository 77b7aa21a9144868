"""The plan offer pages over HTTP: the policy settings, the MSP's offer form with its preview (the no-script Preview
button and the JSON the page's script reads), the client's banner, options, proposal, counter and signing, and
isolation: another client's contact gets 404 on every offer URL and on the preview."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from portal.models import PaymentPlan, PlanOffer, PlanPolicy
from portal.services.plans import negotiation
from portal.services.plans.offers import Choice
from tests.conftest import sign_in, statements_run
from tests.payments_fixtures import *  # noqa: F403

APRIL_1 = "2026-04-01"


def offer_form(shop_, **kw) -> dict:
    data = {"invoice_ids": [str(shop_.first.id), str(shop_.second.id)], "down_kind": "amount",
            "down_payment": "50.00", "count_kind": "count", "installments": "3", "frequency": "monthly",
            "first_due_on": APRIL_1, "apr_percent": "0", "pay_now_invoice_id": "none"}
    data.update(kw)
    return data


def offers_count(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(PlanOffer))


@pytest.fixture
def staff(make):
    return make.staff()


@pytest.fixture
def admin_http(http, staff):
    sign_in(http, staff)
    return http


@pytest.fixture
def contact_http(http, shop):
    sign_in(http, shop.contact)
    return http


def make_offer(session, rt, shop_, staff_, **kw):
    values = {"invoice_ids": (shop_.first.id, shop_.second.id), "down_payment_cents": 5_000, "installments": 3,
              "frequency": "monthly", "first_due_on": date(2026, 4, 1)}
    values.update(kw)
    return negotiation.make_offer(session, rt, shop_.client.id, Choice(**values), staff=staff_)


# ---------------------------------------------------------------------------------------------------- staff

def test_policy_page_shows_the_usury_warning_and_saves(admin_http, session):
    page = admin_http.get("/admin/plan-policy")
    assert page.status_code == 200 and b'id="usury-warning"' in page.data and b"Usury laws" in page.data
    data = {"self_service": "y", "max_balance": "5000.00", "max_installments": "4", "min_down_percent": "15",
            "frequencies": ["monthly", "biweekly"], "apr_percent": "20", "max_apr_percent": "18", "grace_days": "7",
            "reminder_days": "3"}
    refused = admin_http.post("/admin/plan-policy", data=data)
    assert refused.status_code == 400 and b"cannot be more than the maximum APR" in refused.data
    assert session.scalar(select(func.count()).select_from(PlanPolicy)) == 0
    saved = admin_http.post("/admin/plan-policy", data={**data, "apr_percent": "6"})
    assert saved.status_code == 302
    row = session.get(PlanPolicy, 1)
    assert (row.max_balance_cents, row.max_installments, row.frequencies, row.grace_days) == (
        500_000, 4, "biweekly,monthly", 7)
    assert b"plan policy" in admin_http.get("/admin/settings").data


def test_offer_form_previews_without_script_and_sends(admin_http, session, shop, outbox):
    url = f"/admin/clients/{shop.client.id}/plan-offer"
    page = admin_http.get(url)
    assert page.status_code == 200 and shop.first.number.encode() in page.data
    assert b'id="note-law-warning"' in page.data and b"js/plan_preview.js" in page.data

    preview = admin_http.post(url, data={**offer_form(shop), "action": "preview"})
    assert preview.status_code == 200 and b"$100.00" in preview.data  # 300.00 over 3 payments
    assert offers_count(session) == 0

    refused = admin_http.post(url, data={**offer_form(shop, apr_percent="25"), "action": "send"})
    assert refused.status_code == 400 and b"The APR may not exceed 18%" in refused.data
    assert offers_count(session) == 0

    sent = admin_http.post(url, data={**offer_form(shop, message="Three months"), "action": "send"})
    assert sent.status_code == 302
    offer = session.scalar(select(PlanOffer))
    assert sent.headers["Location"].endswith(f"/admin/plan-offers/{offer.id}")
    detail = admin_http.get(sent.headers["Location"])
    assert b"Offer sent" in detail.data and b"Withdraw this offer" in detail.data
    assert b"Offer a payment plan" in admin_http.get(f"/admin/clients/{shop.client.id}?tab=plans").data


def test_the_json_preview_runs_the_schedule_and_writes_nothing(admin_http, session, shop):
    url = f"/admin/clients/{shop.client.id}/plan-offer/preview"
    good = admin_http.post(url, data=offer_form(shop, apr_percent="12", installments="12"))
    body = good.get_json()
    assert body["ok"] and body["installments"] == 12 and body["apr"] == "12%"
    assert body["rows"][0] == {"number": 1, "due_on": "Apr 1, 2026", "amount": "$26.65", "interest": "$3.00",
                               "principal": "$23.65", "balance_after": "$276.35"}
    bad = admin_http.post(url, data=offer_form(shop, down_payment="400.00")).get_json()
    assert not bad["ok"] and "cannot be more than the balance" in bad["error"]
    assert offers_count(session) == 0
    assert admin_http.get(url).status_code == 405  # POST only


def test_admin_answers_a_client_proposal(admin_http, session, rt, shop):
    proposal = negotiation.propose(session, rt, shop.contact, Choice(
        invoice_ids=(shop.first.id,), down_payment_cents=0, installments=8, frequency="monthly",
        first_due_on=date(2026, 4, 1)), message="Eight months")
    session.commit()
    assert b"Plan proposals (1)" in admin_http.get("/admin/").data
    page = admin_http.get(f"/admin/plan-offers/{proposal.id}")
    assert b"Eight months" in page.data and b"Outside the policy" in page.data and b"Approve" in page.data
    empty = admin_http.post(f"/admin/plan-offers/{proposal.id}/reject", data={"reason": ""})
    assert empty.status_code == 302
    assert session.get(PlanOffer, proposal.id).status == "open"
    counter = admin_http.post(f"/admin/plan-offers/{proposal.id}/counter",
                              data={**offer_form(shop, invoice_ids=[str(shop.first.id)], down_payment="10.00",
                                                 installments="4"), "action": "send"})
    assert counter.status_code == 302
    session.expire_all()
    assert session.get(PlanOffer, proposal.id).status == "countered"
    assert offers_count(session) == 2
    assert b"Plan proposals (" not in admin_http.get("/admin/").data  # answered: nothing waits for the MSP


# ---------------------------------------------------------------------------------------------------- client

def test_overdue_client_sees_the_banner_and_picks_signs_and_pays(contact_http, session, shop):
    home = contact_http.get("/")
    assert b'id="plan-banner"' in home.data and b"Set up a payment plan" in home.data
    options = contact_http.get("/plan-options")
    assert options.status_code == 200 and b"up to <strong>6</strong> payments" in options.data
    assert b'id="schedule-table"' in options.data

    picked = contact_http.post("/plan-options", data={
        "invoice_ids": [str(shop.first.id), str(shop.second.id)], "down_payment": "50.00", "installments": "4",
        "frequency": "monthly", "first_due_on": APRIL_1, "action": "accept"})
    assert picked.status_code == 302 and "/sign" in picked.headers["Location"]
    sign_page = contact_http.get(picked.headers["Location"])
    assert sign_page.status_code == 200 and b"Installment plan agreement" in sign_page.data
    sha = re.search(rb'id="document-hash">([0-9a-f]{64})<', sign_page.data).group(1).decode()
    signed = contact_http.post(picked.headers["Location"], data={
        "document_sha256": sha, "consent": "y", "full_name": "Pat Doe", "title": "Office Manager", "authority": "y",
        "signature_kind": "typed", "typed_signature": "Pat Doe"})
    assert signed.status_code == 302 and "/pay/" in signed.headers["Location"]  # the down payment's checkout
    plan = session.scalar(select(PaymentPlan))
    assert plan.status == "current" and plan.down_payment_cents == 5_000
    assert contact_http.get(signed.headers["Location"]).status_code == 200


def test_an_offer_waiting_is_what_the_banner_shows(contact_http, session, rt, shop, staff):
    """Overdue, with an offer from the MSP not answered yet: the banner points to the offer, not to setting up a
    plan; once the offer is withdrawn, the overdue amount and the way to a plan come back."""
    offer = make_offer(session, rt, shop, staff)
    home = contact_http.get("/").get_data(as_text=True)
    assert "A payment plan is waiting for you." in home and f"/plan-offers/{offer.public_id}" in home
    assert "is overdue." not in home
    negotiation.withdraw(session, offer.id, staff=staff, reason="Mistake")
    home = contact_http.get("/").get_data(as_text=True)
    assert "A payment plan is waiting for you." not in home
    assert "is overdue." in home and "Set up a payment plan" in home


def test_no_banner_when_nothing_is_overdue(app, http, make):
    """Nor the plannable invoices worked out (balances, money in flight, plans and open offers): with nothing
    overdue by the kept sums, none of them can be overdue. What is overdue is the home's own summary's figure:
    the banner asks only whether an offer is waiting."""
    client = make.client("On Time Inc")
    contact = make.contact(client)
    make.invoice(client, 10_000, due_date=date(2026, 4, 30))
    sign_in(http, contact)
    pages = []
    statements = statements_run(app, lambda: pages.append(http.get("/")))
    assert pages[0].status_code == 200 and b'id="plan-banner"' not in pages[0].data
    assert not [s for s in statements if "plan_offer_invoices" in s], statements
    assert len([s for s in statements if "FROM plan_offers" in s]) == 1, statements
    assert not [s for s in statements if s.startswith("SELECT EXISTS")], statements  # no overdue check of its own


def test_client_proposes_and_counters(contact_http, session, rt, shop, staff):
    proposed = contact_http.post("/plan-options", data={
        "invoice_ids": [str(shop.first.id)], "down_payment": "0", "installments": "10", "frequency": "monthly",
        "first_due_on": APRIL_1, "message": "Ten months please", "action": "propose"})
    assert proposed.status_code == 302
    page = contact_http.get(proposed.headers["Location"])
    assert b"waiting for our answer" in page.data and b"Ten months please" in page.data

    offer = make_offer(session, rt, shop, staff, invoice_ids=(shop.second.id,))
    session.commit()
    counter = contact_http.post(f"/plan-offers/{offer.public_id}/counter", data={
        "invoice_ids": [str(shop.second.id)], "down_payment": "25.00", "installments": "5", "frequency": "monthly",
        "first_due_on": APRIL_1, "message": "Five?"})
    assert counter.status_code == 302
    session.expire_all()
    assert session.get(PlanOffer, offer.id).status == "countered"
    history = contact_http.get(counter.headers["Location"])
    assert b"Offer sent" in history.data and b"Counter-offer" in history.data


def test_withdrawn_offer_cannot_be_signed(contact_http, session, rt, shop, staff):
    offer = make_offer(session, rt, shop, staff)
    negotiation.withdraw(session, offer.id, staff=staff, reason="Mistake")
    page = contact_http.get(f"/plan-offers/{offer.public_id}/sign", follow_redirects=True)
    assert b"This offer was withdrawn" in page.data
    assert session.scalar(select(func.count()).select_from(PaymentPlan)) == 0


def test_another_clients_contact_gets_404_everywhere(http, session, rt, shop, staff, make):
    offer = make_offer(session, rt, shop, staff)
    other = make.client("Other Co")
    stranger = make.contact(other, email="eve@other.test")
    make.invoice(other, 5_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    sign_in(http, stranger)
    for url in (f"/plan-offers/{offer.public_id}", f"/plan-offers/{offer.public_id}/sign",
                f"/plan-offers/{offer.public_id}/counter"):
        assert http.get(url).status_code == 404, url
    for url in (f"/plan-offers/{offer.public_id}/sign", f"/plan-offers/{offer.public_id}/reject",
                f"/plan-offers/{offer.public_id}/withdraw"):
        assert http.post(url, data={"reason": "x"}).status_code == 404, url
    foreign = http.post("/plan-options/preview", data={"invoice_ids": [str(shop.first.id)], "installments": "3",
                                                        "frequency": "monthly", "first_due_on": APRIL_1})
    assert foreign.status_code == 404
    session.expire_all()
    assert session.get(PlanOffer, offer.id).status == "open"
    assert session.scalar(select(func.count()).select_from(PaymentPlan)) == 0


def test_client_preview_is_scoped_and_within_policy(contact_http, shop):
    body = contact_http.post("/plan-options/preview", data={
        "invoice_ids": [str(shop.first.id), str(shop.second.id)], "down_payment": "50.00", "installments": "12",
        "frequency": "monthly", "first_due_on": APRIL_1}).get_json()
    assert not body["ok"] and body["error"] == "At most 6 payments are allowed."
    proposal = contact_http.post("/plan-options/preview", data={
        "invoice_ids": [str(shop.first.id)], "down_payment": "0", "installments": "12", "frequency": "monthly",
        "first_due_on": APRIL_1, "action": "propose"}).get_json()
    assert proposal["ok"] and "At most 6 payments" in proposal["outside_policy"]


class TestCsrf:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["WTF_CSRF_ENABLED"] = True
        return app_config

    def test_the_preview_needs_the_pages_token(self, contact_http, shop):
        data = {"invoice_ids": [str(shop.first.id)], "down_payment": "10.00", "installments": "3",
                "frequency": "monthly", "first_due_on": APRIL_1}
        assert contact_http.post("/plan-options/preview", data=data).status_code == 400
        page = contact_http.get("/plan-options").data.decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        body = contact_http.post("/plan-options/preview", data={**data, "csrf_token": token}).get_json()
        assert body["ok"] and body["installments"] == 3


def test_signing_an_offer_without_down_payment_goes_to_the_plan_page(contact_http, session, rt, shop, staff):
    offer = make_offer(session, rt, shop, staff, down_payment_cents=0)
    session.commit()
    url = f"/plan-offers/{offer.public_id}/sign"
    sha = re.search(rb'id="document-hash">([0-9a-f]{64})<', contact_http.get(url).data).group(1).decode()
    stale = contact_http.post(url, data={
        "document_sha256": "0" * 64, "consent": "y", "full_name": "Pat Doe", "title": "Owner", "authority": "y",
        "signature_kind": "typed", "typed_signature": "Pat Doe"})
    assert stale.status_code == 400 and b"changed since you opened it" in stale.data
    signed = contact_http.post(url, data={
        "document_sha256": sha, "consent": "y", "full_name": "Pat Doe", "title": "Owner", "authority": "y",
        "signature_kind": "typed", "typed_signature": "Pat Doe"})
    plan = session.scalar(select(PaymentPlan))
    assert signed.status_code == 302 and signed.headers["Location"].endswith(f"/plans/{plan.id}")
    again = contact_http.post(url, data={
        "document_sha256": sha, "consent": "y", "full_name": "Pat Doe", "title": "Owner", "authority": "y",
        "signature_kind": "typed", "typed_signature": "Pat Doe"}, follow_redirects=True)
    assert b"This offer was already accepted." in again.data  # back on the offer page, which says so
    assert session.scalar(select(func.count()).select_from(PaymentPlan)) == 1
    assert f"Your plan {plan.reference}".encode() in contact_http.get(f"/plan-offers/{offer.public_id}").data


def test_the_plan_documents_are_templates_the_msp_can_review(admin_http):
    for kind, title in (("installment_plan", b"Installment plan agreement"), ("promissory_note", b"Promissory note")):
        page = admin_http.get(f"/admin/agreements/templates/{kind}")
        assert page.status_code == 200 and title in page.data, kind


def test_staff_cancel_a_plan_with_a_reason_and_renegotiate_from_its_invoices(admin_http, session, rt, shop, staff):
    from portal.services import agreements
    from portal.services.agreements.chain import Meta
    from portal.services.plans import acceptance

    offer = make_offer(session, rt, shop, staff, down_payment_cents=0)
    signed = acceptance.SignedBy(full_name="Pat Doe", title="Owner", authority_confirmed=True, consent_confirmed=True,
                                 signature=agreements.Signature(kind="typed", typed="Pat Doe"),
                                 shown_sha256=acceptance.document(session, rt, offer).sha256)
    plan = acceptance.accept(session, rt, shop.contact, offer.public_id, signed, meta=Meta()).plan
    session.commit()

    page = admin_http.get(f"/admin/clients/{shop.client.id}/plan-offer?renegotiate={plan.id}")
    assert page.status_code == 200 and f"Renegotiate {plan.reference}".encode() in page.data
    assert re.search(rb'checked[^>]*value="%d"|value="%d"[^>]*checked' % (shop.first.id, shop.first.id), page.data)
    for bad in ("99999", "99999999999999999999", "-1", "x"):
        assert admin_http.get(f"/admin/clients/{shop.client.id}/plan-offer?renegotiate={bad}").status_code == 404

    admin_http.post(f"/admin/plans/{plan.id}/cancel", data={"reason": ""})
    session.expire_all()
    assert session.get(PaymentPlan, plan.id).status == "current"
    done = admin_http.post(f"/admin/plans/{plan.id}/cancel", data={"reason": "Client sold the business"})
    assert done.status_code == 302
    session.expire_all()
    assert session.get(PaymentPlan, plan.id).status == "canceled"


def test_the_open_offers_list(admin_http, session, rt, shop, staff):
    make_offer(session, rt, shop, staff, invoice_ids=(shop.second.id,))
    negotiation.propose(session, rt, shop.contact, Choice(invoice_ids=(shop.first.id,), down_payment_cents=0,
                                                      installments=2, frequency="monthly",
                                                      first_due_on=date(2026, 4, 1)), message="Two")
    session.commit()
    page = admin_http.get("/admin/plan-offers/")
    assert b"Waiting for your answer (1)" in page.data and b"Waiting for the client (1)" in page.data
