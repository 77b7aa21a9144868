"""The staff admin area. ``bp`` lives here; each area's views are a small module that registers on it."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Imported for their side effect: each module adds its views to ``bp``.
from . import autopay, clients, dashboard, invoices, online_payments, outbox, payments, runs, settings  # noqa: E402, F401
