"""The fake Stripe server's own contract, checked over raw HTTP (other test suites rely on it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.fake_stripe import FakeStripe
from tests.fake_stripe.forms import decode_form


def call(
    fake: FakeStripe, method: str, path: str, body: str = "", **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(
        fake.url + path,
        data=body.encode() if method == "POST" else None,
        method=method,
        headers={"Authorization": f"Bearer {fake.secret_key}", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read()), dict(error.headers)


def test_decode_form_handles_stripes_nested_and_list_keys() -> None:
    body = "amount=100&metadata[invoice_id]=7&metadata[note]=&expand[0]=a&expand[1]=b&items[]=x&items[]=y"
    assert decode_form(body) == {
        "amount": "100",
        "metadata": {"invoice_id": "7", "note": ""},
        "expand": ["a", "b"],
        "items": ["x", "y"],
    }


@pytest.mark.parametrize(
    ("authorization", "message"),
    [("Bearer sk_test_wrong_0000", "Invalid API Key provided"), ("", "You did not provide an API key")],
)
def test_wrong_or_missing_key_gets_stripes_401_shape(fake_stripe: FakeStripe, authorization: str, message: str) -> None:
    status, body, _ = call(fake_stripe, "GET", "/v1/customers/cus_1", Authorization=authorization)
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(message)


def test_unknown_url_and_unknown_object(fake_stripe: FakeStripe) -> None:
    status, body, _ = call(fake_stripe, "GET", "/v1/nothing_here")
    assert (status, body["error"]["type"]) == (404, "invalid_request_error")
    status, body, _ = call(fake_stripe, "GET", "/v1/payment_intents/pi_nope")
    assert (status, body["error"]["code"]) == (404, "resource_missing")


def test_replay_is_marked_and_a_conflict_is_an_idempotency_error(fake_stripe: FakeStripe) -> None:
    first = call(fake_stripe, "POST", "/v1/customers", "name=A", **{"Idempotency-Key": "k1"})
    replay = call(fake_stripe, "POST", "/v1/customers", "name=A", **{"Idempotency-Key": "k1"})
    conflict = call(fake_stripe, "POST", "/v1/customers", "name=B", **{"Idempotency-Key": "k1"})

    assert first[0] == replay[0] == 200
    assert replay[1] == first[1]
    assert "Idempotent-Replayed" not in first[2] and replay[2]["Idempotent-Replayed"] == "true"
    assert (conflict[0], conflict[1]["error"]["type"]) == (400, "idempotency_error")
    assert fake_stripe.count("POST", "/v1/customers") == 2  # the replay is not counted
    assert fake_stripe.count("POST", "/v1/customers", include_replays=True) == 3


def test_card_decline_has_stripes_402_shape(fake_stripe: FakeStripe) -> None:
    body = "amount=500&currency=usd&confirm=true&payment_method=pm_card_chargeDeclinedInsufficientFunds"
    status, payload, _ = call(fake_stripe, "POST", "/v1/payment_intents", body)

    error = payload["error"]
    assert status == 402
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["payment_intent"]["last_payment_error"]["decline_code"] == "insufficient_funds"
    assert error["payment_method"]["card"]["last4"] == "9995"


def test_reset_forgets_everything(fake_stripe: FakeStripe) -> None:
    call(fake_stripe, "POST", "/v1/customers", "name=A")
    fake_stripe.fail_next(500)
    fake_stripe.reset()
    assert fake_stripe.requests == []
    status, _, _ = call(fake_stripe, "POST", "/v1/customers", "name=A")
    assert status == 200  # the queued outage is gone too
