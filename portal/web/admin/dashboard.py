"""The staff home page: what is owed, how late, by whom, where it is heading and what should come in."""

from flask import current_app, render_template

from portal import db
from portal.clock import today
from portal.domain import receivables as R
from portal.domain.aging import BUCKETS
from portal.services.collections import analytics, figures, forecast
from portal.web.auth.identity import staff_required

from .routes import bp

TOP_CLIENTS = 10
#: How long each app process keeps the slow figures it had to compute itself because `run-due` stored none today
#: (services.collections.figures); a test may set it to 0.
CACHE_SECONDS = 900


def _cache() -> analytics.FiguresCache:
    cache = current_app.extensions.get("receivables_figures")
    if cache is None:
        seconds = float(current_app.config.get("RECEIVABLES_CACHE_SECONDS", CACHE_SECONDS))
        cache = current_app.extensions["receivables_figures"] = analytics.FiguresCache(seconds)
    return cache


@bp.get("/")
@staff_required
def dashboard():
    session, on, cache = db.session(), today(), _cache()
    overview = analytics.aging_overview(session, on)
    sales = cache.get(("sales", on), lambda: analytics.credit_sales(session, on))
    summary = analytics.summary(session, on, overview.report, sales)
    slow = figures.for_dashboard(session, on, cache)
    trend = [*slow.trend, analytics.current_point(on, summary)]
    return render_template(
        "admin/dashboard.html",
        summary=summary,
        buckets=BUCKETS,
        by_client=overview.top("total", TOP_CLIENTS),
        top_overdue=overview.top("past_due", TOP_CLIENTS),
        trend=trend,
        direction=R.direction([p.ar_cents for p in trend]),
        chart=R.chart_geometry([p.ar_cents for p in trend]),
        forecast=slow.forecast,
        accuracy=forecast.last_accuracy(session, on),
        adoption=slow.adoption,
        figures_at=slow.stored_at,
        dso_days=R.DSO_DAYS,
    )
