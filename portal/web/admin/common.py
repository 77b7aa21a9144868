"""Helpers shared by the admin views: loading a record or 404, paging and filter arguments, the signed-in staff
user, the pick-a-client page and PDF downloads."""

from __future__ import annotations

import importlib
import importlib.util
from io import BytesIO
from types import ModuleType
from typing import TypeVar

from flask import Response, render_template, request, send_file
from flask_login import current_user

from portal import db
from portal.domain.money import format_money
from portal.models import Client, StaffUser
from portal.services import reports
from portal.services.errors import NotFound
from portal.services.settings import get_settings
from portal.web import params

T = TypeVar("T")
PAGE_SIZE = 25
PDF_MODULE = "portal.services.documents"  # PDFs are built separately; links appear only when it is installed


def get_or_404(model: type[T], record_id: int) -> T:
    record = db.session().get(model, record_id)
    if record is None:
        raise NotFound()
    return record


def page_arg() -> int:
    return params.page_arg()


def current_staff() -> StaffUser:
    return current_user.record


def money_text(cents: int, currency: str | None = None) -> str:
    """An amount for a flash message (templates use the ``money`` filter)."""
    return format_money(cents, currency or get_settings(db.session()).currency)


def client_arg() -> Client | None:
    """``?client=<id>``: the client a list is narrowed to (none when absent or unknown)."""
    client_id = params.id_arg("client")
    return db.session().get(Client, client_id) if client_id else None


def render_pick_client(title: str, target: str) -> str:
    """The "which client?" step before a form that belongs to one client; ``target`` is that form's endpoint."""
    q = request.args.get("q", "").strip()
    return render_template("admin/pick_client.html", clients=reports.find_clients(db.session(), q), q=q,
                           title=title, target=target)


def pdf_available() -> bool:
    return importlib.util.find_spec(PDF_MODULE) is not None


def pdf_documents() -> ModuleType:
    """The PDF documents module; 404 where it is not installed."""
    if not pdf_available():
        raise NotFound()
    return importlib.import_module(PDF_MODULE)


def send_pdf(pdf: bytes, filename: str) -> Response:
    return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=filename)
