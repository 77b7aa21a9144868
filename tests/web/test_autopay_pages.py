"""Autopay over HTTP: the client pages (sandbox form, authorization, pending bank account, isolation), the admin
pages (settings refused out of range, per-client lock, export, campaign) and onboarding end to end."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.clock import now
from portal.models import (
    Agreement,
    AutopayEnrollment,
    AutopayOffer,
    AutopaySettings,
    Client,
    OnboardingInvitation,
    SavedPaymentMethod,
)
from portal.services import agreements as svc
from portal.services.autopay import incentives, methods, onboarding, rules
from tests.conftest import sign_in, statements_unchanged_as_rows_grow
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import read_outbox
from tests.web.agreements.conftest import publish_terms, sign_typed

CARD = {"method": "card", "card_number": "4242 4242 4242 4242", "card_expiry": "04/31", "card_cvc": "123"}
BANK = {"method": "us_bank_account", "routing_number": "110000000", "account_number": "000123456789"}


def nonce(body: str) -> str:
    return re.search(r'name="nonce" type="hidden" value="([^"]+)"', body).group(1)


def sha(body: str) -> str:
    return re.search(r'name="document_sha256" type="hidden" value="([0-9a-f]{64})"', body).group(1)


def add(http, fields) -> object:
    page = http.get("/autopay/methods/new")
    assert page.status_code == 200 and "SANDBOX" in page.text
    return http.post("/autopay/methods/new", data={**fields, "nonce": nonce(page.text)})


def authorize(http, method_id: int, **extra):
    page = http.get(f"/autopay/methods/{method_id}/authorize")
    assert page.status_code == 200, page.text
    data = {"document_sha256": sha(page.text), "consent": "y", "role": "default", "full_name": "Pat Doe",
            "title": "Office Manager", "authority": "y", "signature_kind": "typed", "typed_signature": "Pat Doe",
            **extra}
    return http.post(f"/autopay/methods/{method_id}/authorize", data=data)


@pytest.fixture
def client_http(http, shop, sandbox_gateway):
    sign_in(http, shop.contact)
    return http


def test_a_contact_saves_a_card_signs_and_autopay_is_on(client_http, session, shop, outbox):
    saved = add(client_http, CARD)
    assert saved.status_code == 302 and "/authorize" in saved.location
    method = session.scalar(select(SavedPaymentMethod))
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == ("visa", "4242", 4, 2031)

    page = client_http.get(f"/autopay/methods/{method.id}/authorize")
    assert "Visa ending 4242" in page.text and "Autopay authorization" in page.text
    done = authorize(client_http, method.id)
    assert done.status_code == 302

    listing = client_http.get("/autopay")
    assert "Autopay is on" in listing.text and "Autopay method" in listing.text
    agreement = session.scalar(select(Agreement).where(Agreement.kind == "card_authorization"))
    assert agreement.reference in listing.text
    assert client_http.get(f"/agreements/{agreement.reference}").status_code == 200  # readable afterwards
    assert any("autopay authorization" in m["Subject"].lower() for m in read_outbox(outbox))


def test_a_pending_bank_account_is_shown_pending_and_cannot_be_authorized(client_http, session):
    saved = add(client_http, {**BANK, "bank_verification": "microdeposits"})
    assert saved.status_code == 302 and saved.location.endswith("/autopay")
    method = session.scalar(select(SavedPaymentMethod))
    assert method.status == methods.PENDING
    assert "Pending verification" in client_http.get("/autopay").text

    refused = client_http.get(f"/autopay/methods/{method.id}/authorize", follow_redirects=True)
    assert "not verified yet" in refused.text
    wrong = client_http.post(f"/autopay/methods/{method.id}/verify", data={"amount_1": "1", "amount_2": "2"})
    assert wrong.status_code == 400 and "do not match" in wrong.text
    assert session.scalar(select(func.count(Agreement.id))) == 0

    right = client_http.post(f"/autopay/methods/{method.id}/verify", data={"amount_1": "32", "amount_2": "45"})
    assert right.status_code == 302
    assert authorize(client_http, method.id).status_code == 302
    assert rules.is_enrolled(session, method.client_id)


def test_bad_card_input_is_refused_with_a_message(client_http, session):
    refused = add(client_http, {**CARD, "card_number": "4000 0000 0000 0002"})
    assert refused.status_code == 400 and "declined" in refused.text.lower()
    short = add(client_http, {**CARD, "card_cvc": ""})
    assert short.status_code == 400 and "security code" in short.text
    assert session.scalar(select(func.count(SavedPaymentMethod.id))) == 0


def test_another_clients_method_is_404_everywhere(client_http, session, make, shop, sandbox_gateway, rt):
    other = make.contact(make.client("Other Co"))
    from datetime import UTC, datetime

    from portal.gateways.payments import MandateAcceptance
    theirs = methods.save(session, rt, other, methods.NewMethod(token="pm_card_visa", nonce="n" * 20),
                          MandateAcceptance(ip_address="1.2.3.4", user_agent="x",
                                            accepted_at=datetime(2025, 1, 1, tzinfo=UTC)))
    for url in (f"/autopay/methods/{theirs.id}/authorize", f"/autopay/methods/{theirs.id}/verify"):
        assert client_http.get(url).status_code == 404
    for url in (f"/autopay/methods/{theirs.id}/remove", f"/autopay/methods/{theirs.id}/role"):
        assert client_http.post(url, data={"role": "default"}).status_code == 404
    assert session.get(SavedPaymentMethod, theirs.id).status == methods.ACTIVE


def test_a_tampered_document_hash_signs_nothing(client_http, session):
    add(client_http, CARD)
    method = session.scalar(select(SavedPaymentMethod))
    refused = authorize(client_http, method.id, document_sha256="0" * 64)
    assert refused.status_code == 400 and "changed since you opened it" in refused.text
    assert not rules.is_enrolled(session, method.client_id)


# --- admin ----------------------------------------------------------------------------------------------------


def settings_form(**changes) -> dict:
    return {"timing": "on_due_date", "offset_days": "", "day_of_month": "", "cap": "", "scope": "all",
            "cards": "y", "banks": "y", "use_fallback": "y", "notice_days": "3", "retry_days": "3, 5, 7",
            "incentive_kind": "none", "discount_percent": "", "stop_after_failures": "3", **changes}


@pytest.mark.parametrize(("changes", "message"), [
    ({"timing": "day_of_month", "day_of_month": "32"}, "between 1 and 31"),
    ({"cap": "0.10"}, "at least"),
    ({"timing": "days_after_due", "offset_days": "90"}, "between 1 and 30"),
    ({"incentive_kind": "discount", "discount_percent": "abc"}, "not a number"),
])
def test_admin_settings_out_of_range_are_refused(staff_http, session, changes, message):
    refused = staff_http.post("/admin/autopay", data=settings_form(**changes))
    assert refused.status_code == 400 and message in refused.text
    assert session.get(AutopaySettings, 1) is None


def test_admin_saves_settings_locks_a_client_and_sees_adoption(staff_http, session, shop):
    saved = staff_http.post("/admin/autopay", data=settings_form(
        incentive_kind="discount", discount_percent="5", required_for_new_clients="y"))
    assert saved.status_code == 303
    row = session.get(AutopaySettings, 1)
    assert (row.incentive_kind, row.discount_percent, row.required_for_new_clients) == ("discount", Decimal("5"),
                                                                                          True)
    locked = staff_http.post(f"/admin/clients/{shop.client.id}/autopay", data={"locked": "y", "timing": ""})
    assert locked.status_code == 303 and rules.rules_for(session, shop.client.id).locked
    bad = staff_http.post(f"/admin/clients/{shop.client.id}/autopay",
                          data={"timing": "day_of_month", "day_of_month": "0"})
    assert bad.status_code == 400 and "between 1 and 31" in bad.text
    overview = staff_http.get("/admin/autopay")
    assert overview.status_code == 200 and "0 of 1" in overview.text
    assert staff_http.get(f"/admin/clients/{shop.client.id}/autopay").status_code == 200


def test_campaign_offer_is_sent_opened_and_enrollment_tracked(staff_http, app, session, shop, sandbox_gateway,
                                                               outbox):
    http = app.test_client()  # the client's browser, beside the staff one
    sent = staff_http.post("/admin/autopay/campaign", data={"client_id": [str(shop.client.id)], "campaign": "Q1"})
    assert sent.status_code == 303
    offer = session.scalar(select(AutopayOffer))
    assert offer.campaign == "Q1" and offer.opened_at is None
    email = [m for m in read_outbox(outbox) if "automatically" in m["Subject"]][0]
    link = re.search(r"http://localhost(/autopay/offer/\S+)", email.get_body(("plain",)).get_content()).group(1)

    http.get(link)
    session.expire_all()
    assert session.get(AutopayOffer, offer.id).opened_at is not None
    sign_in(http, shop.contact)
    add(http, CARD)
    authorize(http, session.scalar(select(SavedPaymentMethod)).id)
    session.expire_all()
    assert session.get(AutopayOffer, offer.id).enrolled_at is not None
    assert "Q1" in staff_http.get("/admin/autopay/campaign").text


def test_the_campaign_shows_a_page_of_clients_not_on_autopay_at_a_time(staff_http, session, make, shop):
    """A hundred to pick from a page (all 10,000 of an MSP's clients as checkboxes took ~0.3 s to draw)."""
    for n in range(105):
        make.client(f"Candidate {n:03d}")
    total = session.scalar(select(func.count()).select_from(Client))
    first = staff_http.get("/admin/autopay/campaign").text
    assert first.count('name="client_id"') == 100 and f"Page 1 of 2 · {total} in all" in first
    second = staff_http.get("/admin/autopay/campaign?page=2").text
    assert second.count('name="client_id"') == total - 100 and "Candidate 104" in second
    assert "Candidate 104" not in first and 'href="/admin/autopay/campaign?page=1"' in second


def test_discount_export_lists_the_adjustment(staff_http, session, shop):
    incentives.record_discount(session, shop.first, 500, attempt_id=7)
    session.commit()
    export = staff_http.get("/admin/autopay/discounts.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert shop.first.number in export.text and ",5.00,USD,7" in export.text


# --- onboarding end to end ------------------------------------------------------------------------------------

def test_the_onboarding_list_reads_every_invited_client_in_the_same_statements(staff_http, app, session, make,
                                                                                sandbox_gateway, rt):
    """The settings page lists each invited client's latest invitation and where it stands: read for all of them
    at once, not four statements a client (an autopay campaign invites hundreds), and each status is what
    ``onboarding.progress`` says of that client alone."""
    publish_terms(session, make.staff(email="second@msp.test"))
    staff = make.staff(email="third@msp.test")

    def grow(n: int) -> None:
        for k in range(n):
            client = make.client()
            contact = make.contact(client)
            onboarding.onboard(session, rt, client, contact, staff=staff)
            if k % 3 == 1:  # terms signed
                sign_typed(session, svc.terms_for_contact(session, rt, contact, meta=svc.Meta()), contact,
                           name=contact.name)
            elif k % 3 == 2:  # on autopay, terms not signed yet
                session.add(AutopayEnrollment(client_id=client.id, enrolled=True, updated_at=now()))
                session.commit()

    grow(1)
    [shown] = statements_unchanged_as_rows_grow(app, [lambda: staff_http.get("/admin/autopay").text],
                                                lambda: grow(5))
    found = onboarding.statuses(session)
    assert found == [(invitation, onboarding.progress(session, invitation).status) for invitation, _ in found]
    assert sorted(status for _, status in found) == ["autopay_on", "invited", "invited", "invited",
                                                     "terms_signed", "terms_signed"]  # k % 3 of 0, 0-4
    assert all(invitation.client.legal_name in shown and invitation.contact.email in shown
               for invitation, _ in found)


@pytest.mark.parametrize("required", [True, False])
def test_onboarding_end_to_end(staff_http, app, session, make, sandbox_gateway, outbox, rt, required):
    admin = make.staff(email="second@msp.test")
    publish_terms(session, admin)
    if required:
        staff_http.post("/admin/autopay", data=settings_form(required_for_new_clients="y"))
    client = make.client("New Clinic LLC")
    contact = make.contact(client, email="office@newclinic.test", name="Pat Doe")

    assert staff_http.post(f"/admin/clients/{client.id}/autopay/onboard").status_code == 303
    assert staff_http.post(f"/admin/clients/{client.id}/autopay/onboard").status_code == 303  # refused: resend
    assert session.scalar(select(func.count(OnboardingInvitation.id))) == 1
    assert staff_http.post(f"/admin/clients/{client.id}/autopay/resend").status_code == 303
    emails = [m for m in read_outbox(outbox) if "set up your billing" in m["Subject"]]
    assert len(emails) == 2
    links = [re.search(r"http://localhost(/welcome/\S+)", m.get_body(("plain",)).get_content()).group(1)
             for m in emails]

    browser = app.test_client()
    answers = {link: browser.get(link).status_code for link in links}
    assert sorted(answers.values()) == [200, 400]  # the resend's link works; the first one was replaced
    link = next(link for link, code in answers.items() if code == 200)
    started = browser.post(link)
    assert started.status_code == 302 and started.location.endswith("/onboarding")
    assert "Payment terms" in browser.get("/onboarding").text

    agreement = svc.terms_for_contact(session, rt, contact, meta=svc.Meta())
    sign_typed(session, agreement, contact, name="Pat Doe")
    step2 = browser.get("/onboarding").text
    assert "Step 2: autopay" in step2
    assert ("skip-autopay" in step2) is not required
    if required:
        refused = browser.post("/onboarding/skip", follow_redirects=True)
        assert "asks every new client to set up autopay" in refused.text
        assert "Terms signed" in staff_http.get(f"/admin/clients/{client.id}/autopay").text
    session.expire_all()
    assert session.scalar(select(OnboardingInvitation)).status != "complete"

    add(browser, CARD)
    method = session.scalar(select(SavedPaymentMethod).where(SavedPaymentMethod.client_id == client.id))
    done = authorize(browser, method.id)
    assert done.status_code == 302 and done.location.endswith("/onboarding")
    assert "You are all set" in browser.get("/onboarding").text
    session.expire_all()
    invitation = session.scalar(select(OnboardingInvitation))
    assert invitation.status == "complete" and invitation.autopay_on_at and invitation.terms_signed_at
    panel = staff_http.get(f"/admin/clients/{client.id}/autopay").text
    assert "Complete" in panel and "On autopay" in panel


def test_the_invoice_shows_the_discount_as_its_own_line(client_http, session, shop):
    incentives.record_discount(session, shop.first, 500, attempt_id=9)
    session.commit()
    page = client_http.get(f"/invoices/{shop.first.id}")
    assert page.status_code == 200
    assert 'id="autopay-discount"' in page.text and "$5.00" in page.text
    assert "$100.00" in page.text and "$95.00" in page.text  # the total is untouched; the balance is what is owed


def test_the_fallback_becomes_the_autopay_method_from_the_page(client_http, session):
    add(client_http, CARD)
    add(client_http, {**CARD, "card_number": "5555 5555 5555 4444"})
    first, second = session.scalars(select(SavedPaymentMethod).order_by(SavedPaymentMethod.id)).all()
    authorize(client_http, first.id)
    authorize(client_http, second.id, role="fallback")
    page = client_http.get("/autopay")
    assert "Fallback" in page.text and "Make it the autopay method" in page.text
    assert client_http.post(f"/autopay/methods/{second.id}/role", data={"role": "default"}).status_code == 303
    session.expire_all()
    assert session.get(SavedPaymentMethod, second.id).is_default
    assert not session.get(SavedPaymentMethod, first.id).is_default


def test_the_client_autopay_panel_says_what_autopay_does_with_each_open_invoice(staff_http, session, shop,
                                                                                sandbox_gateway):
    from tests.payments_fixtures import runtime_for
    from tests.run_due_fixtures import CARD, enroll_rows, set_rules

    panel = f"/admin/clients/{shop.client.id}/autopay"
    assert 'id="autopay-outlook"' not in staff_http.get(panel).text  # not on autopay: nothing to say
    enroll_rows(session, runtime_for(sandbox_gateway), shop.client, [("pm_card_visa", CARD)])
    set_rules(session, shop.client.id, has_cap_override=True, cap_cents=20_000)

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", staff_http.get(panel).text))

    # the first ($100.00) was due on March 1; the second ($250.00) is over the $200.00 cap
    assert f"{shop.first.number} Mar 1, 2026 $100.00 Charged by the next run" in text
    assert (f"{shop.second.number} Mar 31, 2026 $250.00 Over the autopay cap: approve it or leave it to the "
            "client") in text
    invoice_page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", staff_http.get(f"/admin/invoices/{shop.first.id}").text))
    assert "Autopay Charged by the next run. The client's autopay" in invoice_page

    set_rules(session, shop.client.id, has_cap_override=False, notice_days=3)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", staff_http.get(panel).text))
    assert f"{shop.second.number} Mar 31, 2026 $250.00 Charged on Mar 31, 2026 (pre-charge notice on Mar 28, " \
           "2026)" in text
