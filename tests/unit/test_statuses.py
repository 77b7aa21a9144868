"""Statuses are named, never spelled: outside portal/domain every status is one of the domain's StrEnum members, so
a typo ("succeeded") is an AttributeError at import time instead of a query that silently matches nothing.

The check reads the source with ast and flags a string literal equal to a status value wherever it meets a status:
compared with or assigned to something named ``status`` / ``*_status``, inside ``.status.in_(...)``, passed as a
``status=`` keyword, a ``status`` parameter's default, a ``*_STATUSES`` collection, or a model column's
``default=``. The payment gateway's own vocabulary is left out: portal/gateways and the ``status=`` of a gateway
result (``ChargeResult(status="failed")``) speak Stripe's PaymentIntent and Refund words, typed there as Literals,
which domain.payments translates into ours."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from enum import StrEnum
from pathlib import Path

import pytest

import portal.domain
from portal.domain.evidence import AgreementStatus
from portal.domain.invoices import InvoiceStatus
from portal.domain.links import DeliveryStatus
from portal.domain.terms import TermsStanding

PORTAL = Path(__file__).resolve().parents[2] / "portal"
SKIPPED = (PORTAL / "domain", PORTAL / "gateways")


def status_enums() -> list[type[StrEnum]]:
    """Every status set the domain names: its StrEnums called *Status, and the terms standing. Found, not listed,
    so a new set (an autopay status, say) is covered the day it is added."""
    found = {TermsStanding}
    for info in pkgutil.iter_modules(portal.domain.__path__):
        module = importlib.import_module(f"portal.domain.{info.name}")
        found |= {value for name, value in vars(module).items() if name.endswith("Status")
                  and isinstance(value, type) and issubclass(value, StrEnum) and value is not StrEnum}
    return sorted(found, key=lambda enum: enum.__name__)


STATUS_VALUES = frozenset(member.value for enum in status_enums() for member in enum)


def _is_status(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    name = name.lower()
    return name in {"status", "statuses"} or name.endswith(("_status", "_statuses"))


def _literals(node: ast.AST | None) -> list[ast.Constant]:
    """String constants that ARE the value (not ones buried in a call): plain, in a tuple/list/set, or either arm of
    a conditional expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [c for elt in node.elts for c in _literals(elt)]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return []


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _assigned(target: ast.AST, value: ast.AST) -> list[ast.Constant]:
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        return [c for t, v in zip(target.elts, value.elts, strict=True) for c in _assigned(t, v)]
    return _literals(value) if _is_status(target) else []


def _status_literals(tree: ast.AST) -> list[ast.Constant]:
    found: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_status(o) for o in operands):
                found += [c for o in operands for c in _literals(o)]
        elif isinstance(node, ast.Assign):
            found += [c for target in node.targets for c in _assigned(target, node.value)]
        elif isinstance(node, ast.AnnAssign) and node.value is not None and _is_status(node.target):
            found += _literals(node.value)
            if isinstance(node.value, ast.Call):  # status: Mapped[str] = mapped_column(..., default="open")
                found += [c for kw in node.value.keywords if kw.arg == "default" for c in _literals(kw.value)]
        elif isinstance(node, ast.arguments):  # def refund(..., status: str = "succeeded")
            positional = [*node.posonlyargs, *node.args]
            keyword_only = zip(node.kwonlyargs, node.kw_defaults, strict=True)
            pairs = [*zip(positional[len(positional) - len(node.defaults):], node.defaults, strict=True),
                     *((arg, default) for arg, default in keyword_only if default)]
            found += [c for arg, default in pairs if _is_status(ast.Name(arg.arg)) for c in _literals(default)]
        elif isinstance(node, ast.Call):
            if not _called(node).endswith("Result"):  # a gateway result: the gateway's words, see the docstring
                found += [c for kw in node.keywords if kw.arg and _is_status(ast.Name(kw.arg))
                          for c in _literals(kw.value)]
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"in_", "not_in"} and _is_status(func.value):
                found += [c for arg in node.args for c in _literals(arg)]
    return found


def spelled_statuses(source: str, filename: str = "<source>") -> list[str]:
    """Each status written as a bare string in ``source``, as "file:line 'value'"."""
    return sorted({f"{filename}:{c.lineno} {c.value!r}" for c in _status_literals(ast.parse(source))
                   if c.value in STATUS_VALUES})


def test_no_status_is_spelled_as_a_string_outside_the_domain():
    offenders = []
    for path in sorted(PORTAL.rglob("*.py")):
        if any(path.is_relative_to(skipped) for skipped in SKIPPED):
            continue
        offenders += spelled_statuses(path.read_text(), str(path.relative_to(PORTAL.parent)))
    assert offenders == [], "use the domain's status enums:\n" + "\n".join(offenders)


@pytest.mark.parametrize("snippet", [
    "if invoice.status == 'open': pass",
    "if 'paid' != request.status: pass",
    "ok = row.status in ('pending', 'succeeded')",
    "agreement.status = 'signed'",
    "agreement.status, agreement.open_key = 'void', None",
    "q = select(Agreement).where(Agreement.status.in_(('signed', 'declined')))",
    "q = select(Invoice).where(Invoice.status != 'draft')",
    "row = Refund(amount_cents=1, status='succeeded')",
    "status = 'pending' if late else 'succeeded'",
    "ledger_status = 'succeeded'",
    "class Invoice:\n    status: Mapped[str] = mapped_column(String(10), default='draft')",
    "def refund(payment, *, status='succeeded'): pass",
    "def refund(payment, status='succeeded'): pass",
    "LIVE_REFUND_STATUSES = ('requested', 'nothing')",
])
def test_the_check_finds_a_spelled_status(snippet):
    assert spelled_statuses(snippet)


@pytest.mark.parametrize("snippet", [
    "if invoice.status == InvoiceStatus.OPEN: pass",
    "agreement.status = AgreementStatus.SIGNED",
    "q = Agreement.status.in_((AgreementStatus.SIGNED, AgreementStatus.DECLINED))",
    "return jsonify(status='ok')",  # not a status of ours
    "if filter == 'overdue': pass",  # a list filter, not a stored status
    "label = {'paid': 'Paid'}",  # words outside a status context are free text
    "flash('The invoice is paid.')",
    "result = ChargeResult(status='failed', gateway_id=None)",  # the gateway's vocabulary
    "def refund(payment, reason='paid'): pass",
])
def test_the_check_leaves_named_statuses_and_other_strings_alone(snippet):
    assert spelled_statuses(snippet) == []


def test_the_status_sets_are_found():
    names = {enum.__name__ for enum in status_enums()}
    assert {"InvoiceStatus", "PaymentStatus", "RefundStatus", "AttemptStatus", "GatewayRefundStatus",
            "PaymentRequestStatus", "DisputeStatus", "AgreementStatus", "DeliveryStatus", "ClientStatus",
            "TermsStanding"} <= names


def test_every_status_value_still_matches_what_the_database_holds():
    # StrEnum members equal today's stored strings, so no migration and templates comparing strings keep working.
    assert InvoiceStatus.OPEN == "open" and f"{InvoiceStatus.PAID}" == "paid"
    assert AgreementStatus.VOID == "void" and DeliveryStatus.ACCEPTED == "accepted"
