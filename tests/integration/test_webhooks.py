"""POST /webhooks/stripe: signature on the raw body, each event processed once, any order, quick answers."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from portal.models import Allocation, ChargeAttempt, Payment, WebhookEvent
from portal.services import payments
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count, invoice_state, new_request, read_outbox, runtime_for, stripe_config


@pytest.fixture
def app_config(app_config, fake_stripe):
    app_config.update(stripe_config(fake_stripe))
    return app_config


def post(http, payload: bytes, header: str | None):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return http.post("/webhooks/stripe", data=payload, headers=headers)


@pytest.fixture
def ach(session, shop, stripe_gateway, fake_stripe):
    """A bank payment of the first invoice, processing at Stripe."""
    attempt = payments.pay(session, runtime_for(stripe_gateway), new_request(session, shop), attempt_number=1,
                                  token=fake_stripe.confirmation_token("pm_usBankAccount_success"))
    assert attempt.status == "processing"
    return attempt


def attempt_status(session, attempt) -> str:
    session.expire_all()
    return session.get(ChargeAttempt, attempt.id).status


def test_a_signed_event_is_processed(http, session, shop, ach, fake_stripe, outbox):
    fake_stripe.settle(ach.gateway_id)
    response = post(http, *fake_stripe.payment_intent_event("payment_intent.succeeded", ach.gateway_id))

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "outcome": f"charge attempt {ach.id} is succeeded"}
    assert attempt_status(session, ach) == "succeeded"
    assert invoice_state(session, shop.first) == ("paid", 0)
    [event] = session.scalars(select(WebhookEvent)).all()
    assert (event.type, event.object_id, event.gateway) == ("payment_intent.succeeded", ach.gateway_id, "stripe")
    assert event.outcome == f"charge attempt {ach.id} is succeeded"
    assert len(read_outbox(outbox)) == 1


@pytest.mark.parametrize("case", ["forged", "stale", "missing", "tampered"])
def test_a_bad_signature_is_refused_and_changes_nothing(http, session, shop, ach, fake_stripe, case):
    fake_stripe.settle(ach.gateway_id)
    if case == "forged":
        payload, header = fake_stripe.payment_intent_event("payment_intent.succeeded", ach.gateway_id,
                                                           secret="whsec_someone_else")
    elif case == "stale":  # a captured event replayed ten minutes later
        payload, header = fake_stripe.payment_intent_event("payment_intent.succeeded", ach.gateway_id,
                                                           timestamp=int(time.time()) - 600)
    else:
        payload, header = fake_stripe.payment_intent_event("payment_intent.succeeded", ach.gateway_id)
        if case == "missing":
            header = None
        else:  # the body changed after signing
            payload = payload.replace(b'"amount": 10000', b'"amount": 1')

    response = post(http, payload, header)

    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid signature"}
    assert attempt_status(session, ach) == "processing"
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert count(session, WebhookEvent) == 0


def test_a_duplicate_event_is_processed_once(http, session, shop, ach, fake_stripe, outbox):
    fake_stripe.settle(ach.gateway_id)
    payload, header = fake_stripe.payment_intent_event("payment_intent.succeeded", ach.gateway_id)

    first = post(http, payload, header)
    second = post(http, payload, header)

    assert first.status_code == second.status_code == 200
    assert second.get_json()["outcome"] == "duplicate: already processed"
    assert count(session, WebhookEvent) == 1
    assert count(session, Allocation) == 1
    assert len(read_outbox(outbox)) == 1  # one receipt


def test_succeeded_arriving_before_processing_is_not_undone(http, session, shop, ach, fake_stripe):
    processing = fake_stripe.payment_intent_event("payment_intent.processing", ach.gateway_id)
    fake_stripe.settle(ach.gateway_id)
    succeeded = fake_stripe.payment_intent_event("payment_intent.succeeded", ach.gateway_id)

    assert post(http, *succeeded).status_code == 200
    assert post(http, *processing).status_code == 200  # late and out of order

    assert attempt_status(session, ach) == "succeeded"
    assert session.scalar(select(Payment.status)) == "succeeded"
    assert invoice_state(session, shop.first) == ("paid", 0)
    assert count(session, WebhookEvent) == 2


def test_failed_then_a_late_processing_event_keeps_the_failure(http, session, shop, stripe_gateway, fake_stripe,
                                                               outbox):
    attempt = payments.pay(session, runtime_for(stripe_gateway), new_request(session, shop), attempt_number=1,
                                  token=fake_stripe.confirmation_token("pm_usBankAccount_insufficientFunds"))
    processing = fake_stripe.payment_intent_event("payment_intent.processing", attempt.gateway_id)
    fake_stripe.settle(attempt.gateway_id)

    post(http, *fake_stripe.payment_intent_event("payment_intent.payment_failed", attempt.gateway_id))
    post(http, *processing)

    assert attempt_status(session, attempt) == "failed"
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert [m["Subject"] for m in read_outbox(outbox)] == [
        "Your payment of $100.00 to Your MSP did not go through"]


def test_the_webhook_can_beat_the_browser_back(http, session, shop, stripe_gateway, fake_stripe, monkeypatch):
    """The client's own request lost Stripe's answer (its attempt has no gateway id yet); the webhook finds the
    attempt through the charge's metadata and settles it, and the client's status page then shows it paid."""
    from tests.conftest import sign_in

    real_charge = stripe_gateway.charge

    def charge(**kwargs):
        monkeypatch.setattr(stripe_gateway, "charge", real_charge)
        fake_stripe.fail_next(500, after_processing=True)
        return real_charge(**kwargs)

    monkeypatch.setattr(stripe_gateway, "charge", charge)
    request = new_request(session, shop)
    attempt = payments.pay(session, runtime_for(stripe_gateway), request, attempt_number=1,
                                  token=fake_stripe.confirmation_token("pm_card_visa"))
    assert (attempt.status, attempt.gateway_id) == ("unknown", None)
    [intent_id] = fake_stripe.ledger.payment_intents

    response = post(http, *fake_stripe.payment_intent_event("payment_intent.succeeded", intent_id))

    assert response.get_json()["outcome"] == f"charge attempt {attempt.id} is succeeded"
    session.expire_all()
    settled = session.get(ChargeAttempt, attempt.id)
    assert (settled.status, settled.gateway_id) == ("succeeded", intent_id)
    assert invoice_state(session, shop.first) == ("paid", 0)
    sign_in(http, shop.contact)
    page = http.get(f"/pay/{request.public_id}/status").get_data(as_text=True)
    assert "Payment received" in page and intent_id in page


def test_metadata_naming_an_attempt_without_its_key_is_ignored(http, session, shop, stripe_gateway, fake_stripe):
    request = new_request(session, shop)
    attempt = payments.pay(session, runtime_for(stripe_gateway), request, attempt_number=1,
                                  token=fake_stripe.confirmation_token("pm_usBankAccount_success"))
    intent = fake_stripe.payment_intent(attempt.gateway_id)
    intent.update(id="pi_from_another_install", status="succeeded")
    intent["metadata"]["portal_charge_key"] = "portal-charge-1-000000000000"

    response = post(http, *fake_stripe.event("payment_intent.succeeded", intent))

    assert response.get_json()["outcome"] == "ignored: not a portal payment"
    assert attempt_status(session, attempt) == "processing"


def test_events_we_do_not_use_or_do_not_know_are_stored_and_acknowledged(http, session, fake_stripe, stripe_gateway):
    unknown_intent = {"id": "pi_not_ours", "object": "payment_intent", "status": "succeeded", "amount": 500,
                      "currency": "usd", "metadata": {}}
    assert post(http, *fake_stripe.event("payment_intent.succeeded", unknown_intent)).get_json()["outcome"] == (
        "ignored: not a portal payment")
    customer = {"id": "cus_1", "object": "customer"}
    assert post(http, *fake_stripe.event("customer.created", customer)).get_json()["outcome"] == (
        "ignored: event type not used")
    assert count(session, WebhookEvent) == 2


def test_a_body_that_is_not_an_event_is_refused(http, session, fake_stripe, stripe_gateway):
    import stripe

    payload = json.dumps({"hello": "world"})
    header = stripe.WebhookSignature.generate_signature_header(payload, fake_stripe.webhook_secret)
    assert post(http, payload.encode(), header).status_code == 400
    assert count(session, WebhookEvent) == 0


def test_the_endpoint_needs_no_csrf_token_but_only_answers_post(app, http, fake_stripe, stripe_gateway, ach):
    app.config["WTF_CSRF_ENABLED"] = True
    fake_stripe.settle(ach.gateway_id)
    assert post(http, *fake_stripe.payment_intent_event("payment_intent.succeeded", ach.gateway_id)).status_code == 200
    assert http.get("/webhooks/stripe").status_code == 405


def test_the_sandbox_has_no_webhook_endpoint(http, sandbox_gateway, fake_stripe):
    assert post(http, *fake_stripe.event("payment_intent.succeeded", {"id": "pi_1"})).status_code == 404
