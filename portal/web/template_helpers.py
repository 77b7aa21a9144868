"""Jinja filters and globals shared by every template (money, dates, the MSP's name, sandbox banner)."""

from datetime import date, datetime
from functools import lru_cache

from flask import Flask, current_app, url_for
from markupsafe import Markup, escape

from portal import db
from portal.domain import terms as T
from portal.domain.money import format_money
from portal.services import ledger
from portal.services.settings import SettingsCache
from portal.web.frame import frame_url, navigation
from portal.web.params import MAX_ID


def _date(value: date | datetime | None, fmt: str = "%b %-d, %Y") -> str:
    if type(value) is date:  # a list prints the same few dates over and over: strftime was 3% of a list page
        return _formatted(value, fmt)
    return value.strftime(fmt) if value else ""


@lru_cache(maxsize=4096)
def _formatted(day: date, fmt: str) -> str:
    return day.strftime(fmt)


def _datetime(value: datetime | None) -> str:
    return value.strftime("%b %-d, %Y %H:%M UTC") if value else ""


def _invoice_adjustments(invoice) -> list[ledger.AdjustmentLine]:
    """What the ledger took off an invoice without money moving: the invoice shows each as its own line, apart
    from what was paid."""
    return ledger.adjustments_on(db.session(), invoice.id)


class RecordLinks:
    """``url_for(endpoint, **{key: id})`` for every row of a list, as ``links[id]``: the route is built once, for a
    marker id, and each row's id takes the marker's place (a url_for per row was ~7% of a list page; a subscript,
    not a call, as Jinja's call of a template global costs more than the link itself). Ids print as their digits
    in every route (``RecordId``), so each link is exactly what url_for gives."""

    __slots__ = ("_head", "_tail")

    def __init__(self, endpoint: str, key: str):
        # one id in a route: exactly two parts
        self._head, self._tail = url_for(endpoint, **{key: MAX_ID}).split(str(MAX_ID))

    def __getitem__(self, record_id: int) -> str:
        return f"{self._head}{int(record_id)}{self._tail}"


def _badge(status: str) -> Markup:
    """A status as the staff pages show it: "partially_paid" -> "Partially paid", styled by its class. A filter, not
    a macro or a global, as a list draws it once a row (the macro's calls were 1.8% of /admin/invoices' instructions,
    and Jinja calls a global through more of its own code than a filter)."""
    status = str(status)
    # both parts escaped here (Markup.format would too, but its formatter is Python code and cost more than the
    # macro did)
    return Markup(f'<span class="badge badge-{escape(status.replace(" ", "-"))}">'  # noqa: S704 (escaped)
                  f'{escape(status.replace("_", " ").capitalize())}</span>')


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = lambda cents, currency="USD": format_money(int(cents or 0), currency)
    app.jinja_env.filters["date"] = _date
    app.jinja_env.filters["datetime"] = _datetime
    # every document kind the MSP edits and publishes (the agreements pages' tabs)
    app.jinja_env.globals["invoice_adjustments"] = _invoice_adjustments  # a global: imported macros see it too
    app.jinja_env.globals["record_links"] = RecordLinks
    app.jinja_env.globals["frame_url"] = frame_url  # the frame's fixed links (base.html, the navigation)
    app.jinja_env.globals["navigation"] = navigation
    app.jinja_env.filters["badge"] = _badge  # the staff pages' status badge (agreements/_macros.html has its own)
    app.jinja_env.globals["document_templates"] = [(kind, T.TEMPLATE_TITLES[kind]) for kind in T.TEMPLATE_KINDS]
    settings = app.extensions["settings_cache"] = SettingsCache(app.config["SETTINGS_CACHE_SECONDS"])

    @app.context_processor
    def _globals():
        return {
            "msp": settings.get(db.session()),
            "sandbox_payments": not current_app.config.get("STRIPE_SECRET_KEY"),
            "demo_mode": current_app.config["ENV"] == "demo",
        }
