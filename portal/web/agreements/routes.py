"""The agreements blueprint. ``bp`` lives here; the contact, staff and public views register on it from their
own modules. Also the hook that sends a contact to sign the payment terms when the client has not signed them.
"""

from __future__ import annotations

from flask import Blueprint, g, redirect, request, url_for
from flask import session as web_session
from flask_login import current_user

bp = Blueprint("agreements", __name__)

# The terms version the contact was last sent to sign in this session. Sent again only when a newer version is
# published: after that, the banner on every client page is enough (the contact may look around before signing).
PROMPTED = "terms_prompted"
# Pages of the client's own account. Never the signing pages themselves, static files, PDFs or sign-out.
_ACCOUNT_PAGES = ("client.dashboard", "client.invoices", "client.invoice", "client.payments", "client.payment",
                  "client.statement", "client.password", "payments.choose", "agreements.mine")


@bp.before_app_request
def _send_contact_to_terms():
    """On any page of the client's account: a contact whose client has not signed the current payment terms sees
    a banner, and the first page viewed after a version is published takes the contact to sign it."""
    if request.endpoint not in _ACCOUNT_PAGES or request.method != "GET":
        return None
    if not (current_user.is_authenticated and current_user.is_contact):
        return None
    version_id = current_user.terms_to_sign  # read with the contact's row (Identity)
    g.terms_to_sign = version_id
    if version_id is None or web_session.get(PROMPTED) == version_id:
        return None
    web_session[PROMPTED] = version_id
    return redirect(url_for("agreements.current_terms"))


@bp.app_context_processor
def _terms_banner():
    return {"terms_to_sign": g.get("terms_to_sign")}


# Imported for their side effect: each module adds its views to ``bp``.
from . import admin, signing, verify  # noqa: E402, F401
