"""Layering and time rules, checked on the source: the domain is pure standard library; services, gateways, models
and domain never import Flask (what they need from the web is handed to them: portal/services/runtime.py);
gateways never import services; the web layer reaches the database only through services (the health check is the
one exception); and only portal/clock.py reads the wall clock (everything else asks portal.clock, so tests and
`run-due` control "now")."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PORTAL = Path(__file__).resolve().parents[2] / "portal"
DOMAIN = PORTAL / "domain"
CLOCK_READS = {"now", "utcnow", "today"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PORTAL.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module an import statement names, relative imports resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from portal import db` names the module portal.db, not just the package portal
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if target == "portal"]
        elif isinstance(node, ast.Call) and _called_name(node) in {"import_module", "__import__"}:
            found.append((node.lineno, "<dynamic import>"))
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def domain_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports that are neither the standard library nor portal.domain itself."""
    bad = []
    for line, name in imported_modules(ast.parse(source), module, is_package):
        top = name.split(".")[0]
        inside_domain = name == "portal.domain" or name.startswith("portal.domain.")
        if inside_domain or (top in sys.stdlib_module_names and top != "portal"):
            continue
        bad.append(f"{module}:{line} imports {name}")
    return bad


FLASK_FREE = ("domain", "models", "services", "gateways")  # packages under portal/ that must not import Flask
WEB_DATABASE_DOOR = "portal/web/health.py"  # SELECT 1: the only web module that talks to the database itself


def _top(name: str) -> str:
    return name.split(".")[0]


def flask_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of Flask or a Flask extension (flask_login, flask_wtf ...), and dynamic imports (which could be)."""
    return [f"{module}:{line} imports {name}" for line, name in imported_modules(ast.parse(source), module, is_package)
            if _top(name) == "flask" or _top(name).startswith("flask_") or name == "<dynamic import>"]


def gateway_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Gateways adapt the outside world; the use cases (services) build on them, never the other way round."""
    return [f"{module}:{line} imports {name}" for line, name in imported_modules(ast.parse(source), module, is_package)
            if name == "portal.services" or name.startswith("portal.services.")]


def sqlalchemy_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    return [f"{module}:{line} imports {name}" for line, name in imported_modules(ast.parse(source), module, is_package)
            if _top(name) == "sqlalchemy"]


def _check(folder: Path, rule, skip: tuple[Path, ...] = ()) -> list[str]:
    files = [p for p in sources(folder) if p not in skip]
    assert files, f"{folder} moved: update this test"
    return [v for path in files for v in rule(path.read_text(), module_name(path), path.name == "__init__.py")]


def clock_violations(source: str, where: str) -> list[str]:
    """References to datetime.now / utcnow / today and date.today, however datetime was imported. A reference
    without a call counts too: `default=datetime.utcnow` is the classic frozen-timestamp bug."""
    tree = ast.parse(source)
    modules, classes = set(), set()  # local names bound to the datetime module / its datetime and date classes
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "datetime"}
        elif isinstance(node, ast.ImportFrom) and node.module == "datetime" and not node.level:
            classes |= {a.asname or a.name for a in node.names if a.name in {"datetime", "date"}}

    def is_clock_class(expr: ast.expr) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in classes
        return (isinstance(expr, ast.Attribute) and expr.attr in {"datetime", "date"}
                and isinstance(expr.value, ast.Name) and expr.value.id in modules)

    return [f"{where}:{node.lineno} reads the wall clock ({ast.unparse(node)})" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in CLOCK_READS and is_clock_class(node.value)]


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_domain_imports_only_the_standard_library_and_itself():
    files = sources(DOMAIN)
    assert len(files) > 3, "the domain package moved: update this test"
    problems = [v for path in files
                for v in domain_violations(path.read_text(), module_name(path), path.name == "__init__.py")]
    assert problems == []


@pytest.mark.parametrize("package", FLASK_FREE)
def test_only_the_web_layer_imports_flask(package):
    assert _check(PORTAL / package, flask_violations) == []


def test_gateways_do_not_import_services():
    assert _check(PORTAL / "gateways", gateway_violations) == []


def test_the_web_layer_reaches_the_database_only_through_services():
    health = PORTAL.parent / WEB_DATABASE_DOOR
    assert health.exists(), "the health check moved: update this test"
    assert _check(PORTAL / "web", sqlalchemy_violations, skip=(health,)) == []


def test_only_the_clock_module_reads_the_wall_clock():
    files = [p for p in sources(PORTAL) if p != PORTAL / "clock.py"]
    problems = [v for path in files for v in clock_violations(path.read_text(), str(path.relative_to(PORTAL.parent)))]
    assert problems == []


def test_the_clock_module_is_the_one_place_that_does():
    assert clock_violations((PORTAL / "clock.py").read_text(), "clock.py"), "the checker no longer sees clock.py"


# The checkers themselves: each rule must be able to fail.
@pytest.mark.parametrize("source", [
    "import flask", "from sqlalchemy.orm import Session", "import stripe", "from werkzeug import security",
    "import itsdangerous", "from portal import db", "from portal.services import billing", "from .. import clock",
    "from ..models import Invoice", "import portal.gateways.email", "importlib.import_module('flask')",
    "import flask_login",
])
def test_the_domain_rule_catches(source):
    assert domain_violations(source, "portal.domain.invoices")


@pytest.mark.parametrize("source", [
    "import flask", "from flask import current_app", "from flask import Response, url_for",
    "from flask_login import current_user", "import flask_wtf", "from flask.cli import with_appcontext",
    "def f():\n    from flask import has_request_context", "importlib.import_module('flask')",
])
def test_the_flask_rule_catches(source):
    # a dynamic import counts too: the checker cannot tell what it loads
    assert flask_violations(source, "portal.services.sign_in")


@pytest.mark.parametrize("source", [
    "from sqlalchemy.orm import Session", "from werkzeug.security import check_password_hash", "import itsdangerous",
    "from portal.services.runtime import Runtime", "from portal.gateways.email import Mailer",
])
def test_the_flask_rule_allows(source):
    assert flask_violations(source, "portal.services.sign_in") == []


@pytest.mark.parametrize("source", [
    "from portal.services.settings import get_settings", "import portal.services", "from portal import services",
    "from ... import services", "from ...services.settings import get_settings",
    "def f():\n    from portal.services.settings import get_settings",
])
def test_the_gateway_rule_catches(source):
    assert gateway_violations(source, "portal.gateways.payments.stripe_gateway")


@pytest.mark.parametrize("source", [
    "from portal.clock import now", "from .base import PaymentGateway", "from portal.domain.money import Money",
    "import stripe",
])
def test_the_gateway_rule_allows(source):
    assert gateway_violations(source, "portal.gateways.payments.stripe_gateway") == []


@pytest.mark.parametrize("source", [
    "from sqlalchemy import select", "import sqlalchemy", "from sqlalchemy.orm import Session",
    "from sqlalchemy.exc import SQLAlchemyError", "def f():\n    from sqlalchemy import func",
])
def test_the_web_database_rule_catches(source):
    assert sqlalchemy_violations(source, "portal.web.client.routes")


@pytest.mark.parametrize("source", ["from portal import db", "from portal.services import ledger", "import flask"])
def test_the_web_database_rule_allows(source):
    assert sqlalchemy_violations(source, "portal.web.client.routes") == []


@pytest.mark.parametrize("source", [
    "from __future__ import annotations", "import datetime", "from decimal import Decimal, ROUND_HALF_UP",
    "from dataclasses import dataclass", "from .money import Money", "from . import money",
    "from portal.domain.errors import DomainError", "import portal.domain.money",
])
def test_the_domain_rule_allows(source):
    assert domain_violations(source, "portal.domain.invoices") == []


@pytest.mark.parametrize("source", [
    "from datetime import datetime\nx = datetime.now()",
    "from datetime import datetime, UTC\nx = datetime.now(UTC)",
    "from datetime import date\nx = date.today()",
    "from datetime import datetime as dt\nx = dt.utcnow()",
    "import datetime\nx = datetime.datetime.now()",
    "import datetime as d\nx = d.date.today()",
    "from datetime import datetime\ncolumn = dict(default=datetime.utcnow)",
    "from datetime import datetime\nx = datetime.today()",
])
def test_the_clock_rule_catches(source):
    assert clock_violations(source, "x.py")


@pytest.mark.parametrize("source", [
    "from portal import clock\nx = clock.now()",
    "from portal.clock import now, today\nx = now(); y = today()",
    "from datetime import datetime\nx = datetime(2026, 3, 16).date()",
    "from sqlalchemy import func\nx = func.now()",
])
def test_the_clock_rule_allows(source):
    assert clock_violations(source, "x.py") == []
