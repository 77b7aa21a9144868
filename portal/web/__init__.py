"""HTTP entry points. Each blueprint is a package with routes.py (+ forms.py); this list registers them."""

from importlib import import_module

from flask import Flask

BLUEPRINTS = (
    "portal.web.health",
    "portal.web.auth.routes",
    "portal.web.admin.routes",
    "portal.web.client.routes",
)


def register_blueprints(app: Flask) -> None:
    for path in BLUEPRINTS:
        app.register_blueprint(import_module(path).bp)
