"""The fake Stripe server's own contract, checked over raw HTTP (other test suites rely on it)."""

from __future__ import annotations

import json
import re
import typing
import urllib.error
import urllib.request
from typing import Any

import pytest
import typing_extensions
from stripe._stripe_object import UntypedStripeObject

from tests.fake_stripe import FakeStripe
from tests.fake_stripe.forms import decode_form
from tests.fake_stripe.params import _fields, _is_scalar, _members, sdk_params_class
from tests.fake_stripe.server import ROUTES


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


# --- the fake refuses what Stripe refuses: parameters checked against the SDK's generated types ---------------


def intent_body(extra: str = "") -> str:
    base = "amount=500&currency=usd&confirm=true&payment_method=pm_card_visa"
    return f"{base}&{extra}" if extra else base


@pytest.mark.parametrize(
    ("extra", "status", "code", "param"),
    [
        ("totally_bogus=1", 400, "parameter_unknown", "totally_bogus"),
        ("payment_method_options[card][bogus]=1", 400, "parameter_unknown", "payment_method_options[card][bogus]"),
        # Removed in 2026-09-30.endive, with its own code rather than parameter_unknown.
        ("payment_method_types[0]=card", 400, "payment_method_types_no_longer_supported", "payment_method_types"),
        ("application_fee_amount=ten", 400, "parameter_invalid_integer", "application_fee_amount"),
        ("description=", 400, "parameter_invalid_empty", "description"),
        ("error_on_requires_action=maybe", 400, None, "error_on_requires_action"),
        ("metadata=flat", 400, None, "metadata"),
        ("expand=payment_method", 400, None, "expand"),
        ("capture_method[x]=1", 400, None, "capture_method"),
    ],
)
def test_a_parameter_the_sdk_types_do_not_allow_is_refused_before_anything_runs(
    fake_stripe: FakeStripe, extra: str, status: int, code: str | None, param: str
) -> None:
    got, body, _ = call(fake_stripe, "POST", "/v1/payment_intents", intent_body(extra))

    assert got == status, body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"].get("code") == code
    assert body["error"]["param"] == param
    assert fake_stripe.payment_intent_count == 0


def test_a_missing_required_parameter_is_refused(fake_stripe: FakeStripe) -> None:
    status, body, _ = call(fake_stripe, "POST", "/v1/payment_intents", "currency=usd")
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "parameter_missing", "amount")


def test_what_the_sdk_types_allow_is_accepted(fake_stripe: FakeStripe) -> None:
    # The refusals above are about the parameters, not about the request: the same request without them works.
    extra = "metadata[invoice_id]=7&expand[0]=payment_method&off_session=true&allowed_payment_method_types[0]=card"
    status, body, _ = call(fake_stripe, "POST", "/v1/payment_intents", intent_body(extra))
    assert status == 200, body
    assert body["status"] == "succeeded" and body["payment_method"]["card"]["last4"] == "4242"


def test_every_endpoint_the_fake_serves_checks_its_parameters(fake_stripe: FakeStripe) -> None:
    # A new route gets its params class from the SDK's own service for that URL, so it cannot skip the check;
    # this walks them all (ids in the path are placeholders: the parameters are refused before any lookup).
    assert ROUTES
    for route in ROUTES:
        path = re.sub(r"\{\w+\}", "xx_placeholder", route.template)
        if route.method == "POST":
            status, body, _ = call(fake_stripe, "POST", path, "totally_bogus=1")
        else:
            status, body, _ = call(fake_stripe, route.method, f"{path}?totally_bogus=1")
        assert (status, body["error"].get("code"), body["error"].get("param")) == (
            400,
            "parameter_unknown",
            "totally_bogus",
        ), f"{route.method} {route.template}"
        assert route.params_class is sdk_params_class(route.method, route.template)


def test_every_parameter_type_of_the_served_endpoints_is_one_the_fake_can_check() -> None:
    # The checker raises TypeError on a type it was never taught; find any such type now, not mid-test.
    seen: set[object] = set()

    def walk(tp: object) -> None:
        for member in _members(tp):
            if member in seen or _is_scalar(member):
                continue
            seen.add(member)
            origin = typing.get_origin(member)
            if origin is list:
                walk(typing.get_args(member)[0])
            elif origin is dict or origin is UntypedStripeObject:
                walk(typing.get_args(member)[-1])
            elif typing_extensions.is_typeddict(member):
                for field_type in _fields(typing.cast(type, member))[0].values():
                    walk(field_type)
            else:
                raise AssertionError(f"params.py cannot check {member!r}")

    for route in ROUTES:
        walk(route.params_class)
    assert len(seen) > len(ROUTES)  # the walk went below the top level


def test_an_unknown_sdk_endpoint_has_no_params_class() -> None:
    with pytest.raises(LookupError):
        sdk_params_class("POST", "/v1/payment_intents/{intent}/teleport")


def test_allowed_payment_method_types_drops_what_the_currency_cannot_use(fake_stripe: FakeStripe) -> None:
    types = "allowed_payment_method_types[0]=card&allowed_payment_method_types[1]=us_bank_account"
    body = f"amount=500&currency=eur&{types}"
    status, intent, _ = call(fake_stripe, "POST", "/v1/payment_intents", body)
    assert status == 200, intent
    assert intent["payment_method_types"] == ["card"]
    assert intent["allowed_payment_method_types"] == ["card", "us_bank_account"]

    bank = f"{body}&confirm=true&payment_method=pm_usBankAccount_success"
    status, refused, _ = call(fake_stripe, "POST", "/v1/payment_intents", bank)
    assert (status, refused["error"]["param"]) == (400, "payment_method")


def test_allowed_payment_method_types_excludes_automatic_payment_methods(fake_stripe: FakeStripe) -> None:
    body = "amount=500&currency=usd&allowed_payment_method_types[0]=card&automatic_payment_methods[enabled]=true"
    status, refused, _ = call(fake_stripe, "POST", "/v1/payment_intents", body)
    assert (status, refused["error"]["code"]) == (400, "parameters_exclusive")
