"""The help-desk / PSA API: client standing as JSON, authenticated with an admin-issued bearer token.

Every answer is JSON, errors included (web/errors.py answers JSON for any 4xx under /api/). A missing, malformed,
unknown or revoked token gets the same 401, so a caller learns nothing about which tokens exist; an unknown
external id is 404 whatever the token may read. No cookies are involved, so CSRF does not apply (exempt).
Rate-limited per IP over the whole API. Documented in static/openapi.json, served at /api/v1/openapi.json.
"""

from __future__ import annotations

import base64
import binascii
import functools
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, request

from portal import db
from portal.clock import today
from portal.extensions import csrf, limiter
from portal.services import api_tokens, standing
from portal.services.settings import get_settings
from portal.services.standing import as_json
from portal.web import params

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
RATE_LIMIT = "120 per minute"


def _rate() -> str:
    return current_app.config.get("API_RATE_LIMIT") or RATE_LIMIT


_limited = limiter.shared_limit(_rate, scope="api")


def _error(status: int, message: str, **headers: str):
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response


def _unauthorized():
    return _error(401, "A valid API token is required (Authorization: Bearer <token>).",
                  **{"WWW-Authenticate": 'Bearer realm="portal-api"'})


def token_required(scope: api_tokens.Scope):
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            kind, _, secret = request.headers.get("Authorization", "").partition(" ")
            if kind.lower() != "bearer" or not secret.strip():
                return _unauthorized()
            token = api_tokens.authenticate(db.session(), secret.strip())
            if token is None:
                return _unauthorized()
            if not api_tokens.allows(token, scope):
                return _error(403, "This token is not allowed to do this.")
            g.api_token = token
            return view(*args, **kwargs)
        return wrapped
    return decorator


def _cursor_out(client_id: int | None) -> str | None:
    return base64.urlsafe_b64encode(f"c{client_id}".encode()).decode().rstrip("=") if client_id else None


def _cursor_in(raw: str) -> int | None:
    """The client id a cursor continues after; None when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if len(text) > 12 or not text.startswith("c") or not text[1:].isdigit():
        return None
    return params.parse_int(text[1:], minimum=0, maximum=params.MAX_ID)  # past any id: not one of ours


@bp.get("/clients/<external_id>/standing")
@_limited
@token_required(api_tokens.Scope.STANDING_READ)
def client_standing(external_id: str):
    session = db.session()
    view = standing.by_external_id(session, external_id, today())
    if view is None:
        return _error(404, "No client with this external id.")
    return jsonify(as_json(view, get_settings(session).currency))


@bp.get("/clients")
@_limited
@token_required(api_tokens.Scope.CLIENTS_LIST)
def clients():
    raw_limit, raw_cursor = request.args.get("limit", ""), request.args.get("cursor", "")
    if raw_limit and (not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT):
        return _error(400, f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    after_id = 0
    if raw_cursor:
        after_id = _cursor_in(raw_cursor)
        if after_id is None:
            return _error(400, "cursor is not valid: use next_cursor from the previous page.")
    session = db.session()
    views, next_id = standing.client_page(session, after_id=after_id, limit=int(raw_limit or DEFAULT_LIMIT),
                                          today=today())
    currency = get_settings(session).currency
    return jsonify(data=[as_json(v, currency) for v in views], next_cursor=_cursor_out(next_id),
                   has_more=next_id is not None)


@bp.get("/openapi.json")
@_limited
def openapi():
    path = Path(current_app.static_folder) / "openapi.json"
    return Response(path.read_bytes(), mimetype="application/json")
