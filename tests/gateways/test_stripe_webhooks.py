"""Webhook verification and normalization, with events built and signed by the fake server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import stripe

from portal.gateways.payments import InvalidWebhook
from portal.gateways.payments.stripe_gateway import StripeGateway
from tests.fake_stripe import FakeStripe


def paid_intent(gateway: StripeGateway, customer_id: str, method: str = "pm_card_visa") -> str:
    result = gateway.charge(
        idempotency_key=f"webhook-{method}",
        customer_id=customer_id,
        amount_cents=8_000,
        currency="usd",
        payment_method=method,
        metadata={"invoice_id": "7"},
    )
    assert result.gateway_id is not None
    return result.gateway_id


def test_payment_intent_succeeded_event_is_verified_and_normalized(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    intent_id = paid_intent(gateway, customer_id)
    payload, signature = fake_stripe.payment_intent_event("payment_intent.succeeded", intent_id, created=1_700_000_000)

    event = gateway.parse_webhook(payload, signature)

    assert event.id.startswith("evt_")
    assert event.type == "payment_intent.succeeded"
    assert event.created == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert event.object_id == intent_id
    assert event.charge is not None
    assert (event.charge.status, event.charge.gateway_id, event.charge.amount_cents) == (
        "succeeded",
        intent_id,
        8_000,
    )
    assert event.refund is None and event.dispute is None


def test_payment_failed_event_for_a_bank_debit_carries_the_failure(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    intent_id = paid_intent(gateway, customer_id, "pm_usBankAccount_insufficientFunds")
    failed = fake_stripe.fail(intent_id)

    event = gateway.parse_webhook(*fake_stripe.event("payment_intent.payment_failed", failed))

    assert event.charge is not None
    assert event.charge.status == "failed"
    assert event.charge.failure_code == "insufficient_funds"
    assert event.charge.method_type == "us_bank_account"
    assert event.charge.failure_message is not None and "ACH debit failed" in event.charge.failure_message


def test_charge_refunded_event_gives_the_cumulative_refund(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str
) -> None:
    intent_id = paid_intent(gateway, customer_id)
    gateway.refund(idempotency_key="r1", gateway_id=intent_id, amount_cents=3_000)
    gateway.refund(idempotency_key="r2", gateway_id=intent_id, amount_cents=1_000)
    charge = fake_stripe.charge(intent_id)

    event = gateway.parse_webhook(*fake_stripe.charge_refunded_event(intent_id))

    assert event.object_id == charge["id"]
    assert event.refund is not None
    assert event.refund.payment_intent_id == intent_id
    assert event.refund.charge_id == charge["id"]
    assert (event.refund.amount_cents, event.refund.amount_refunded_cents) == (8_000, 4_000)
    assert event.refund.fully_refunded is False
    assert event.charge is None


@pytest.mark.parametrize(
    ("event_type", "status"), [("charge.dispute.created", None), ("charge.dispute.closed", "lost")]
)
def test_dispute_events_are_normalized(
    gateway: StripeGateway, fake_stripe: FakeStripe, customer_id: str, event_type: str, status: str | None
) -> None:
    intent_id = paid_intent(gateway, customer_id)
    dispute = fake_stripe.create_dispute(intent_id, reason="product_not_received", amount=8_000)
    if status is not None:
        dispute = fake_stripe.close_dispute(dispute["id"], status)

    event = gateway.parse_webhook(*fake_stripe.event(event_type, dispute))

    assert event.dispute is not None
    assert event.dispute.dispute_id == dispute["id"] == event.object_id
    assert event.dispute.payment_intent_id == intent_id
    assert event.dispute.charge_id == fake_stripe.charge(intent_id)["id"]
    assert event.dispute.status == (status or "needs_response")
    assert (event.dispute.amount_cents, event.dispute.currency) == (8_000, "usd")
    assert event.dispute.reason == "product_not_received"


def test_event_types_we_do_not_act_on_keep_only_the_envelope(gateway: StripeGateway, fake_stripe: FakeStripe) -> None:
    event = gateway.parse_webhook(*fake_stripe.event("customer.updated", {"id": "cus_1", "object": "customer"}))
    assert (event.type, event.object_id) == ("customer.updated", "cus_1")
    assert event.charge is None and event.refund is None and event.dispute is None


def test_signature_from_another_secret_is_rejected(gateway: StripeGateway, fake_stripe: FakeStripe) -> None:
    payload, forged = fake_stripe.event("payment_intent.succeeded", {"id": "pi_1"}, secret="whsec_attacker")
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(payload, forged)


def test_body_changed_after_signing_is_rejected(gateway: StripeGateway, fake_stripe: FakeStripe) -> None:
    payload, signature = fake_stripe.event("charge.refunded", {"id": "ch_1", "amount_refunded": 100})
    tampered = payload.replace(b'"amount_refunded": 100', b'"amount_refunded": 999')
    assert tampered != payload
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(tampered, signature)


def test_stale_signature_is_rejected_but_a_recent_one_is_not(gateway: StripeGateway, fake_stripe: FakeStripe) -> None:
    obj = {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}
    stale = fake_stripe.event("payment_intent.succeeded", obj, timestamp=int(time.time()) - 301)
    recent = fake_stripe.event("payment_intent.succeeded", obj, timestamp=int(time.time()) - 240)

    with pytest.raises(InvalidWebhook, match="tolerance"):
        gateway.parse_webhook(*stale)
    assert gateway.parse_webhook(*recent).object_id == "pi_1"


@pytest.mark.parametrize("header", ["", "garbage", "t=123", "v1=abc"])
def test_missing_or_malformed_signature_header_is_rejected(
    gateway: StripeGateway, fake_stripe: FakeStripe, header: str
) -> None:
    payload, _ = fake_stripe.event("payment_intent.succeeded", {"id": "pi_1"})
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(payload, header)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'"just a string"',
        json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"}).encode(),
        json.dumps(
            {"id": "evt_1", "type": "charge.refunded", "created": 1, "data": {"object": {"id": "ch_1"}}}
        ).encode(),
    ],
    ids=["not-json", "not-an-object", "no-data", "refund-without-amounts"],
)
def test_correctly_signed_but_malformed_body_is_rejected(
    gateway: StripeGateway, fake_stripe: FakeStripe, body: bytes
) -> None:
    signature = stripe.WebhookSignature.generate_signature_header(body.decode(), fake_stripe.webhook_secret)
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(body, signature)


def test_non_utf8_body_is_rejected(gateway: StripeGateway) -> None:
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(b"\xff\xfe", "t=1,v1=00")
