"""The log of `portal run-due` runs: what each charged, what it skipped and why, what needs a person."""

from __future__ import annotations

from flask import render_template

from portal import db
from portal.services import due_log
from portal.services.errors import NotFound
from portal.web.auth.identity import staff_required

from .common import PAGE_SIZE, page_arg
from .routes import bp


@bp.get("/runs")
@staff_required
def runs():
    page = due_log.runs_page(db.session(), page=page_arg(), per_page=PAGE_SIZE)
    return render_template("admin/runs/list.html", page=page)


@bp.get("/runs/<int:run_id>")
@staff_required
def run_detail(run_id: int):
    detail = due_log.run_detail(db.session(), run_id)
    if detail is None:
        raise NotFound()
    return render_template("admin/runs/detail.html", detail=detail)
