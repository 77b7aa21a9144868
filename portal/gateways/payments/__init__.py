"""Payment gateways: Stripe in production, the built-in sandbox for the demo.

Services import from here (``from portal.gateways.payments import PaymentGateway, ChargeResult``)
and never from ``stripe``. The Stripe adapter is imported lazily so the sandbox demo and the services
layer do not load the SDK at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from portal import clock
from portal.config import ConfigError

from .base import (
    FINAL_CHARGE_STATUSES,
    BankVerification,
    ChargeResult,
    ChargeStatus,
    DisputeUpdate,
    GatewayError,
    GatewayRequestError,
    GatewayUnavailable,
    IdempotencyConflict,
    InvalidWebhook,
    MandateAcceptance,
    MethodPreview,
    PaymentGateway,
    RefundResult,
    RefundUpdate,
    SavedMethodDetails,
    SetupResult,
    SetupStatus,
    WebhookEvent,
)
from .sandbox import DEFAULT_ACH_SETTLE_SECONDS, SandboxGateway, sandbox_token

__all__ = [
    "FINAL_CHARGE_STATUSES",
    "BankVerification",
    "ChargeResult",
    "ChargeStatus",
    "DisputeUpdate",
    "GatewayError",
    "GatewayRequestError",
    "GatewayUnavailable",
    "IdempotencyConflict",
    "InvalidWebhook",
    "MandateAcceptance",
    "MethodPreview",
    "PaymentGateway",
    "RefundResult",
    "RefundUpdate",
    "SandboxGateway",
    "SavedMethodDetails",
    "SetupResult",
    "SetupStatus",
    "WebhookEvent",
    "gateway_from_config",
    "sandbox_token",
]


def gateway_from_config(config: Mapping[str, Any], *, now: Callable[[], datetime] = clock.now) -> PaymentGateway:
    """Stripe when ``STRIPE_SECRET_KEY`` is set, otherwise the sandbox.

    A secret key without the publishable key or the webhook secret is a half-configured production
    install; failing here beats discovering it when the first webhook is rejected.
    ``SANDBOX_ACH_SETTLE_SECONDS`` tunes how long sandbox bank debits stay "processing".
    """
    secret_key = config.get("STRIPE_SECRET_KEY")
    if not secret_key:
        return SandboxGateway(
            now=now,
            ach_settle_seconds=int(config.get("SANDBOX_ACH_SETTLE_SECONDS", DEFAULT_ACH_SETTLE_SECONDS)),
        )
    missing = [key for key in ("STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET") if not config.get(key)]
    if missing:
        raise ConfigError(f"PORTAL_STRIPE_SECRET_KEY is set but {', '.join('PORTAL_' + m for m in missing)} is not")
    from .stripe_gateway import StripeGateway

    return StripeGateway(
        secret_key=secret_key,
        publishable_key=config["STRIPE_PUBLISHABLE_KEY"],
        webhook_secret=config["STRIPE_WEBHOOK_SECRET"],
        api_base=config.get("STRIPE_API_BASE") or None,
    )
