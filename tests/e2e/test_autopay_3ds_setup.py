"""In headless Chromium: saving a card whose bank asks for 3-D Secure.

SANDBOX: a contact saves the 3-D Secure test card (4000 0027 6000 3184), gets the sandbox's labelled stand-in for
the bank's challenge, completes it and sees the card saved (or fails it and sees why, with nothing saved).

Stripe mode: the real setup page and static/js/payment-element.js against the fake Stripe server. Chromium has no
network, so js.stripe.com is served by a small stand-in Stripe.js (routed by Playwright) whose
createConfirmationToken hands over a token the fake made, and whose handleNextAction lets the test decide the
challenge in the fake (FakeStripe.authenticate_setup); everything after that is the portal's own code."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.models import SavedPaymentMethod
from portal.services import sign_in
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import stripe_config

from .a11y import assert_accessible

pytestmark = pytest.mark.e2e

PASSWORD = "a long office password"


@pytest.fixture
def app_config(app_config, request):
    """Stripe mode (keys, hence the CSP that lets Stripe.js in) for the tests that ask for the fake Stripe."""
    if "fake_stripe" in request.fixturenames:
        app_config.update(stripe_config(request.getfixturevalue("fake_stripe")))
    return app_config


@pytest.fixture
def contact(session, make):
    client = make.client("Harbor Dental Group LLC")
    person = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    sign_in.set_password(session, person, PASSWORD)
    return person


def signed_in(page, email: str) -> None:
    page.goto("/login")
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", email)
    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url(lambda url: "/login" not in url)


def saved_methods(session) -> int:
    session.rollback()  # a fresh read: the server thread committed since
    return session.scalar(select(func.count(SavedPaymentMethod.id)))


def save_3ds_sandbox_card(page) -> None:
    page.goto("/autopay/methods/new")
    expect(page.locator("#sandbox-pay-form")).to_contain_text("4000 0027 6000 3184")
    page.fill("#card_number", "4000 0027 6000 3184")
    page.fill("#card_expiry", "12/30")
    page.fill("#card_cvc", "123")
    page.click("#pay-button")
    page.wait_for_url(re.compile(r"/autopay/methods/sandbox-authentication\?setup_intent=sbx_seti_3dswait_"))
    expect(page.locator(".sandbox-note")).to_contain_text("SANDBOX")
    expect(page.locator(".sandbox-note")).to_contain_text("3-D Secure")
    expect(page.locator("main")).to_contain_text("Visa ending 3184")


def test_sandbox_card_saved_after_the_contact_completes_the_authentication(page, live_server, session, contact,
                                                                           browser_errors):
    signed_in(page, contact.email)
    save_3ds_sandbox_card(page)
    assert saved_methods(session) == 0
    assert_accessible(page, "the sandbox's 3-D Secure page")

    page.get_by_role("button", name="Complete authentication").click()

    page.wait_for_url(re.compile(r"/autopay/methods/\d+/authorize$"))
    expect(page.locator(".flash-success")).to_contain_text("Visa ending 3184 saved")
    expect(page.locator("#authorization")).to_contain_text("Visa ending 3184")
    assert saved_methods(session) == 1
    page.goto("/autopay")
    expect(page.locator("main")).to_contain_text("Visa ending 3184")
    assert browser_errors == []


def test_sandbox_failed_authentication_saves_nothing_and_says_why(page, live_server, session, contact,
                                                                  browser_errors):
    signed_in(page, contact.email)
    save_3ds_sandbox_card(page)

    page.get_by_role("button", name="Fail authentication").click()

    page.wait_for_url(re.compile(r"/autopay/methods/new$"))
    expect(page.locator(".flash-error")).to_contain_text(
        "Your bank did not confirm this card: the authentication failed or was cancelled. Nothing was saved")
    assert saved_methods(session) == 0
    assert_accessible(page, "the add-a-method page after a failed authentication")
    assert browser_errors == []


# --- Stripe mode: the real page and payment-element.js, a stand-in Stripe.js --------------------------------------

#: What the page calls on Stripe.js, no more. The challenge is "run" by asking the test (a routed request to
#: api.stripe.com, which the page's CSP allows in Stripe mode) to decide it in the fake Stripe server.
STUB_STRIPE_JS = """
window.Stripe = function (publishableKey) {
  if (!publishableKey.startsWith("pk_test_")) throw new Error("bad publishable key " + publishableKey);
  return {
    elements(options) {
      if (options.mode !== "setup") throw new Error("expected setup mode, got " + options.mode);
      return {
        create(kind) {
          return { mount(el) { el.textContent = "Card number (stand-in Payment Element)"; } };
        },
        submit: async () => ({}),
      };
    },
    createConfirmationToken: async ({ params }) => {
      if (!params.return_url.endsWith("/autopay/methods/return")) throw new Error("return_url " + params.return_url);
      return { confirmationToken: { id: %(token)s } };
    },
    handleNextAction: async ({ clientSecret }) => {
      const answer = await fetch("https://api.stripe.com/stand-in-3ds", { method: "POST", body: clientSecret });
      const body = await answer.json();
      return body.passed ? { setupIntent: { status: "succeeded" } }
        : { error: { type: "invalid_request_error", code: "setup_intent_authentication_failure" } };
    },
  };
};
"""


def stand_in_stripe(page, fake_stripe, *, passed: bool) -> list[str]:
    """Serve the stand-in Stripe.js; returns the client secrets the page asked the challenge for."""
    token = fake_stripe.confirmation_token("pm_card_authenticationRequired")
    asked: list[str] = []

    def challenge(route):
        secret = route.request.post_data or ""
        asked.append(secret)
        fake_stripe.authenticate_setup(secret.split("_secret_")[0], passed=passed)
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"passed": passed}),
                      headers={"Access-Control-Allow-Origin": "*"})

    page.route("https://js.stripe.com/endive/stripe.js", lambda route: route.fulfill(
        status=200, content_type="application/javascript", body=STUB_STRIPE_JS % {"token": json.dumps(token)}))
    page.route("https://api.stripe.com/stand-in-3ds", challenge)
    return asked


@pytest.mark.parametrize("passed", [True, False], ids=["passed", "failed"])
def test_stripe_mode_setup_page_runs_the_challenge_then_the_server_decides(
        page, live_server, session, contact, fake_stripe, stripe_gateway, browser_errors, passed):
    asked = stand_in_stripe(page, fake_stripe, passed=passed)
    signed_in(page, contact.email)
    page.goto("/autopay/methods/new")
    expect(page.locator("#payment-element")).to_contain_text("stand-in Payment Element")
    expect(page.locator("#sandbox-pay-form")).to_have_count(0)

    page.click("#pay-button")

    if passed:
        page.wait_for_url(re.compile(r"/autopay/methods/\d+/authorize$"))
        expect(page.locator("#authorization")).to_contain_text("Visa ending 3184")
        assert saved_methods(session) == 1
        row = session.scalar(select(SavedPaymentMethod))
        assert asked == [fake_stripe.setup_intent(row.setup_id)["client_secret"]]
        assert fake_stripe.payment_method(row.method_id)["customer"] == row.customer_id
    else:
        page.wait_for_url(re.compile(r"/autopay/methods/new$"))
        expect(page.locator(".flash-error")).to_contain_text("the authentication failed or was cancelled")
        assert len(asked) == 1 and saved_methods(session) == 0
    assert browser_errors == []
