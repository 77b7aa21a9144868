"""The objects the fake Stripe server returns carry every field the SDK says Stripe always returns.

The SDK's resource classes (``stripe.PaymentIntent`` ...) annotate each field; one whose type does not admit
None is always present in Stripe's JSON. Checked recursively into nested objects that are present.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, Union

import stripe
from stripe._stripe_object import StripeObject, UntypedStripeObject

from tests.fake_stripe import FakeStripe
from tests.gateways.test_fake_stripe import call

RESOURCES: dict[str, type[StripeObject]] = {
    "payment_intent": stripe.PaymentIntent,
    "customer": stripe.Customer,
    "confirmation_token": stripe.ConfirmationToken,
    "payment_method": stripe.PaymentMethod,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "event": stripe.Event,
    "setup_intent": stripe.SetupIntent,
    "mandate": stripe.Mandate,
    "list": stripe.ListObject,
}


def shape_errors(resource: type, obj: dict[str, Any], where: str) -> list[str]:
    """Each always-present field of ``resource`` that ``obj`` lacks or holds with the wrong kind of value."""
    errors: list[str] = []
    for name, tp in resource.__annotations__.items():
        if typing.get_origin(tp) is typing.ClassVar:
            continue
        members = typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)
        nullable = type(None) in members
        if name not in obj:
            if not nullable:
                errors.append(f"{where}.{name} is missing")
            continue
        value = obj[name]
        if value is None:
            if not nullable:
                errors.append(f"{where}.{name} is null")
            continue
        if not any(_fits(member, value) for member in members if member is not type(None)):
            errors.append(f"{where}.{name}={value!r} does not fit {tp!r}")
            continue
        for member in members:
            if isinstance(member, type) and issubclass(member, StripeObject) and isinstance(value, dict):
                kind = value.get("object")  # an expanded resource names itself; a nested part does not
                nested = RESOURCES.get(kind, member) if isinstance(kind, str) else member
                errors += shape_errors(nested, value, f"{where}.{name}")
    return errors


def _fits(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin is list:
        return isinstance(value, list)
    if origin in (dict, UntypedStripeObject) or tp is dict:
        return isinstance(value, dict)
    if isinstance(tp, typing.ForwardRef | str):
        return isinstance(value, dict)  # an expandable field, expanded
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(tp, type) and issubclass(tp, StripeObject):
        return isinstance(value, dict)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # a construct this check does not know: presence was still checked


def objects_from_a_day_of_payments(fake: FakeStripe) -> list[dict[str, Any]]:
    """Every kind of object the fake hands out, from the same requests the portal makes."""
    objects: list[dict[str, Any]] = []

    def post(path: str, body: str) -> dict[str, Any]:
        status, payload, _ = call(fake, "POST", path, body)
        assert status in (200, 402), payload
        objects.append(payload if status == 200 else payload["error"]["payment_intent"])
        return payload

    customer = post("/v1/customers", "name=Acme&metadata[portal_client_ref]=c1")
    token = post("/v1/test_helpers/confirmation_tokens", "payment_method=pm_card_visa")
    expand = "expand[0]=payment_method"
    paid = post(
        "/v1/payment_intents",
        f"amount=5000&currency=usd&confirm=true&customer={customer['id']}&confirmation_token={token['id']}&{expand}",
    )
    post("/v1/payment_intents", "amount=5000&currency=usd&confirm=true&payment_method=pm_card_chargeDeclined")
    ach = post("/v1/payment_intents", "amount=5000&currency=usd&confirm=true&payment_method=pm_usBankAccount_success")
    waiting = post(
        "/v1/payment_intents", "amount=5000&currency=usd&confirm=true&payment_method=pm_card_authenticationRequired"
    )
    post(f"/v1/payment_intents/{waiting['id']}/cancel", "")
    post("/v1/refunds", f"payment_intent={paid['id']}&amount=100")
    status, with_charge, _ = call(fake, "GET", f"/v1/payment_intents/{paid['id']}?expand[0]=latest_charge")
    assert status == 200
    objects += [with_charge, paid["payment_method"], fake.charge(ach["id"]), fake.settle(ach["id"])]
    dispute = fake.create_dispute(paid["id"])
    objects.append(dispute)
    payload, _ = fake.event("charge.dispute.created", dispute)
    objects.append(json.loads(payload))
    # Saving methods for autopay: a card, and a bank account verified by microdeposits (its mandate, the list).
    card_token = post("/v1/test_helpers/confirmation_tokens", "payment_method=pm_card_visa")
    post("/v1/setup_intents", f"customer={customer['id']}&confirm=true&confirmation_token={card_token['id']}")
    bank_token = post("/v1/test_helpers/confirmation_tokens", "payment_method=pm_usBankAccount_success")
    microdeposits = "payment_method_options[us_bank_account][verification_method]=microdeposits"
    pending = post(
        "/v1/setup_intents",
        f"customer={customer['id']}&confirm=true&confirmation_token={bank_token['id']}&{microdeposits}",
    )
    verified = post(f"/v1/setup_intents/{pending['id']}/verify_microdeposits", "amounts[0]=32&amounts[1]=45")
    for path in (f"/v1/mandates/{verified['mandate']}", f"/v1/customers/{customer['id']}/payment_methods"):
        status, obj, _ = call(fake, "GET", path)
        assert status == 200, obj
        objects.append(obj)
    status, deleted, _ = call(fake, "DELETE", f"/v1/customers/{customer['id']}")
    assert status == 200 and deleted == {"id": customer["id"], "object": "customer", "deleted": True}
    return objects


def test_every_object_carries_the_fields_stripe_always_returns(fake_stripe: FakeStripe) -> None:
    objects = objects_from_a_day_of_payments(fake_stripe)

    errors = [e for obj in objects for e in shape_errors(RESOURCES[obj["object"]], obj, obj["object"])]

    assert {obj["object"] for obj in objects} == set(RESOURCES)
    assert errors == []


def test_the_shape_check_notices_a_missing_field(fake_stripe: FakeStripe) -> None:
    intent = next(o for o in objects_from_a_day_of_payments(fake_stripe) if o["object"] == "payment_intent")
    del intent["amount_capturable"]
    intent["livemode"] = "no"
    assert shape_errors(stripe.PaymentIntent, intent, "pi") == [
        "pi.amount_capturable is missing",
        "pi.livemode='no' does not fit <class 'bool'>",
    ]
