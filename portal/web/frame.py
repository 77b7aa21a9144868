"""The frame every page is drawn in (templates/base.html): the main navigation of the staff pages and of the client
portal, and its other fixed links (stylesheet, scripts, sign-out).

Their URLs name no record, so each is the same on every view but for where the portal is mounted (the request's
script root): they are built once per script root instead of by url_for on every view, where the frame's twenty-odd
calls were ~5% of a staff page's Python instructions (bench/README.md)."""

from __future__ import annotations

from functools import lru_cache

from flask import request, url_for

# Each link: its endpoint, its label, and the endpoints it is the current section for (prefixes of their names).
STAFF = (
    ("admin.dashboard", "Dashboard", ("admin.dashboard",)),
    ("admin.receivables", "Aging", ("admin.receivables",)),
    ("admin.clients", "Clients", ("admin.client", "admin.contact")),
    ("admin.invoices", "Invoices", ("admin.invoice",)),
    ("admin.payments", "Payments", ("admin.payment",)),
    ("admin.autopay", "Autopay", ("admin.autopay",)),  # a client's own autopay page is under Clients
    ("plans.admin_list", "Plans", ("plans.admin", "plan_offers.admin")),
    ("admin.late_fee_list", "Fees & duplicates", ("admin.late_fee", "admin.duplicate")),
    ("collections_admin.call_list", "Collections", ("collections_admin.",)),
    ("equipment_admin.order_list", "Orders", ("equipment_admin.",)),
    ("admin.runs", "Run log", ("admin.run",)),
    ("agreements.admin_overview", "Agreements", ("agreements.admin",)),
    ("api_admin.index", "API", ("api_admin.",)),
    ("admin.outbox", "Outbox", ("admin.outbox",)),
    ("admin.settings", "Settings", ("admin.settings",)),
)

CLIENT = (
    ("client.dashboard", "Overview", ("client.dashboard",)),
    ("client.invoices", "Invoices", ("client.invoice",)),
    ("client.payments", "Payments", ("client.payment",)),
    ("collections.mine", "Reminders", ("collections.",)),
    ("orders.mine", "Orders", ("orders.",)),
    ("client.statement", "Statement", ("client.statement",)),
    ("autopay.methods", "Autopay", ("autopay.",)),
    ("agreements.mine", "Agreements", ("agreements.",)),
    ("client.password", "Password", ("client.password",)),
)

_SIDES = {"staff": STAFF, "client": CLIENT}


def navigation(side: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(href, label, the endpoints it is current for) of each link of ``side`` ("staff" or "client")."""
    return _links(request.script_root, side)


def frame_url(endpoint: str, **values: str) -> str:
    """``url_for`` for a fixed link of the frame (the stylesheet, the sign-out form's action)."""
    return _url(request.script_root, endpoint, tuple(values.items()))


# Bounded: the script root comes with the request (from the server or proxy that mounts the portal).
@lru_cache(maxsize=256)
def _links(script_root: str, side: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    return tuple((_url(script_root, endpoint, ()), label, current) for endpoint, label, current in _SIDES[side])


@lru_cache(maxsize=1024)
def _url(script_root: str, endpoint: str, values: tuple) -> str:
    return url_for(endpoint, **dict(values))  # url_for puts the request's script root, the key's, in front
