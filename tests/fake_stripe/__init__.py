"""A fake Stripe API server for tests: the real ``stripe`` SDK talks to it over loopback.

Typical use (the fixtures in fixtures.py keep one per session and call ``reset()`` per test)::

    with FakeStripe() as fake:                      # 127.0.0.1, a free port; fake.url
        gateway = StripeGateway(secret_key=fake.secret_key, publishable_key=fake.publishable_key,
                                webhook_secret=fake.webhook_secret, api_base=fake.url)
        token = fake.confirmation_token("pm_card_visa")
        result = gateway.charge(..., confirmation_token=token)
        fake.settle(pi_id) / fake.fail(pi_id)       # decide a processing bank debit (a scripted return fails)
        fake.authenticate_setup(seti_id, passed=False)  # fake-only: decide a card's 3-D Secure while it is saved
        fake.charges_by("invoice_id")               # Counter of PaymentIntents created per invoice
        fake.latency_seconds = 0.1                  # every answer takes 100 ms (outside the lock)
        fake.fail_next(500)                         # the next request hits an outage
        payload, signature = fake.payment_intent_event("payment_intent.succeeded", pi_id)
"""

from .catalog import TEST_METHODS
from .server import (
    TEST_PUBLISHABLE_KEY,
    TEST_SECRET_KEY,
    TEST_WEBHOOK_SECRET,
    FakeStripe,
    RecordedRequest,
)

__all__ = [
    "TEST_METHODS",
    "TEST_PUBLISHABLE_KEY",
    "TEST_SECRET_KEY",
    "TEST_WEBHOOK_SECRET",
    "FakeStripe",
    "RecordedRequest",
]
