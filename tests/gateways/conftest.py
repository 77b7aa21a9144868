"""Fixtures for gateway tests: one fake Stripe server per session, a fresh state per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from stripe.params.test_helpers import ConfirmationTokenCreateParams

from portal.domain import declines
from portal.gateways.payments import ChargeResult, PaymentGateway
from portal.gateways.payments.sandbox import SandboxGateway
from portal.gateways.payments.stripe_gateway import PINNED_API_VERSION, StripeGateway
from tests.fake_stripe import FakeStripe
from tests.fake_stripe.fixtures import fake_stripe, fake_stripe_server, make_stripe_gateway

# Importing the shared FakeStripe fixtures is what makes pytest offer them to the tests below this folder.
__all__ = ["fake_stripe", "fake_stripe_server", "make_stripe_gateway"]


@pytest.fixture
def gateway(fake_stripe: FakeStripe) -> Iterator[StripeGateway]:
    stripe_gateway = make_stripe_gateway(fake_stripe)
    yield stripe_gateway
    stripe_gateway.close()


@pytest.fixture
def customer_id(gateway: StripeGateway) -> str:
    return gateway.ensure_customer(client_ref="client-1", name="Acme Dental", email="ap@acme.test", existing_id=None)


@pytest.fixture
def make_token(fake_stripe: FakeStripe) -> Iterator[Callable[..., str]]:
    """Create a ConfirmationToken the way Stripe's test helper does, through the real SDK."""
    http = stripe.RequestsClient(timeout=5)
    client = stripe.StripeClient(
        fake_stripe.secret_key,
        base_addresses={"api": fake_stripe.url},
        stripe_version=PINNED_API_VERSION,
        http_client=http,
    )

    def create(payment_method: str = "pm_card_visa", setup_future_usage: str | None = None) -> str:
        params: ConfirmationTokenCreateParams = {"payment_method": payment_method}
        if setup_future_usage:
            params["setup_future_usage"] = setup_future_usage
        return client.v1.test_helpers.confirmation_tokens.create(params).id

    yield create
    http.close()


class FakeClock:
    """A controllable ``now()``: tests move time instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 3, 9, 30, tzinfo=UTC))


@pytest.fixture
def sandbox(clock: FakeClock) -> SandboxGateway:
    return SandboxGateway(now=clock, ach_settle_seconds=60)


def charge_saved(gateway: PaymentGateway, customer_id: str, method_id: str | None, **overrides: object) -> ChargeResult:
    """Autopay's charge: a saved method, off-session, for invoice 42."""
    arguments: dict[str, object] = {
        "idempotency_key": "autopay-1",
        "customer_id": customer_id,
        "payment_method": method_id,
        "amount_cents": 25_000,
        "currency": "usd",
        "metadata": {"invoice_id": "42"},
        **overrides,
    }
    return gateway.charge_saved_method(**arguments)  # type: ignore[arg-type]


def classify(result: ChargeResult) -> declines.Decline:
    """What the autopay decline rules make of a failed charge."""
    return declines.classify(
        method_type=result.method_type, failure_code=result.failure_code, decline_code=result.decline_code
    )
