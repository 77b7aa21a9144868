"""Who is signed in. Staff and client contacts share one session cookie but are different kinds of user.

The session id of a contact carries its ``session_epoch``; bumping the epoch signs it out everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from flask import Flask, abort, g, redirect, request, url_for
from flask_login import UserMixin, current_user

from portal import db
from portal.extensions import login_manager
from portal.models import Contact, StaffUser
from portal.services import sign_in, staff


@dataclass
class Identity(UserMixin):
    record: StaffUser | Contact
    # Read with the user's row, for the layout of every page (no statement of their own):
    terms_to_sign: int | None = None  # a contact's: the payment terms version its client still has to sign
    proposals_waiting: int = 0  # staff: client plan proposals waiting for an answer (plans.offers)

    @property
    def is_staff(self) -> bool:
        return isinstance(self.record, StaffUser)

    @property
    def is_contact(self) -> bool:
        return isinstance(self.record, Contact)

    @property
    def client_id(self) -> int | None:
        return self.record.client_id if self.is_contact else None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def email(self) -> str:
        return self.record.email

    def get_id(self) -> str:
        if self.is_staff:
            return f"staff:{self.record.id}"
        return f"contact:{self.record.id}:{self.record.session_epoch}"


def load_identity(user_id: str) -> Identity | None:
    kind, _, rest = user_id.partition(":")
    session = db.session()
    if kind == "staff" and rest.isdigit():
        found = staff.signed_in_staff(session, int(rest))
        return Identity(found[0], proposals_waiting=found[1]) if found else None
    if kind == "contact":
        contact_id, _, epoch = rest.partition(":")
        if not (contact_id.isdigit() and epoch.isdigit()):
            return None
        found = sign_in.signed_in_contact(session, int(contact_id), int(epoch))
        return Identity(*found) if found else None
    return None


def _here() -> str:
    """The current path and query for `next` (Flask's full_path ends in a bare '?' when there is no query)."""
    return request.full_path.rstrip("?")


def init_app(app: Flask) -> None:
    login_manager.user_loader(load_identity)
    login_manager.session_protection = "basic"

    @app.before_request
    def _identity_from_this_request():
        # Flask-Login caches the user on `g`. When one app context spans several requests (the test suite
        # pushes one per test), a cached user would leak from one browser's request into another's.
        g.pop("_login_user", None)

    @login_manager.unauthorized_handler
    def _unauthorized():
        if request.blueprint == "admin" or request.path.startswith("/admin/"):  # staff pages of other blueprints
            return redirect(url_for("auth.staff_login", next=_here()))
        return redirect(url_for("auth.contact_login", next=_here()))


def staff_required(view):
    """Staff only. Anonymous visitors are sent to the staff sign-in; contacts get 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_staff:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def contact_required(view):
    """Client contacts only. Staff use the admin area (and its client views) instead."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_contact:
            abort(403)
        return view(*args, **kwargs)

    return wrapper
