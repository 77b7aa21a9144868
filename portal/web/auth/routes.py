from flask import Blueprint, redirect, url_for
from flask_login import logout_user

bp = Blueprint("auth", __name__)


@bp.get("/login")
def contact_login():
    return "contact sign-in (to be built)"


@bp.get("/admin/login")
def staff_login():
    return "staff sign-in (to be built)"


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("auth.contact_login"))
