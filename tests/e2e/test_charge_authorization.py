"""In headless Chromium on the SANDBOX gateway: a client on service hold asks for urgent service; the MSP sends a
one-off charge authorization; the client's contact opens the emailed link, signs it in the portal and the card on
file is charged at once; the help desk's standing endpoint (a token made with the API token service) answers
"on_hold" before and "good" right after."""

from __future__ import annotations

import json
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal import db
from portal.gateways.payments import sandbox_token
from portal.models import ChargeAttempt, ChargeAuthorization, Client, Contact
from portal.services import api_tokens, sign_in
from portal.services.enforcement import charge_authorizations
from portal.services.settings import update_settings
from tests.enforcement_fixtures import save_card
from tests.payments_fixtures import read_outbox

from .a11y import assert_accessible

pytestmark = pytest.mark.e2e

PASSWORD = "a long office password"


def standing_of(live_server, secret: str, external_id: str) -> dict:
    request = urllib.request.Request(f"{live_server.url}/api/v1/clients/{external_id}/standing",
                                     headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_an_on_hold_client_signs_and_the_hold_lifts_at_once(page, live_server, app, session, make, outbox, rt,
                                                            clock, browser_errors):
    update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme.test")
    staff = make.staff()
    client = make.client("Harbor Dental Group LLC", external_id="PSA-4242")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    sign_in.set_password(session, contact, PASSWORD)
    make.invoice(client, 48_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    clock.set(date(2026, 3, 25))  # 24 days past due: on hold under the default terms
    save_card(session, rt, contact, sandbox_token("card", "4242424242424242", exp_month=4, exp_year=2031))
    token = api_tokens.create(session, name="PSA", scopes=[api_tokens.Scope.STANDING_READ.value], staff=staff)

    before = standing_of(live_server, token.secret, "PSA-4242")
    assert before["standing"] == "on_hold" and before["to_lift_cents"] == 48_000

    charge_authorizations.send(session, rt, client, amount_cents=48_000, reason="Urgent: the server is down",
                               staff=staff)
    [mail] = [m for m in read_outbox(outbox) if "authorize a payment of $480.00" in m["Subject"]]
    link = re.search(r"(http://127\.0\.0\.1:\d+/authorizations/\S+)", mail.get_body(("plain",)).get_content())[1]

    page.goto(link)  # not signed in yet: the sign-in page, then back to the authorization
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", "dana@harbor.test")
    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url(re.compile(r"/authorizations/"))
    expect(page.locator("#authorization")).to_contain_text("$480.00")
    expect(page.locator("#authorization")).to_contain_text("Visa ending 4242")
    assert_accessible(page, "charge authorization page")

    page.get_by_label(re.compile("agree to receive records and sign documents electronically")).check()
    page.get_by_label("Your full name", exact=True).fill("Dana Whitfield")
    page.get_by_label("Your title", exact=True).fill("Office Manager")
    page.get_by_label(re.compile("authorized to sign on behalf of Harbor Dental Group LLC")).check()
    page.get_by_label("Type my name").check()
    page.locator("input[name=typed_signature]").fill("Dana Whitfield")
    page.get_by_role("button", name="Sign and charge $480.00").click()

    expect(page.locator("#charged")).to_contain_text("Charged $480.00 to the card ending 4242")
    after = standing_of(live_server, token.secret, "PSA-4242")
    assert after["standing"] == "good" and after["past_due_cents"] == 0

    session.rollback()  # a fresh snapshot: the server wrote these
    assert session.scalar(select(func.count(ChargeAttempt.id))) == 1
    assert session.scalar(select(ChargeAuthorization.status)) == "charged"
    assert not browser_errors


def test_a_notice_opened_from_its_email_is_recorded_and_accessible(page, live_server, app, session, make, outbox,
                                                                   rt, clock, browser_errors):
    from portal.models import EnforcementNotice
    from portal.services.enforcement import notices
    from tests.enforcement_fixtures import publish_terms, sign_terms

    client = make.client("Harbor Dental Group LLC")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    sign_in.set_password(session, contact, PASSWORD)

    def sign_the_terms():  # in a thread of its own: the signed PDF's seal runs an event loop, Playwright has one here
        with app.app_context():
            own = db.session()
            publish_terms(own, remote_disable_days=45, notice_days=10)
            sign_terms(own, own.get(Client, client.id), own.get(Contact, contact.id))

    with ThreadPoolExecutor(1) as pool:
        pool.submit(sign_the_terms).result()
    make.invoice(client, 48_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    clock.set(date(2026, 4, 20))
    notice = notices.issue(session, rt, client, "remote_disable", staff=make.staff())
    [mail] = [m for m in read_outbox(outbox) if m["Subject"].startswith("Notice of remote disabling")]
    link = re.search(r"(http://127\.0\.0\.1:\d+/notices/\S+)", mail.get_body(("plain",)).get_content())[1]

    page.goto(link)
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", "dana@harbor.test")
    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url(re.compile(r"/notices/"))
    expect(page.locator("#amount-due")).to_have_text("$480.00")
    expect(page.locator("#clause")).to_contain_text("more than 45 days past due")
    assert_accessible(page, "notice page")
    page.goto("/")
    expect(page.locator(f"#notice-banner-{notice.id}")).to_contain_text("Apr 30, 2026")
    assert_accessible(page, "dashboard with the notice banner")

    session.rollback()
    session.expire_all()
    assert session.get(EnforcementNotice, notice.id).opened_at is not None
    assert not browser_errors
