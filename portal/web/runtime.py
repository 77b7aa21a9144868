"""Builds the services' Runtime once, at startup, from the app's configuration and its real routes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, current_app, render_template

from portal.gateways.email import Mailer, transport_from_config
from portal.gateways.pdf import PdfRenderer
from portal.services.runtime import Runtime


def init_app(app: Flask) -> None:
    app.extensions["runtime"] = build(app)


def runtime() -> Runtime:
    """The app's Runtime, for views and commands to hand to services."""
    return current_app.extensions["runtime"]


def build(app: Flask) -> Runtime:
    base_url = app.config["BASE_URL"].rstrip("/")
    parts = urlsplit(base_url)
    # bound once to the public address, so links built outside a request (emails from `portal run-due`) are the
    # same as those built inside one, whatever Host header a request came with
    adapter = app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme or "http")

    def url(endpoint: str, **values) -> str:
        return adapter.build(endpoint, values, force_external=True)

    instance = Path(app.instance_path)
    return Runtime(
        base_url=base_url, secret_key=app.config["SECRET_KEY"], instance_path=instance, url=url,
        mailer=Mailer(transport_from_config(app.config.get("SMTP_URL"), instance / "outbox"), render=render_template,
                      host=parts.hostname or "localhost", mail_from=app.config.get("MAIL_FROM")),
        pdf=PdfRenderer(render=render_template, static=Path(app.static_folder or "."), uploads=instance / "uploads"),
        gateway=app.extensions["payment_gateway"], config=app.config,
    )
