"""Stripe's error shapes and object ids, shared by every part of the fake."""

from __future__ import annotations

import secrets
from typing import Any


class ApiError(Exception):
    """An error response: ``status`` and Stripe's ``{"error": {...}}`` payload."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param:
        error["param"] = param
    if code:
        error["code"] = code
    return ApiError(400, error)


def missing(kind: str, object_id: str, *, param: str = "id") -> ApiError:
    error = invalid(f"No such {kind}: '{object_id}'", param=param, code="resource_missing")
    error.status = 404 if param == "id" else 400
    return error


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
