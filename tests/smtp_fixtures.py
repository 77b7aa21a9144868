"""Fixtures for test modules whose app sends mail through the loopback SMTP server (tests/smtp_server.py).

Import them into the test module; pytest registers them under the names given in the decorators::

    from tests.smtp_fixtures import mail_through_smtp, retry_mail_quickly  # noqa: F401 (fixtures)

    pytestmark = pytest.mark.usefixtures("quick_retries")   # or ask for `quick_retries` in the tests that need it

The imported names differ from the fixture names so that a test taking ``app_config`` does not shadow an import.
"""

from __future__ import annotations

import pytest

from portal.gateways import email


@pytest.fixture(name="app_config")
def mail_through_smtp(app_config, smtp_server):
    """The app's mail goes to the loopback SMTP server instead of the outbox (set before ``app`` is built)."""
    app_config["SMTP_URL"] = smtp_server.url
    return app_config


@pytest.fixture(name="quick_retries")
def retry_mail_quickly(monkeypatch):
    """A refused message is retried after hundredths of a second instead of the production delays."""
    monkeypatch.setattr(email, "RETRY_DELAYS", (0.01, 0.01))
