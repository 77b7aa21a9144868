"""Configuration: defaults overridden by ``PORTAL_*`` environment variables (a ``.env`` file is honoured).

Outside demo and test mode a missing secret key is a startup error, never a silent fallback.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


class ConfigError(RuntimeError):
    pass


# name -> (default, parser). Every key is read from the environment as PORTAL_<NAME>.
def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


_SETTINGS: dict[str, tuple[Any, Any]] = {
    "ENV": ("production", str),  # production | demo | test
    "INSTANCE_PATH": ("instance", str),
    "DATABASE_URL": (None, str),
    "SECRET_KEY": (None, str),
    "BASE_URL": ("http://127.0.0.1:5000", str),
    "SMTP_URL": (None, str),
    "MAIL_FROM": (None, str),
    "STRIPE_SECRET_KEY": (None, str),
    "STRIPE_PUBLISHABLE_KEY": (None, str),
    "STRIPE_WEBHOOK_SECRET": (None, str),
    "STRIPE_API_BASE": (None, str),
    "RATELIMIT_STORAGE_URI": ("memory://", str),
    "RATELIMIT_ENABLED": (True, _bool),
    "SIGN_IN_LINK_MINUTES": (15, int),
    "INVOICE_PAGE_SIZE": (25, int),
    # How many reverse proxies (nginx, a load balancer) sit in front of the app. Their X-Forwarded-* headers are
    # trusted only when this is set; otherwise rate limits and evidence would record the proxy's address.
    "TRUSTED_PROXIES": (0, int),
    "INVOICE_LINK_DAYS_AFTER_DUE": (30, int),  # an emailed invoice link works until due date + this many days
    # Gateway requests per second `portal run-due` may send (per node): Stripe allows ~100 live, 25 in test mode.
    "GATEWAY_RATE_LIMIT": (25, float),
    # How many of those charging threads work on the database at once (the others wait for the gateway).
    "RUN_DUE_DATABASE_THREADS": (2, int),
    # Authenticates the heads of the agreements' evidence chains; unset: a key file made in the instance folder.
    "EVIDENCE_KEY": (None, str),
    # How long a sandbox bank debit stays "processing" before reconcile settles it (no effect with Stripe keys).
    # (the sandbox's own DEFAULT_ACH_SETTLE_SECONDS is the same minute, for a gateway built without a config)
    "SANDBOX_ACH_SETTLE_SECONDS": (60, int),
    # Pages show the MSP's settings from a per-process copy: a save on another worker or node shows within this.
    "SETTINGS_CACHE_SECONDS": (5, float),
    # Largest deliverable file staff may attach to an invoice (bytes); requests may be 1 MiB larger (the form).
    "DELIVERABLE_MAX_BYTES": (15 * 1024 * 1024, int),
}


def load_config(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping. ``overrides`` (tests) win over the environment."""
    env = os.environ if environ is None else environ
    cfg: dict[str, Any] = {}
    for name, (default, parse) in _SETTINGS.items():
        raw = env.get(f"PORTAL_{name}")
        cfg[name] = parse(raw) if raw not in (None, "") else default
    cfg.update(overrides or {})

    mode = cfg["ENV"]
    if mode not in {"production", "demo", "test"}:
        raise ConfigError(f"PORTAL_ENV must be production, demo or test, not {mode!r}")
    instance = Path(cfg["INSTANCE_PATH"]).resolve()
    cfg["INSTANCE_PATH"] = str(instance)
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{instance / 'portal.db'}"
    if not cfg["SECRET_KEY"]:
        if mode == "production":
            raise ConfigError("PORTAL_SECRET_KEY is required (generate one with: python -c 'import secrets; "
                              "print(secrets.token_urlsafe(48))')")
        cfg["SECRET_KEY"] = _local_secret(instance) if mode == "demo" else secrets.token_urlsafe(32)

    https = cfg["BASE_URL"].startswith("https://")
    cfg.update(
        TESTING=mode == "test",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=https,
        REMEMBER_COOKIE_HTTPONLY=True,
        PREFERRED_URL_SCHEME="https" if https else "http",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session; the session cookie is what expires
        MAX_CONTENT_LENGTH=max(16 * 1024 * 1024, cfg["DELIVERABLE_MAX_BYTES"] + 1024 * 1024),
        RATELIMIT_STORAGE_URI=cfg["RATELIMIT_STORAGE_URI"],
        RATELIMIT_ENABLED=cfg["RATELIMIT_ENABLED"],
        RATELIMIT_HEADERS_ENABLED=True,
    )
    return cfg


def _local_secret(instance: Path) -> str:
    """Demo mode only: a random key kept in the instance folder so demo sessions survive a restart."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "demo-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
