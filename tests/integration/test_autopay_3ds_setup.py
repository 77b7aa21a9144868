"""3-D Secure when saving a card for autopay: nothing is saved until the bank's challenge is passed, and the setup id
the browser hands back is only a claim, read back from the gateway and checked against the client's customer.

Stripe: the real stripe SDK against the fake, which holds ``pm_card_authenticationRequired`` in ``requires_action``
(``use_stripe_sdk``) until the test decides the challenge. Sandbox: the same through the web client and the
sandbox's stand-in challenge page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from portal.domain.errors import DomainError
from portal.gateways.payments import MandateAcceptance
from portal.models import SavedPaymentMethod
from portal.services.autopay import methods
from tests.conftest import sign_in
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import runtime_for

ACCEPTANCE = MandateAcceptance(ip_address="203.0.113.7", user_agent="Mozilla/5.0 (test)",
                               accepted_at=datetime(2025, 3, 3, 9, 0, tzinfo=UTC))
AUTH_CARD = "4000 0027 6000 3184"
AUTH_ID = "pm_card_authenticationRequired"
SANDBOX_CARD = {"method": "card", "card_number": AUTH_CARD, "card_expiry": "04/31", "card_cvc": "123"}


def save(session, gateway, contact, token, nonce="nonce-0123456789abcdef"):
    return methods.save(session, runtime_for(gateway), contact, methods.NewMethod(token=token, nonce=nonce),
                        ACCEPTANCE)


def saved_count(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count(SavedPaymentMethod.id)))


def setup_reads(fake_stripe, setup_id: str) -> int:
    return sum(1 for r in fake_stripe.requests if r.method == "GET" and r.path == f"/v1/setup_intents/{setup_id}")


# --- Stripe (the real SDK against the fake) ---------------------------------------------------------------------


def test_a_3ds_card_is_saved_once_after_the_bank_confirms_it(session, shop, stripe_gateway, fake_stripe):
    needed = save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token(AUTH_ID))

    assert isinstance(needed, methods.NeedsAuthentication)
    assert needed.client_secret is not None and needed.client_secret.startswith(needed.setup_id + "_secret_")
    intent = fake_stripe.setup_intent(needed.setup_id)
    assert intent["status"] == "requires_action" and intent["next_action"]["type"] == "use_stripe_sdk"
    assert saved_count(session) == 0  # nothing until the bank says yes

    fake_stripe.authenticate_setup(needed.setup_id)
    row = methods.complete_setup(session, runtime_for(stripe_gateway), shop.contact, needed.setup_id)

    assert (row.status, row.brand, row.last4, row.setup_id) == (methods.ACTIVE, "visa", "3184", needed.setup_id)
    assert row.client_id == shop.client.id and row.is_default
    assert fake_stripe.payment_method(row.method_id)["customer"] == row.customer_id
    assert setup_reads(fake_stripe, needed.setup_id) == 1  # read back from Stripe, not taken from the browser

    # The page posted twice, or the return URL opened again: the same row, never a second one.
    again = methods.complete_setup(session, runtime_for(stripe_gateway), shop.contact, needed.setup_id)
    assert again.id == row.id and saved_count(session) == 1


def test_a_challenge_not_finished_saves_nothing(session, shop, stripe_gateway, fake_stripe):
    needed = save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token(AUTH_ID))

    with pytest.raises(DomainError, match="has not confirmed this card yet, so nothing was saved"):
        methods.complete_setup(session, runtime_for(stripe_gateway), shop.contact, needed.setup_id)
    assert saved_count(session) == 0


def test_a_failed_authentication_saves_nothing_and_says_so(session, shop, stripe_gateway, fake_stripe):
    needed = save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token(AUTH_ID))
    fake_stripe.authenticate_setup(needed.setup_id, passed=False)

    with pytest.raises(DomainError, match="did not confirm this card: the authentication failed or was cancelled. "
                                          "Nothing was saved"):
        methods.complete_setup(session, runtime_for(stripe_gateway), shop.contact, needed.setup_id)
    assert saved_count(session) == 0
    intent = fake_stripe.setup_intent(needed.setup_id)
    assert intent["status"] == "requires_payment_method" and intent["payment_method"] is None
    assert intent["last_setup_error"]["code"] == "setup_intent_authentication_failure"


def test_a_forged_or_foreign_setup_id_is_refused(session, shop, make, stripe_gateway, fake_stripe):
    other = make.contact(make.client("Other Co"))
    theirs = save(session, stripe_gateway, other, fake_stripe.confirmation_token("pm_card_authenticationRequired"))
    failed = save(session, stripe_gateway, other, fake_stripe.confirmation_token("pm_card_authenticationRequired"),
                  nonce="nonce-fedcba9876543210")
    fake_stripe.authenticate_setup(theirs.setup_id)
    fake_stripe.authenticate_setup(failed.setup_id, passed=False)
    # Our client has a gateway customer too (a card saved earlier), so only the ownership check can refuse.
    ours = save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token("pm_card_visa"),
                nonce="nonce-0000111122223333")
    before = saved_count(session)

    rt = runtime_for(stripe_gateway)
    for setup_id in (theirs.setup_id, failed.setup_id, "seti_forged", "", "x" * 300):
        with pytest.raises(DomainError, match="does not belong to your account"):
            methods.complete_setup(session, rt, shop.contact, setup_id)
    assert saved_count(session) == before == 1
    assert session.scalar(select(SavedPaymentMethod.id).where(SavedPaymentMethod.setup_id == theirs.setup_id)) is None
    assert ours.client_id == shop.client.id


def test_the_stripe_page_runs_the_challenge_and_posts_the_setup_back(http, session, shop, stripe_gateway,
                                                                     fake_stripe):
    sign_in(http, shop.contact)
    page = http.get("/autopay/methods/new")
    nonce = re.search(r'name="nonce" type="hidden" value="([^"]+)"', page.text).group(1)
    token = fake_stripe.confirmation_token("pm_card_authenticationRequired")

    challenge = http.post("/autopay/methods/new", data={"confirmation_token": token, "nonce": nonce})

    assert challenge.status_code == 200 and "Confirm your card with your bank" in challenge.text
    setup_id = re.search(r'name="setup_intent" type="hidden" value="(seti_[^"]+)"', challenge.text).group(1)
    assert f'data-client-secret="{setup_id}_secret_' in challenge.text
    assert 'action="/autopay/methods/complete"' in challenge.text and "SANDBOX" not in challenge.text
    assert saved_count(session) == 0

    fake_stripe.authenticate_setup(setup_id)
    done = http.post("/autopay/methods/complete", data={"setup_intent": setup_id})
    row = session.scalar(select(SavedPaymentMethod))
    assert done.status_code == 302 and done.location.endswith(f"/autopay/methods/{row.id}/authorize")
    # A redirecting challenge comes back to the return URL instead: the same setup, the same row.
    back = http.get(f"/autopay/methods/return?setup_intent={setup_id}&redirect_status=succeeded")
    assert back.status_code == 302 and saved_count(session) == 1


def test_the_stripe_page_after_a_failed_challenge_shows_why(http, session, shop, stripe_gateway, fake_stripe):
    sign_in(http, shop.contact)
    page = http.get("/autopay/methods/new")
    nonce = re.search(r'name="nonce" type="hidden" value="([^"]+)"', page.text).group(1)
    challenge = http.post("/autopay/methods/new", data={
        "confirmation_token": fake_stripe.confirmation_token("pm_card_authenticationRequired"), "nonce": nonce})
    setup_id = re.search(r'name="setup_intent" type="hidden" value="(seti_[^"]+)"', challenge.text).group(1)
    fake_stripe.authenticate_setup(setup_id, passed=False)

    done = http.post("/autopay/methods/complete", data={"setup_intent": setup_id}, follow_redirects=True)

    assert "the authentication failed or was cancelled. Nothing was saved" in done.text
    assert saved_count(session) == 0
    assert http.post("/autopay/methods/complete", data={}).status_code == 400


# --- the sandbox, through the web client ------------------------------------------------------------------------


@pytest.fixture
def client_http(http, shop, sandbox_gateway):
    sign_in(http, shop.contact)
    return http


def start_sandbox_setup(http) -> str:
    """Post the 3-D Secure test card on the sandbox form; returns the stand-in challenge page's URL."""
    page = http.get("/autopay/methods/new")
    assert AUTH_CARD in page.text  # listed among the test cards
    nonce = re.search(r'name="nonce" type="hidden" value="([^"]+)"', page.text).group(1)
    posted = http.post("/autopay/methods/new", data={**SANDBOX_CARD, "nonce": nonce})
    assert posted.status_code == 303 and "/autopay/methods/sandbox-authentication?" in posted.location
    return posted.location


def setup_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["setup_intent"][0]


def test_sandbox_card_saved_after_completing_the_stand_in_challenge(client_http, session):
    challenge_url = start_sandbox_setup(client_http)
    page = client_http.get(challenge_url)
    assert page.status_code == 200 and "SANDBOX" in page.text and "3-D Secure" in page.text
    assert "Visa ending 3184" in page.text and "Complete authentication" in page.text
    assert saved_count(session) == 0

    passed = client_http.post("/autopay/methods/sandbox-authentication",
                              data={"setup_intent": setup_of(challenge_url), "outcome": "pass"})
    assert passed.status_code == 303 and "/autopay/methods/return?" in passed.location
    landed = client_http.get(passed.location)
    row = session.scalar(select(SavedPaymentMethod))
    assert landed.status_code == 302 and landed.location.endswith(f"/autopay/methods/{row.id}/authorize")
    assert (row.status, row.brand, row.last4) == (methods.ACTIVE, "visa", "3184")
    assert row.setup_id == setup_of(passed.location) != setup_of(challenge_url)

    # Replays: the return URL again, the challenge answered again: still one saved card.
    assert client_http.get(passed.location).status_code == 302
    again = client_http.post("/autopay/methods/sandbox-authentication",
                             data={"setup_intent": setup_of(challenge_url), "outcome": "pass"})
    client_http.get(again.location)
    assert saved_count(session) == 1


def test_sandbox_failed_authentication_saves_nothing(client_http, session):
    challenge_url = start_sandbox_setup(client_http)
    failed = client_http.post("/autopay/methods/sandbox-authentication",
                              data={"setup_intent": setup_of(challenge_url), "outcome": "fail"})
    landed = client_http.get(failed.location, follow_redirects=True)

    assert "Your bank did not confirm this card: the authentication failed or was cancelled. Nothing was saved" \
        in landed.text
    assert saved_count(session) == 0
    # The page of a setup that no longer waits, and a made-up answer, change nothing either.
    gone = client_http.get(failed.location.replace("/return", "/sandbox-authentication"), follow_redirects=True)
    assert "not waiting for your bank" in gone.text
    odd = client_http.post("/autopay/methods/sandbox-authentication",
                           data={"setup_intent": setup_of(challenge_url), "outcome": "maybe"})
    assert odd.status_code == 400 and saved_count(session) == 0


def test_sandbox_setup_of_another_client_is_refused(client_http, session, shop, make, sandbox_gateway):
    other = make.contact(make.client("Other Co"))
    theirs = save(session, sandbox_gateway, other, "pm_card_authenticationRequired")
    assert isinstance(theirs, methods.NeedsAuthentication) and theirs.client_secret is None
    # Our client has a sandbox customer too, so only the ownership check can refuse.
    save(session, sandbox_gateway, shop.contact, "pm_card_visa", nonce="nonce-ours-0123456789")
    before = saved_count(session)
    passed_id = sandbox_gateway.authenticate_setup(theirs.setup_id, passed=True).setup_id

    for url in (f"/autopay/methods/sandbox-authentication?setup_intent={theirs.setup_id}",
                f"/autopay/methods/return?setup_intent={passed_id}",
                "/autopay/methods/return?setup_intent=sbx_seti_forged"):
        refused = client_http.get(url, follow_redirects=True)
        assert "That payment method does not belong to your account." in refused.text, url
    posted = client_http.post("/autopay/methods/sandbox-authentication",
                              data={"setup_intent": theirs.setup_id, "outcome": "pass"}, follow_redirects=True)
    assert "does not belong to your account" in posted.text
    assert saved_count(session) == before == 1


def test_the_sandbox_challenge_page_is_404_in_stripe_mode(http, shop, stripe_gateway):
    sign_in(http, shop.contact)
    assert http.get("/autopay/methods/sandbox-authentication?setup_intent=seti_x").status_code == 404
