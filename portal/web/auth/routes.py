"""Signing in and out: staff with email + password; contacts with an emailed one-time link or an optional password.

Failures never say which part was wrong or whether an address exists; every POST is rate-limited.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, after_this_request, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal import db
from portal.extensions import limiter
from portal.services import sign_in, staff
from portal.services.clients import normalize_email
from portal.services.sign_in import InvalidSignInLink, LinkEmail
from portal.web.runtime import runtime

from .forms import ContactPasswordLoginForm, LinkRequestForm, StaffLoginForm, UseLinkForm
from .identity import Identity

bp = Blueprint("auth", __name__)

BAD_CREDENTIALS = "That email and password do not match an account that can sign in."


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site: never another host (//evil.example, https://..., /\\evil.example)."""
    target = (target or "").strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(ch) < 32 for ch in target):  # browsers drop tabs/newlines, turning "/\t/evil" into "//evil"
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _start_session(identity: Identity) -> None:
    # A fresh session on every sign-in: nothing from before (another identity, old flashes) carries over.
    session.clear()
    login_user(identity)


def _password_key() -> str:
    """Rate-limit key for password guesses against one contact, whatever IP they come from."""
    return "contact-password:" + normalize_email(request.form.get("pw-email", ""))


@bp.route("/admin/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;50 per hour", methods=["POST"])
def staff_login():
    if current_user.is_authenticated and current_user.is_staff:
        return redirect(safe_next(request.args.get("next"), url_for("admin.dashboard")))
    form = StaffLoginForm()
    error = None
    if form.validate_on_submit():
        user = staff.authenticate_staff(db.session(), form.email.data, form.password.data)
        if user is not None:
            _start_session(Identity(user))
            return redirect(safe_next(request.args.get("next"), url_for("admin.dashboard")))
        error = BAD_CREDENTIALS
    return render_template("auth/staff_login.html", form=form, error=error)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("5 per 15 minutes", methods=["POST"])
def contact_login():
    if current_user.is_authenticated and current_user.is_contact:
        return redirect(safe_next(request.args.get("next"), url_for("client.dashboard")))
    form = LinkRequestForm()
    if form.validate_on_submit():
        email = sign_in.request_link(db.session(), runtime(), form.email.data, request.remote_addr or "",
                                     next_path=safe_next(request.args.get("next"), ""))
        if email is not None:
            _send_after_response(email)
        return redirect(url_for("auth.link_sent"))
    return _login_page(form, ContactPasswordLoginForm(prefix="pw", formdata=None))


def _send_after_response(email: LinkEmail) -> None:
    """Known and unknown addresses must answer equally fast, so the email leaves once the response has been sent
    (WSGI close), never while the visitor waits."""

    @after_this_request
    def _send_when_closed(response: Response) -> Response:
        response.call_on_close(email.send)
        return response


@bp.get("/login/sent")
def link_sent():
    return render_template("auth/link_sent.html")


@bp.post("/login/password")
@limiter.limit("10 per 15 minutes")
@limiter.limit("5 per 15 minutes", key_func=_password_key)
def contact_password_login():
    pw_form = ContactPasswordLoginForm(prefix="pw")
    error = None
    if pw_form.validate_on_submit():
        contact = sign_in.authenticate_contact(db.session(), pw_form.email.data, pw_form.password.data)
        if contact is not None:
            _start_session(Identity(contact))
            return redirect(safe_next(request.args.get("next"), url_for("client.dashboard")))
        error = BAD_CREDENTIALS
    return _login_page(LinkRequestForm(formdata=None), pw_form, password_error=error)


def _login_page(form: LinkRequestForm, pw_form: ContactPasswordLoginForm, password_error: str | None = None):
    show_password = bool(password_error or pw_form.errors)
    return render_template("auth/contact_login.html", form=form, pw_form=pw_form, password_error=password_error,
                           show_password=show_password, next=request.args.get("next", ""))


@bp.route("/login/link/<token>", methods=["GET", "POST"])
@limiter.limit("20 per 15 minutes", methods=["POST"])
def sign_in_link(token: str):
    """GET only shows a button, because mail scanners prefetch links; the POST uses the link up."""
    form = UseLinkForm()
    try:
        if form.validate_on_submit():
            contact = sign_in.consume(db.session(), runtime(), token)
            _start_session(Identity(contact))
            flash(f"Welcome, {contact.name}. You are signed in.", "success")
            return redirect(safe_next(request.args.get("next"), url_for("client.dashboard")))
        contact = sign_in.check(db.session(), runtime(), token)
    except InvalidSignInLink as e:
        return render_template("auth/link_invalid.html", message=str(e)), 400
    return render_template("auth/link_confirm.html", form=form, contact=contact)


@bp.post("/logout")
def logout():
    was_staff = current_user.is_authenticated and current_user.is_staff
    logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("auth.staff_login" if was_staff else "auth.contact_login"))
