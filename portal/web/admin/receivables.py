"""Receivables pages beside the dashboard: aging per client (sort, filter, page, CSV), the ledger adjustments CSV
and the collection settings."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal

from flask import Response, flash, redirect, render_template, request, url_for
from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, Length, NumberRange

from portal import db
from portal.clock import today
from portal.domain.aging import BUCKETS
from portal.domain.errors import DomainError
from portal.domain.money import parse_amount, parse_decimal
from portal.services import adjustments
from portal.services.collections import analytics
from portal.services.collections.settings import collection_settings, update_collection_settings
from portal.services.settings import get_settings
from portal.web import params
from portal.web.auth.identity import staff_required
from portal.web.forms import PortalForm
from portal.web.refusals import form_refusal

from .routes import bp

PER_PAGE = 25


def aging_filters() -> tuple[analytics.AgingFilters, str]:
    """The per-client aging's filters from the query string, and a message when the minimum balance was not an
    amount (the list is then shown without that filter, and says so)."""
    q = (request.args.get("q") or "")[:100]
    minimum_text = (request.args.get("min") or "").strip()
    minimum, problem = 0, ""
    if minimum_text:
        try:
            minimum = parse_amount(minimum_text)
        except DomainError:
            problem = "The minimum balance must be an amount such as 1,000 or 250.50; it was left out."
    sort = params.choice_arg("sort", analytics.SORTS, "total")
    descending = params.choice_arg("dir", ("asc", "desc"), "asc" if sort == "name" else "desc") == "desc"
    past_due_only = request.args.get("past_due") == "1"
    return analytics.AgingFilters(q=q, past_due_only=past_due_only, min_balance_cents=minimum, sort=sort,
                                  descending=descending), problem


@bp.get("/receivables")
@staff_required
def receivables():
    session = db.session()
    filters, problem = aging_filters()
    page = analytics.client_aging_page(session, today(), filters, page=params.page_arg(), per_page=PER_PAGE)
    return render_template("admin/receivables/aging.html", page=page, filters=filters, problem=problem,
                           buckets=BUCKETS, min_text=(request.args.get("min") or "")[:30])


def _csv_text(rows: Iterator[list[str]]) -> str:
    """The whole file at once: one row per client is small (about 1 MB for 10,000 clients), and a response
    generated after the view returned would run outside the request's database session."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


@bp.get("/receivables/aging.csv")
@staff_required
def receivables_csv():
    session, on = db.session(), today()
    filters, _ = aging_filters()
    rows = analytics.aging_csv_rows(session, on, filters)
    response = Response(_csv_text(rows), mimetype="text/csv")
    # a fixed pattern of ASCII letters, digits and dashes: nothing from the request reaches the header
    response.headers.set("Content-Disposition", "attachment", filename=f"aging-{on.isoformat()}.csv")
    return response


@bp.get("/receivables/adjustments.csv")
@staff_required
def adjustments_csv():
    """Every ledger adjustment (autopay discounts, write-offs) for the accountant to book."""
    session = db.session()
    response = Response(adjustments.adjustments_csv(session, get_settings(session).currency), mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename=f"adjustments-{today().isoformat()}.csv")
    return response


class CollectionSettingsForm(PortalForm):
    borrowing_rate = StringField("Borrowing rate (% per year)", validators=[InputRequired("Enter a rate."),
                                                                            Length(max=10)])
    call_after_days = IntegerField("Call this many days after the day-after-due email",
                                   validators=[InputRequired("Enter a number of days."), NumberRange(0, 60)])
    duplicate_window_days = IntegerField("Duplicate bills: issue dates within this many days",
                                         validators=[InputRequired("Enter a number of days."), NumberRange(0, 60)])

    def fill(self, row) -> None:
        self.borrowing_rate.data = format(Decimal(row.borrowing_rate_percent).normalize(), "f")
        self.call_after_days.data = row.call_after_days
        self.duplicate_window_days.data = row.duplicate_window_days

    def rate(self) -> Decimal:
        return parse_decimal((self.borrowing_rate.data or "").strip().rstrip("%").strip(), field="The borrowing rate")


@bp.route("/receivables/settings", methods=["GET", "POST"])
@staff_required
def receivables_settings():
    session = db.session()
    form = CollectionSettingsForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            with form_refusal(session, form.borrowing_rate.errors):
                update_collection_settings(session, borrowing_rate_percent=form.rate(),
                                           call_after_days=form.call_after_days.data,
                                           duplicate_window_days=form.duplicate_window_days.data)
                flash("Collection settings saved.", "success")
                return redirect(url_for("admin.receivables_settings")), 303
        status = 400
    else:
        form.fill(collection_settings(session))
    return render_template("admin/receivables/settings.html", form=form, msp=get_settings(session)), status
