"""Refuse what real Stripe refuses: request parameters checked against the SDK's own parameter types.

The ``stripe`` SDK ships a TypedDict per endpoint (``stripe.params.PaymentIntentCreateParams`` ...) generated
from Stripe's OpenAPI spec for the pinned API version. The fake finds the TypedDict for each endpoint it serves
the way the SDK's own services declare it (:func:`sdk_params_class`), so no endpoint can be served without its
parameters being checked, and answers what the types do not allow with Stripe's 400 shapes:
``parameter_unknown``, ``parameter_missing``, ``parameter_invalid_integer``, ``parameter_invalid_empty``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import stripe
import typing_extensions
from stripe._request_options import RequestOptions
from stripe._stripe_object import UntypedStripeObject

from .ledger import ApiError, invalid

#: Parameters the pinned version (``2026-10-28.endive``) removed, per params class, and the error Stripe
#: documents for them (changelog 2026-09-30.endive: "Removes the payment method types parameter from Payment
#: Intents and Setup Intents"). They are not in the SDK's types either, but Stripe answers them with a more
#: specific code than ``parameter_unknown``.
REMOVED_PARAMETERS: dict[str, dict[str, str]] = {
    name: {"payment_method_types": "payment_method_types_no_longer_supported"}
    for name in (
        "PaymentIntentCreateParams",
        "PaymentIntentUpdateParams",
        "PaymentIntentConfirmParams",
        "SetupIntentCreateParams",
        "SetupIntentUpdateParams",
    )
}

_SDK_DIR = Path(stripe.__file__).parent
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


@functools.cache
def sdk_params_class(method: str, path_template: str) -> type:
    """The params TypedDict the SDK's service declares for ``method path_template``.

    ``path_template`` is spelled as in the SDK, e.g. ``/v1/payment_intents/{intent}/cancel``. Raises LookupError
    when the SDK has no such endpoint: then real Stripe has none either.
    """
    literal = f'"{path_template}"'
    for source_path in sorted(_SDK_DIR.rglob("_*_service.py")):
        source = source_path.read_text(encoding="utf-8")
        if literal not in source:
            continue
        found = _params_in_service(ast.parse(source), method.lower(), path_template)
        if found is not None:
            module_name, class_name = found
            return typing.cast(type, getattr(importlib.import_module(module_name), class_name))
    raise LookupError(f"the stripe SDK has no endpoint {method} {path_template}")


def _params_in_service(tree: ast.Module, method: str, path_template: str) -> tuple[str, str] | None:
    imports = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for call in ast.walk(function):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr != "_request" or len(call.args) < 2:
                continue
            verb, url = call.args[0], call.args[1]
            if isinstance(url, ast.Call) and isinstance(url.func, ast.Attribute):  # "...{id}".format(id=...)
                url = url.func.value
            if not (isinstance(verb, ast.Constant) and isinstance(url, ast.Constant)):
                continue
            if (verb.value, url.value) != (method, path_template):
                continue
            annotation = next((a.annotation for a in function.args.args if a.arg == "params"), None)
            name = _annotation_name(annotation)
            if name is not None and name in imports:
                return imports[name], name
    return None


def _annotation_name(annotation: ast.expr | None) -> str | None:
    """``"XParams"`` or ``Optional["XParams"]`` -> ``XParams``."""
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.slice
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value
    return None


@functools.cache
def _fields(params_class: type) -> tuple[dict[str, Any], frozenset[str]]:
    """The resolved field types and the required keys of a params TypedDict.

    A top-level params class also inherits the SDK's per-request options (``api_key``, ``idempotency_key``...),
    which travel as headers, never as form fields, so they are left out.
    """
    is_top_level = RequestOptions in getattr(params_class, "__orig_bases__", ())
    skipped = set(RequestOptions.__annotations__) if is_top_level else set()
    annotations = {k: v for k, v in params_class.__annotations__.items() if k not in skipped}
    holder = type("Fields", (), {"__annotations__": annotations, "__module__": params_class.__module__})
    hints = typing.get_type_hints(holder)
    return hints, frozenset(params_class.__required_keys__) - skipped  # type: ignore[attr-defined]


def validate(params_class: type, params: dict[str, Any]) -> None:
    """Raise Stripe's 400 for the first parameter the SDK's types do not allow."""
    removed = REMOVED_PARAMETERS.get(params_class.__name__, {})
    for name, code in removed.items():
        if name in params:
            raise invalid(
                f"The parameter `{name}` is no longer supported on API version {stripe.api_version}. "
                "Use `allowed_payment_method_types` or `excluded_payment_method_types` instead.",
                param=name,
                code=code,
            )
    _check_object(params_class, params, prefix="")


def _check_object(params_class: type, value: dict[str, Any], *, prefix: str) -> None:
    hints, required = _fields(params_class)
    for key in value:
        if key not in hints:
            param = _param(prefix, key)
            raise invalid(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")
    for key in sorted(required - set(value)):
        param = _param(prefix, key)
        raise invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")
    for key, item in value.items():
        _check(hints[key], item, _param(prefix, key))


def _param(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _members(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)


def _check(tp: Any, value: Any, param: str) -> None:
    """Check one form value (a str, a list or a dict after decoding) against its declared type."""
    members = _members(tp)
    if Any in members:
        return
    if isinstance(value, str):
        _check_scalar(members, value, param)
        return
    containers = [m for m in members if not _is_scalar(m)]
    if not containers:
        raise invalid(f"Invalid {_scalar_word(members)}: {param} must be a single value", param=param)
    errors: list[ApiError] = []
    for member in containers:
        try:
            _check_container(member, value, param)
            return
        except ApiError as exc:
            errors.append(exc)
    raise errors[0]


def _is_scalar(tp: Any) -> bool:
    return tp in (str, int, bool, float, Any) or typing.get_origin(tp) is Literal


def _scalar_word(members: tuple[Any, ...]) -> str:
    for tp, word in ((int, "integer"), (bool, "boolean"), (float, "decimal")):
        if tp in members:
            return word
    return "string"


def _check_scalar(members: tuple[Any, ...], value: str, param: str) -> None:
    literals = {v for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)}
    if value == "":
        if "" in literals:
            return  # an "emptyable" parameter: "" unsets it
        raise invalid(
            f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a "
            f"parameter; however '{param}' cannot be unset. You should remove '{param}' from your request or "
            "supply a non-empty value.",
            param=param,
            code="parameter_invalid_empty",
        )
    if str in members or value in literals:
        return
    if int in members and _INTEGER.fullmatch(value):
        return
    if bool in members and value in ("true", "false"):
        return
    if float in members and _DECIMAL.fullmatch(value):
        return
    if int in members:
        raise invalid(f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")
    if bool in members:
        raise invalid(f"Invalid boolean: {value}", param=param)
    if float in members:
        raise invalid(f"Invalid decimal: {value}", param=param)
    if literals:
        choices = ", ".join(sorted(str(v) for v in literals if v != ""))
        raise invalid(f"Invalid {param}: must be one of {choices}", param=param)
    kind = "array" if any(typing.get_origin(m) is list for m in members) else "hash"
    raise invalid(f"Invalid {kind}: {param}", param=param)


def _check_container(tp: Any, value: Any, param: str) -> None:
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            raise invalid(f"Invalid array: {param}", param=param)
        (item_type,) = typing.get_args(tp)
        for index, item in enumerate(value):
            _check(item_type, item, f"{param}[{index}]")
        return
    if origin is dict or tp is dict or origin is UntypedStripeObject:
        items = dict(enumerate(value)) if isinstance(value, list) else value  # metadata[0]=... decodes as a list
        if not isinstance(items, dict):
            raise invalid(f"Invalid hash: {param}", param=param)
        value_type = typing.get_args(tp)[-1] if typing.get_args(tp) else Any
        for key, item in items.items():
            _check(value_type, item, f"{param}[{key}]")
        return
    if typing_extensions.is_typeddict(tp):
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash: {param}", param=param)
        _check_object(tp, value, prefix=param)
        return
    raise TypeError(f"the fake cannot check {param} against {tp!r}; teach params.py this type")
