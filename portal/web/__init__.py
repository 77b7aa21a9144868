"""HTTP entry points. Each blueprint is a package with routes.py (+ forms.py); this list registers them."""

from importlib import import_module

from flask import Flask
from werkzeug.routing import IntegerConverter, Rule

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


class LazyRule(Rule):
    """A route whose URL builder (werkzeug generates and compiles Python code for each route, twice) is made the
    first time ``url_for`` builds that route, not when the app is created. Most routes are never built by a given
    process, and building them all was 80% of ``create_app`` (~0.1 s, which the test suite pays ~2,000 times)."""

    def _compile_builder(self, append_unknown: bool = True):
        built = None

        def build(rule: Rule, **values):
            nonlocal built
            if built is None:
                built = Rule._compile_builder(rule, append_unknown).__get__(rule, None)
            return built(**values)

        return build


def register_blueprints(app: Flask) -> None:
    app.url_rule_class = LazyRule
    app.url_map.converters["int"] = RecordId
    params.init_app(app)
    for path in BLUEPRINTS:
        app.register_blueprint(import_module(path).bp)
