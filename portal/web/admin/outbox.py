"""The outbox: emails written to instance/outbox when no SMTP server is configured (demo, fresh installs)."""

from __future__ import annotations

from pathlib import Path

from flask import current_app, render_template

from portal.services import outbox as outbox_service
from portal.services.reports import Page
from portal.web.auth.identity import staff_required

from .common import page_arg
from .routes import bp

PER_PAGE = 50


def _folder() -> Path:
    return Path(current_app.instance_path) / "outbox"


@bp.get("/outbox")
@staff_required
def outbox():
    names = outbox_service.message_names(_folder())
    number = min(page_arg(), Page([], 1, PER_PAGE, len(names)).pages)
    shown = names[(number - 1) * PER_PAGE: number * PER_PAGE]  # parse only the messages on this page
    page = Page(outbox_service.summaries(_folder(), shown), number, PER_PAGE, len(names))
    return render_template("admin/outbox/list.html", page=page, smtp=bool(current_app.config.get("SMTP_URL")))


@bp.get("/outbox/<name>")
@staff_required
def outbox_message(name: str):
    return render_template("admin/outbox/message.html", message=outbox_service.read_message(_folder(), name))
