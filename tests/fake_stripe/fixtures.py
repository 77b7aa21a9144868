"""pytest fixtures for the fake Stripe server: one server per test session, a fresh state per test.

Shared by tests/gateways/conftest.py (the adapter on its own) and tests/payments_fixtures.py (the app in Stripe
mode); import the fixtures by name into a conftest or test module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portal.gateways.payments.stripe_gateway import StripeGateway

from .server import FakeStripe


@pytest.fixture(scope="session")
def fake_stripe_server() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def fake_stripe(fake_stripe_server: FakeStripe) -> FakeStripe:
    fake_stripe_server.reset()
    return fake_stripe_server


def make_stripe_gateway(
    fake: FakeStripe, *, secret_key: str | None = None, max_network_retries: int = 0
) -> StripeGateway:
    """A Stripe gateway (real SDK) pointed at the fake.

    No SDK retries by default: an injected outage must surface, and retries sleep.
    """
    return StripeGateway(
        secret_key=secret_key or fake.secret_key,
        publishable_key=fake.publishable_key,
        webhook_secret=fake.webhook_secret,
        api_base=fake.url,
        max_network_retries=max_network_retries,
        timeout_seconds=5.0,
    )
