from flask import Blueprint, jsonify
from sqlalchemy import text

from portal import db
from portal.extensions import csrf

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@csrf.exempt
def healthz():
    """For load balancers: the app answers and the database is reachable."""
    try:
        db.session().execute(text("SELECT 1"))
    except Exception:  # the probe must answer, not crash
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
