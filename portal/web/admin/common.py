"""Helpers shared by the admin views: loading a record or 404, paging arguments, the signed-in staff user."""

from __future__ import annotations

from typing import TypeVar

from flask import request
from flask_login import current_user

from portal import db
from portal.domain.money import format_money
from portal.models import StaffUser
from portal.services.errors import NotFound
from portal.services.settings import get_settings

T = TypeVar("T")
PAGE_SIZE = 25
PDF_MODULE = "portal.services.documents"  # PDFs are built separately; links appear only when it is installed


def get_or_404(model: type[T], record_id: int) -> T:
    record = db.session().get(model, record_id)
    if record is None:
        raise NotFound()
    return record


def page_arg() -> int:
    return max(1, request.args.get("page", 1, type=int) or 1)


def current_staff() -> StaffUser:
    return current_user.record


def money_text(cents: int, currency: str | None = None) -> str:
    """An amount for a flash message (templates use the ``money`` filter)."""
    return format_money(cents, currency or get_settings(db.session()).currency)
