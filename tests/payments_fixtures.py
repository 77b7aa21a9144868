"""Fixtures and helpers for the online-payment tests (integration, webhooks, web, e2e).

Test modules take them with ``from tests.payments_fixtures import *``. The real ``stripe`` SDK talks to the fake
Stripe server in tests/fake_stripe over loopback; the sandbox gateway runs on the test's FrozenClock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.gateways.payments import SandboxGateway
from portal.gateways.payments.stripe_gateway import StripeGateway
from portal.models import Client, Contact, Invoice
from portal.services import ledger, payments
from tests.fake_stripe import FakeStripe
from tests.fake_stripe.fixtures import fake_stripe, fake_stripe_server, make_stripe_gateway

__all__ = [
    "Shop", "count", "fake_stripe", "fake_stripe_server", "invoice_state", "read_outbox", "runtime_for",
    "sandbox_gateway", "shop", "stripe_config", "stripe_gateway",
]


def stripe_config(fake: FakeStripe) -> dict:
    """app_config entries that put the app in Stripe mode against the fake."""
    return {"STRIPE_SECRET_KEY": fake.secret_key, "STRIPE_PUBLISHABLE_KEY": fake.publishable_key,
            "STRIPE_WEBHOOK_SECRET": fake.webhook_secret, "STRIPE_API_BASE": fake.url}


@pytest.fixture
def stripe_gateway(app, fake_stripe) -> Iterator[StripeGateway]:
    """The app's gateway: Stripe (real SDK) against the fake, without SDK retries so an injected outage shows."""
    gateway = make_stripe_gateway(fake_stripe)
    use_gateway(app, gateway)
    yield gateway
    gateway.close()


@pytest.fixture
def sandbox_gateway(app, clock) -> SandboxGateway:
    gateway = SandboxGateway(now=clock.now, ach_settle_seconds=60)
    use_gateway(app, gateway)
    return gateway


def runtime_for(gateway):
    """The app's Runtime on this gateway, for tests that call the payment services directly."""
    from flask import current_app

    return replace(current_app.extensions["runtime"], gateway=gateway)


def use_gateway(app, gateway) -> None:
    """Put the app (and the Runtime its views and services get) on this gateway."""
    app.extensions["payment_gateway"] = gateway
    app.extensions["runtime"] = replace(app.extensions["runtime"], gateway=gateway)


@dataclass
class Shop:
    """One client with a billing contact and two open invoices ($100.00 due first, then $250.00)."""

    client: Client
    contact: Contact
    first: Invoice
    second: Invoice


@pytest.fixture
def shop(make) -> Shop:
    from datetime import date

    client = make.client("Acme Dental LLC", region="CT")
    contact = make.contact(client, email="pat@acme-dental.test", name="Pat Doe")
    first = make.invoice(client, 10_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    second = make.invoice(client, 25_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))
    return Shop(client, contact, first, second)


def invoice_state(session, invoice: Invoice) -> tuple[str, int]:
    """(status, balance) as the database has it now."""
    session.expire_all()
    fresh = session.get(Invoice, invoice.id)
    return fresh.status, ledger.balance_of(session, fresh)


def count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def read_outbox(outbox: Path) -> list[EmailMessage]:
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]


def new_request(session, shop_: Shop, amounts: dict[int, int] | None = None):
    amounts = amounts or {shop_.first.id: shop_.first.total_cents}
    return payments.create_request(session, client=shop_.client, contact=shop_.contact, amounts=amounts)
