from flask import Blueprint

from portal.web.auth.identity import contact_required

bp = Blueprint("client", __name__)


@bp.get("/")
@contact_required
def dashboard():
    return "client dashboard (to be built)"
