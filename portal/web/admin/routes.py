from flask import Blueprint

from portal.web.auth.identity import staff_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@staff_required
def dashboard():
    return "admin dashboard (to be built)"


@bp.get("/logo")
def logo():
    return ""
