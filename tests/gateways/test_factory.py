"""gateway_from_config: Stripe when a secret key is configured, the sandbox otherwise."""

from __future__ import annotations

import pytest

from portal.config import ConfigError
from portal.gateways.payments import SandboxGateway, gateway_from_config, sandbox_token
from portal.gateways.payments.stripe_gateway import StripeGateway
from tests.fake_stripe import FakeStripe

from .conftest import FakeClock


@pytest.mark.parametrize("config", [{}, {"STRIPE_SECRET_KEY": ""}, {"STRIPE_SECRET_KEY": None}])
def test_no_secret_key_gives_the_sandbox(config: dict[str, str | None]) -> None:
    gateway = gateway_from_config(config)
    assert isinstance(gateway, SandboxGateway)
    assert gateway.is_sandbox and gateway.name == "sandbox"


def test_sandbox_settle_delay_and_clock_come_from_the_caller(clock: FakeClock) -> None:
    gateway = gateway_from_config({"SANDBOX_ACH_SETTLE_SECONDS": "5"}, now=clock)
    result = gateway.charge(
        idempotency_key="k",
        customer_id="sbx_cus_1",
        amount_cents=100,
        currency="usd",
        confirmation_token=sandbox_token("us_bank_account", "000123456789"),
        metadata={},
    )
    assert result.status == "processing"
    clock.advance(5)
    assert gateway.retrieve(result.gateway_id).status == "succeeded"


def test_secret_key_gives_stripe_pointed_at_the_configured_api_base(fake_stripe: FakeStripe) -> None:
    gateway = gateway_from_config(
        {
            "STRIPE_SECRET_KEY": fake_stripe.secret_key,
            "STRIPE_PUBLISHABLE_KEY": fake_stripe.publishable_key,
            "STRIPE_WEBHOOK_SECRET": fake_stripe.webhook_secret,
            "STRIPE_API_BASE": fake_stripe.url,
        }
    )
    assert isinstance(gateway, StripeGateway)
    try:
        assert (gateway.name, gateway.is_sandbox, gateway.publishable_key) == (
            "stripe",
            False,
            fake_stripe.publishable_key,
        )
        customer = gateway.ensure_customer(client_ref="c", name="C", email=None, existing_id=None)
        assert fake_stripe.customer(customer)["name"] == "C"  # it really talked to the fake
        payload, signature = fake_stripe.event("customer.created", fake_stripe.customer(customer))
        assert gateway.parse_webhook(payload, signature).object_id == customer
    finally:
        gateway.close()


@pytest.mark.parametrize("missing", ["STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_half_configured_stripe_fails_fast(missing: str) -> None:
    config = {
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    del config[missing]
    with pytest.raises(ConfigError, match=missing):
        gateway_from_config(config)
