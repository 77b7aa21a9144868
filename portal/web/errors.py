"""Error pages: a clear message, never a stack trace or a hint that a foreign record exists."""

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal import db
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


def render_error(code: int, message: str | None = None):
    message = message or MESSAGES.get(code, "Error")
    if code >= 500:
        db.discard_session()  # a failed statement may have left it unusable; the page reads settings
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
