"""The agreements blueprint. ``bp`` lives here; the contact, staff and public views register on it from their
own modules. Also the hook that sends a contact to sign the payment terms when the client has not signed them.
"""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from flask import session as web_session
from flask_login import current_user

from portal import db
from portal.services import agreements

bp = Blueprint("agreements", __name__)

PROMPTED = "terms_prompted"  # the contact was sent to the terms once this session; after that, the banner is enough


@bp.before_app_request
def _send_contact_to_terms():
    """On the client dashboard only (never the signing pages, static files or sign-out), once per session:
    a contact whose client has not signed the current payment terms is taken to sign them."""
    if request.endpoint != "client.dashboard" or request.method != "GET" or web_session.get(PROMPTED):
        return None
    if not (current_user.is_authenticated and current_user.is_contact):
        return None
    if not agreements.needs_terms(db.session(), current_user.client_id):
        return None
    web_session[PROMPTED] = True
    return redirect(url_for("agreements.current_terms"))


# Imported for their side effect: each module adds its views to ``bp``.
from . import admin, signing, verify  # noqa: E402, F401
