"""Configuration fails fast: a production install without a secret key, or with half its Stripe keys, does not
start, instead of failing later in front of a client."""

import pytest

from portal import create_app
from portal.config import ConfigError, load_config
from portal.gateways.payments import SandboxGateway


def test_production_needs_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY"):
        load_config({"ENV": "production", "INSTANCE_PATH": str(tmp_path)}, environ={})


def test_environment_variables_are_read(tmp_path):
    cfg = load_config(environ={"PORTAL_ENV": "test", "PORTAL_INSTANCE_PATH": str(tmp_path),
                               "PORTAL_BASE_URL": "https://pay.example.com", "PORTAL_SIGN_IN_LINK_MINUTES": "10"})
    assert cfg["BASE_URL"] == "https://pay.example.com"
    assert cfg["SIGN_IN_LINK_MINUTES"] == 10
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["DATABASE_URL"] == f"sqlite:///{tmp_path.resolve() / 'portal.db'}"


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ConfigError):
        load_config({"ENV": "staging", "INSTANCE_PATH": str(tmp_path)}, environ={})


def test_half_configured_stripe_stops_the_app_at_startup(app_config):
    with pytest.raises(ConfigError, match="PORTAL_STRIPE_PUBLISHABLE_KEY"):
        create_app({**app_config, "STRIPE_SECRET_KEY": "sk_test_123"})


def test_no_stripe_key_means_the_sandbox(app):
    assert isinstance(app.extensions["payment_gateway"], SandboxGateway)


def test_the_sandbox_bank_settling_delay_is_read_from_the_environment(tmp_path, app_config):
    cfg = load_config(environ={"PORTAL_ENV": "test", "PORTAL_INSTANCE_PATH": str(tmp_path),
                               "PORTAL_SANDBOX_ACH_SETTLE_SECONDS": "5"})
    assert cfg["SANDBOX_ACH_SETTLE_SECONDS"] == 5
    assert load_config(environ={"PORTAL_ENV": "test", "PORTAL_INSTANCE_PATH": str(tmp_path)}
                       )["SANDBOX_ACH_SETTLE_SECONDS"] == 60
    app = create_app({**app_config, "SANDBOX_ACH_SETTLE_SECONDS": cfg["SANDBOX_ACH_SETTLE_SECONDS"]})
    assert app.extensions["payment_gateway"]._ach_settle_seconds == 5  # what the sandbox's bank debits wait
