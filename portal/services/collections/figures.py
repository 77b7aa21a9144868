"""The dashboard's slow figures, computed by `run-due` and read by the page.

At a million invoices the trend's month-end replays and the forecast's days-to-pay history take seconds each
(bench/README.md); a page view must not. `run-due` (step "dashboard figures", one node at a time under a lease)
stores them for the day and refreshes them when they are older than ``REFRESH``; the dashboard reads the stored
figures of the day, and computes them itself (kept per process by analytics.FiguresCache) only when `run-due` has
not stored any today (a fresh install, cron not set up yet). The live figures (aging, what is past due, today's
point of the trend) are never taken from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, bindparam, delete, select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import receivables as R
from portal.models import DashboardFigures

from ..autopay import adoption as autopay_adoption
from ..locking import begin_write
from . import analytics, forecast

#: How old stored figures may get before `run-due` computes them again.
REFRESH = timedelta(hours=1)
#: Autopay adoption's month-by-month history shown on the dashboard.
ADOPTION_MONTHS = 1


# --- each kind: compute, to JSON, from JSON ------------------------------------------------------------------------

def _trend(session: Session, today: date) -> list[R.TrendPoint]:
    return analytics.trend(session, today)[:-1]  # the past month ends; today's point is live


def _trend_out(points: list[R.TrendPoint]) -> list:
    return [[p.month_end.isoformat(), p.ar_cents, p.past_due_cents, p.sales_cents] for p in points]


def _trend_in(rows: list) -> list[R.TrendPoint]:
    return [R.TrendPoint(date.fromisoformat(d), ar, late, sales) for d, ar, late, sales in rows]


def _forecast_out(f: forecast.Forecast) -> dict:
    return {"made_on": f.made_on.isoformat(), "msp_days_to_pay": f.msp_days_to_pay,
            "horizons": [{"days": h.days, "by_source": {str(s): c for s, c in h.by_source.items()}}
                         for h in f.horizons]}


def _forecast_in(data: dict) -> forecast.Forecast:
    return forecast.Forecast(
        date.fromisoformat(data["made_on"]),
        [R.HorizonFigures(h["days"], {R.Source(s): c for s, c in h["by_source"].items()}) for h in data["horizons"]],
        data["msp_days_to_pay"])


def _adoption(session: Session, today: date) -> autopay_adoption.Adoption:
    return autopay_adoption.adoption(session, months=ADOPTION_MONTHS)


def _adoption_out(a: autopay_adoption.Adoption) -> dict:
    return {"clients": a.clients, "on_autopay": a.on_autopay, "billed_cents": a.billed_cents,
            "billed_on_autopay_cents": a.billed_on_autopay_cents,
            "trend": [[d.isoformat(), on, total] for d, on, total in a.trend]}


def _adoption_in(data: dict) -> autopay_adoption.Adoption:
    return autopay_adoption.Adoption(data["clients"], data["on_autopay"], data["billed_cents"],
                                     data["billed_on_autopay_cents"],
                                     [(date.fromisoformat(d), on, total) for d, on, total in data["trend"]])


@dataclass(frozen=True)
class _Kind:
    compute: Callable[[Session, date], Any]
    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]


KINDS = {
    "trend": _Kind(_trend, _trend_out, _trend_in),
    "forecast": _Kind(forecast.forecast, _forecast_out, _forecast_in),
    "adoption": _Kind(_adoption, _adoption_out, _adoption_in),
}


# --- reading (the page) --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    trend: list[R.TrendPoint]  # past month ends, oldest first
    forecast: forecast.Forecast
    adoption: autopay_adoption.Adoption
    stored_at: datetime | None  # when `run-due` computed them; None: computed by this process


def for_dashboard(session: Session, today: date, cache: analytics.FiguresCache) -> Figures:
    """Today's stored figures, or (a kind `run-due` has not stored today) computed here and kept per process."""
    rows = {row.kind: row for row in session.scalars(_STORED, {"today": today})}
    values = {}
    for name, kind in KINDS.items():
        row = rows.get(name)
        values[name] = (kind.load(json.loads(row.payload)) if row is not None
                        else cache.get((name, today), lambda kind=kind: kind.compute(session, today)))
    stored_at = min((row.computed_at for row in rows.values()), default=None) if len(rows) == len(KINDS) else None
    return Figures(values["trend"], values["forecast"], values["adoption"], stored_at)


_STORED = select(DashboardFigures).where(DashboardFigures.made_on == bindparam("today", type_=Date()))


# --- writing (`run-due`) --------------------------------------------------------------------------------------------

def refresh(session: Session, today: date) -> list[str]:
    """Compute and store each kind that has no figures for today or older ones than REFRESH. The kinds stored."""
    fresh_after = now() - REFRESH
    fresh = set(session.scalars(select(DashboardFigures.kind).where(
        DashboardFigures.made_on == today, DashboardFigures.computed_at >= fresh_after)))
    session.rollback()
    done = []
    for name, kind in KINDS.items():
        if name in fresh:
            continue
        payload = json.dumps(kind.dump(kind.compute(session, today)), separators=(",", ":"))
        begin_write(session)
        session.execute(delete(DashboardFigures).where(DashboardFigures.kind == name,
                                                       DashboardFigures.made_on <= today))
        session.add(DashboardFigures(made_on=today, kind=name, payload=payload, computed_at=now()))
        session.commit()
        done.append(name)
    return done


def run_step(ctx) -> None:
    """The `run-due` step "dashboard figures" (``ctx``: services.due.DueContext); runs under a lease."""
    refresh(ctx.session, ctx.today)
