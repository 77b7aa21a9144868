"""The portal (wsgi.py) plus three stops along a client page's path, for bench/layers.py. Not part of the portal.

    /__layer/stack     the portal's request handling and nothing else (session cookie, limiter, headers)
    /__layer/sign-in   the same, past the signed-in contact check (Flask-Login loads the contact's row)
    /__layer/query     the same, past /invoices's own statement (client_portal.invoice_page), no HTML

Each answers a two-byte body, so the difference from one stop to the next is what that layer costs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import current_app  # noqa: E402

from portal.clock import today  # noqa: E402
from portal.services import client_portal  # noqa: E402
from portal.web.auth.identity import contact_required  # noqa: E402
from portal.web.client.routes import _scope  # noqa: E402
from wsgi import app  # noqa: E402


@app.get("/__layer/stack")
def stack() -> str:
    return "ok"


@app.get("/__layer/sign-in")
@contact_required
def sign_in() -> str:
    return "ok"


@app.get("/__layer/query")
@contact_required
def query() -> str:
    client_portal.invoice_page(_scope(), status="all", page=1, page_size=current_app.config["INVOICE_PAGE_SIZE"],
                               today=today())
    return "ok"
