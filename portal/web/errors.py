"""Error pages: a clear message, never a stack trace or a hint that a foreign record exists."""

from contextlib import suppress

from flask import Flask, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from portal.services.errors import NotFound
from portal.web.params import UnstorableText

MESSAGES = {
    400: "The request could not be understood.",
    403: "You do not have access to this page.",
    404: "We could not find that page.",
    405: "That action is not allowed here.",
    413: "That file is too large.",
    429: "Too many attempts. Please wait a few minutes and try again.",
    500: "Something went wrong on our side. Please try again.",
}


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/webhooks/")) or request.accept_mimetypes.best == "application/json"


def _drop_request_session() -> None:
    """A failed statement leaves the request's session unusable (on PostgreSQL the whole transaction is aborted),
    and the error page reads the MSP's settings: it gets a fresh session instead of failing a second time."""
    broken = g.pop("db_session", None)
    if broken is not None:
        with suppress(SQLAlchemyError):  # a dead connection cannot roll back; the pool discards it anyway
            broken.close()


def render_error(code: int, message: str | None = None):
    message = message or MESSAGES.get(code, "Error")
    if code >= 500:
        _drop_request_session()
    if _wants_json():
        return jsonify(error=message), code
    return render_template("errors/error.html", code=code, message=message), code


def init_app(app: Flask) -> None:
    @app.errorhandler(NotFound)
    def _not_found(_e):
        return render_error(404)

    @app.errorhandler(CSRFError)
    def _csrf(_e):
        return render_error(400, "Your form expired or was sent from elsewhere. Go back, reload and try again.")

    @app.errorhandler(UnstorableText)
    def _unstorable(e: UnstorableText):
        return render_error(400, e.description)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        return render_error(e.code or 500, MESSAGES.get(e.code or 500))
