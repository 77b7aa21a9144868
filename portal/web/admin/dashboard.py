"""The staff home page: what is owed, how late, and by whom."""

from flask import render_template

from portal import db
from portal.clock import today
from portal.domain.aging import BUCKETS
from portal.services import ledger, reports
from portal.web.auth.identity import staff_required

from .routes import bp


@bp.get("/")
@staff_required
def dashboard():
    session, on = db.session(), today()
    return render_template(
        "admin/dashboard.html",
        aging=ledger.receivables(session, on),
        buckets=BUCKETS,
        top_owing=reports.top_clients(session, on, by="balance"),
        top_overdue=reports.top_clients(session, on, by="overdue"),
    )
