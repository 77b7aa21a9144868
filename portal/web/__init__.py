"""HTTP entry points. Each blueprint is a package with routes.py (+ forms.py); this list registers them."""

from importlib import import_module

from flask import Flask
from werkzeug.routing import IntegerConverter

from . import params

BLUEPRINTS = (
    "portal.web.health",
    "portal.web.auth.routes",
    "portal.web.admin.routes",
    "portal.web.client.routes",
    "portal.web.links.routes",
    "portal.web.payments.routes",
    "portal.web.agreements.routes",
    "portal.web.autopay.routes",
    "portal.web.admin.collections",
    "portal.web.collections.routes",
    "portal.web.api.routes",
    "portal.web.admin.api_access",
    "portal.web.admin.standing",
    "portal.web.plans.routes",
    "portal.web.plan_offers.routes",
    "portal.web.enforcement.routes",
    "portal.web.admin.enforcement",
    "portal.web.orders.routes",
    "portal.web.admin.equipment",
)


class RecordId(IntegerConverter):
    """`<int:...>` in every route: ids beyond a 32-bit key are simply not found (404), never a database error."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", params.MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def register_blueprints(app: Flask) -> None:
    app.url_map.converters["int"] = RecordId
    params.init_app(app)
    for path in BLUEPRINTS:
        app.register_blueprint(import_module(path).bp)
