"""MSP client payment portal: ``create_app`` is the only entry point (wsgi.py, the CLI and tests use it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """``config`` overrides the environment (tests pass ``{"ENV": "test", ...}``)."""
    load_dotenv(ROOT / ".env", override=False)
    from .config import load_config

    settings = load_config(config)
    app = Flask(
        __name__,
        instance_path=settings["INSTANCE_PATH"],
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(settings)
    for step in (_register_instance, _register_db, _register_extensions, _register_gateways,
                 _register_blueprints, _register_cli, _register_errors, _register_security):
        step(app)
    return app


def _register_instance(app: Flask) -> None:
    for sub in ("", "outbox", "uploads"):
        (Path(app.instance_path) / sub).mkdir(parents=True, exist_ok=True)


def _register_db(app: Flask) -> None:
    from . import db

    db.init_app(app)


def _register_extensions(app: Flask) -> None:
    from .extensions import csrf, limiter, login_manager
    from .web.auth import identity

    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    identity.init_app(app)


def _register_gateways(app: Flask) -> None:
    from . import clock
    from .gateways.payments import gateway_from_config

    # built now so half-configured Stripe keys stop the app at startup, not at a client's first payment
    app.extensions["payment_gateway"] = gateway_from_config(app.config, now=clock.now)


def _register_blueprints(app: Flask) -> None:
    from .web import register_blueprints, runtime, template_helpers

    register_blueprints(app)
    template_helpers.init_app(app)
    runtime.init_app(app)  # after the blueprints: it builds links over the real routes


def _register_cli(app: Flask) -> None:
    from . import cli

    cli.init_app(app)


def _register_errors(app: Flask) -> None:
    from .web import errors

    errors.init_app(app)


def _register_security(app: Flask) -> None:
    from .web import security

    security.init_app(app)
