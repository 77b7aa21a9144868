"""The staff admin area. ``bp`` lives here; each area's views are a small module that registers on it."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Imported for their side effect: each module adds its views to ``bp``.
from . import (  # noqa: E402, F401
    autopay,
    clients,
    dashboard,
    invoices,
    late_fees,
    online_payments,
    outbox,
    payments,
    receivables,
    runs,
    settings,
)
