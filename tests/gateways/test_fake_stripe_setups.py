"""The fake Stripe server's SetupIntent, PaymentMethod and mandate rules, over raw HTTP, plus its test helpers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.fake_stripe import FakeStripe
from tests.gateways.test_fake_stripe import call


def customer(fake: FakeStripe) -> str:
    status, body, _ = call(fake, "POST", "/v1/customers", "name=Acme")
    assert status == 200
    return body["id"]


def saved_card(fake: FakeStripe, customer_id: str, method: str = "pm_card_visa") -> dict[str, Any]:
    status, body, _ = call(
        fake, "POST", "/v1/setup_intents", f"customer={customer_id}&confirm=true&payment_method={method}"
    )
    assert status == 200 and body["status"] == "succeeded", body
    return fake.payment_method(body["payment_method"])


def test_setup_intents_refuse_the_removed_payment_method_types(fake_stripe: FakeStripe) -> None:
    status, body, _ = call(fake_stripe, "POST", "/v1/setup_intents", "payment_method_types[0]=card")
    assert (status, body["error"]["code"]) == (400, "payment_method_types_no_longer_supported")
    assert fake_stripe.ledger.setup_intents == {}


def test_a_setup_intent_can_be_confirmed_later_but_only_once(fake_stripe: FakeStripe) -> None:
    cus = customer(fake_stripe)
    status, created, _ = call(fake_stripe, "POST", "/v1/setup_intents", f"customer={cus}&payment_method=pm_card_visa")
    assert (status, created["status"], created["usage"]) == (200, "requires_confirmation", "off_session")
    assert "_pending_params" not in created  # the fake's bookkeeping never leaks into Stripe's objects

    status, confirmed, _ = call(fake_stripe, "POST", f"/v1/setup_intents/{created['id']}/confirm")
    again, refused, _ = call(fake_stripe, "POST", f"/v1/setup_intents/{created['id']}/confirm")

    assert (status, confirmed["status"]) == (200, "succeeded")
    assert fake_stripe.payment_method(confirmed["payment_method"])["customer"] == cus
    assert (again, refused["error"]["code"]) == (400, "setup_intent_unexpected_state")


def test_a_bank_account_without_any_mandate_is_refused(fake_stripe: FakeStripe) -> None:
    body = f"customer={customer(fake_stripe)}&confirm=true&payment_method=pm_usBankAccount_success"
    status, refused, _ = call(fake_stripe, "POST", "/v1/setup_intents", body)
    assert (status, refused["error"]["param"], refused["error"]["code"]) == (400, "mandate_data", "parameter_missing")


def test_a_setup_intent_limited_to_cards_refuses_a_bank_account(fake_stripe: FakeStripe) -> None:
    body = (
        f"customer={customer(fake_stripe)}&confirm=true&payment_method=pm_usBankAccount_success"
        "&allowed_payment_method_types[0]=card&mandate_data[customer_acceptance][type]=offline"
    )
    status, refused, _ = call(fake_stripe, "POST", "/v1/setup_intents", body)
    assert (status, refused["error"]["param"]) == (400, "payment_method")


def test_verify_microdeposits_needs_a_waiting_setup_and_the_right_kind(fake_stripe: FakeStripe) -> None:
    cus = customer(fake_stripe)
    status, card_setup, _ = call(
        fake_stripe, "POST", "/v1/setup_intents", f"customer={cus}&confirm=true&payment_method=pm_card_visa"
    )
    status, body, _ = call(
        fake_stripe, "POST", f"/v1/setup_intents/{card_setup['id']}/verify_microdeposits", "amounts[0]=32&amounts[1]=45"
    )
    assert (status, body["error"]["code"]) == (400, "setup_intent_unexpected_state")

    token = fake_stripe.confirmation_token("pm_usBankAccount_success")
    options = "payment_method_options[us_bank_account][verification_method]=microdeposits"
    _, pending, _ = call(
        fake_stripe, "POST", "/v1/setup_intents", f"customer={cus}&confirm=true&confirmation_token={token}&{options}"
    )
    path = f"/v1/setup_intents/{pending['id']}/verify_microdeposits"
    assert call(fake_stripe, "POST", path, "descriptor_code=SM11AA")[0] == 400  # amounts were asked for
    assert call(fake_stripe, "POST", path, "amounts[0]=32")[1]["error"]["code"].endswith("amounts_invalid")
    assert call(fake_stripe, "POST", path, "amounts[0]=thirty&amounts[1]=45")[1]["error"]["param"] == "amounts[0]"
    status, verified, _ = call(fake_stripe, "POST", path, "amounts[0]=45&amounts[1]=32")
    assert (status, verified["status"], verified["next_action"]) == (200, "succeeded", None)


def test_customer_payment_methods_list_and_scoped_lookup(fake_stripe: FakeStripe) -> None:
    cus, other = customer(fake_stripe), customer(fake_stripe)
    card = saved_card(fake_stripe, cus)
    saved_card(fake_stripe, other)

    status, page, _ = call(fake_stripe, "GET", f"/v1/customers/{cus}/payment_methods")
    assert (status, [m["id"] for m in page["data"]], page["has_more"]) == (200, [card["id"]], False)
    assert call(fake_stripe, "GET", f"/v1/customers/{cus}/payment_methods?type=us_bank_account")[1]["data"] == []
    assert call(fake_stripe, "GET", f"/v1/customers/{cus}/payment_methods?limit=0")[0] == 400
    assert call(fake_stripe, "GET", f"/v1/customers/{cus}/payment_methods/{card['id']}")[0] == 200
    status, body, _ = call(fake_stripe, "GET", f"/v1/customers/{other}/payment_methods/{card['id']}")
    assert (status, body["error"]["code"]) == (404, "resource_missing")


def test_attach_and_detach_rules(fake_stripe: FakeStripe) -> None:
    cus, other = customer(fake_stripe), customer(fake_stripe)
    status, attached, _ = call(fake_stripe, "POST", "/v1/payment_methods/pm_card_visa/attach", f"customer={cus}")
    assert (status, attached["customer"]) == (200, cus)
    pm = attached["id"]
    assert call(fake_stripe, "POST", f"/v1/payment_methods/{pm}/attach", f"customer={other}")[0] == 400
    bank = call(fake_stripe, "POST", "/v1/payment_methods/pm_usBankAccount_success/attach", f"customer={cus}")
    assert bank[0] == 400  # bank accounts are attached only through a verified SetupIntent

    assert call(fake_stripe, "POST", f"/v1/payment_methods/{pm}/detach")[0] == 200
    status, body, _ = call(fake_stripe, "POST", f"/v1/payment_methods/{pm}/detach")
    assert (status, body["error"]["code"]) == (400, "payment_method_unexpected_state")
    assert call(fake_stripe, "POST", f"/v1/payment_methods/{pm}/attach", f"customer={cus}")[0] == 400


def test_charges_by_counts_created_payment_intents_per_invoice(fake_stripe: FakeStripe) -> None:
    for key, invoice in (("a", "1"), ("a", "1"), ("b", "2"), ("c", "2")):
        body = f"amount=500&currency=usd&confirm=true&payment_method=pm_card_visa&metadata[invoice_id]={invoice}"
        call(fake_stripe, "POST", "/v1/payment_intents", body, **{"Idempotency-Key": key})
    assert fake_stripe.charges_by("invoice_id") == {"1": 1, "2": 2}  # the replay of "a" created nothing


def test_latency_is_added_outside_the_lock(fake_stripe: FakeStripe) -> None:
    fake_stripe.latency_seconds = 1.0
    together = threading.Barrier(4)

    def request() -> None:
        together.wait()
        call(fake_stripe, "GET", "/v1/customers/cus_x")

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # the answers waited side by side (counted by the fake, not timed here); inside the lock it would be 1
    assert fake_stripe.peak_waiting >= 2
    fake_stripe.reset()
    assert (fake_stripe.latency_seconds, fake_stripe.peak_waiting) == (0, 0)


@pytest.mark.parametrize("microdeposit_type", ["cents", ""])
def test_unknown_microdeposit_type_is_refused(fake_stripe: FakeStripe, microdeposit_type: str) -> None:
    with pytest.raises(ValueError):
        fake_stripe.use_microdeposit_type(microdeposit_type)
