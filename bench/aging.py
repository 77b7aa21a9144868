"""Benchmark: the dashboard's aging (totals and per client) against hand-written SQL, and the whole dashboard page.

    python bench/aging.py                                        # PostgreSQL (.ci/start-postgres), 1,000,000 invoices
    python bench/aging.py --invoices 100000 --clients 1000       # a quick run
    python bench/aging.py --sqlite /tmp/aging.db                 # the same on SQLite
    python bench/aging.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench

Loads the data of bench/run.py (COPY on PostgreSQL; batched inserts on SQLite; skipped when the database already
holds that scale), then, in one process and one run, times each query several times and keeps the best:

- aging totals: a hand-written query (bucket sums over balances derived from allocations and adjustments) against
  the service the dashboard calls (services.ledger.receivables);
- aging per client (the first page, largest total first): hand-written against services.collections.analytics;
- the dashboard's other figures (summary, 12-month trend, cash forecast), the run-due step that stores the slow ones
  for the day (services.collections.figures), and the whole GET /admin/ as staff, first view and warm.

Prints each time and the ratio service / hand-written (the issue's aim: at most 1.5x, and the page under 1 s).
Both versions must give the same figures, or the run stops. This is not a test.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.schema import CreateIndex, DropIndex  # noqa: E402

from portal.models import Base  # noqa: E402

BUCKET_SQL = """
  SUM(CASE WHEN due_date >= :today THEN owed ELSE 0 END),
  SUM(CASE WHEN due_date BETWEEN :d30 AND :d1 THEN owed ELSE 0 END),
  SUM(CASE WHEN due_date BETWEEN :d60 AND :d31 THEN owed ELSE 0 END),
  SUM(CASE WHEN due_date BETWEEN :d90 AND :d61 THEN owed ELSE 0 END),
  SUM(CASE WHEN due_date <= :d91 THEN owed ELSE 0 END)"""
# The floor: the best hand-written query on this schema, over the sums the database keeps (models/settled.py).
OPEN_BALANCES = """
  SELECT client_id, due_date, total_cents - settled_cents AS owed FROM invoices WHERE status = 'open'"""
# The same balances derived from the allocation rows (what aging read before settled_cents): a cross-check that
# the kept sums are right at this scale, and the old floor for comparison.
DERIVED_BALANCES = """
  SELECT i.client_id, i.due_date, i.total_cents - COALESCE(s.cents, 0) AS owed
  FROM invoices i
  LEFT JOIN (SELECT x.invoice_id, SUM(x.cents) AS cents
             FROM (SELECT invoice_id, amount_cents AS cents FROM allocations
                   UNION ALL SELECT invoice_id, amount_cents FROM ledger_adjustments) x
             JOIN invoices j ON j.id = x.invoice_id AND j.status = 'open'
             GROUP BY x.invoice_id) s ON s.invoice_id = i.id
  WHERE i.status = 'open'"""
RAW_TOTALS = f"SELECT {BUCKET_SQL} FROM ({OPEN_BALANCES}) o WHERE owed > 0"  # noqa: S608 (constants only)
DERIVED_TOTALS = f"SELECT {BUCKET_SQL} FROM ({DERIVED_BALANCES}) o WHERE owed > 0"  # noqa: S608 (constants only)
COUNT_SQL = """
  SUM(CASE WHEN due_date >= :today THEN 1 ELSE 0 END),
  SUM(CASE WHEN due_date BETWEEN :d30 AND :d1 THEN 1 ELSE 0 END),
  SUM(CASE WHEN due_date BETWEEN :d60 AND :d31 THEN 1 ELSE 0 END),
  SUM(CASE WHEN due_date BETWEEN :d90 AND :d61 THEN 1 ELSE 0 END),
  SUM(CASE WHEN due_date <= :d91 THEN 1 ELSE 0 END)"""
RAW_EVERY_CLIENT = f"""
SELECT c.id, c.legal_name, t.* FROM clients c JOIN (
  SELECT client_id, {BUCKET_SQL}, {COUNT_SQL}, MIN(due_date) FROM ({OPEN_BALANCES}) o WHERE owed > 0 GROUP BY client_id
) t ON t.client_id = c.id"""  # noqa: S608 (constants only)
RAW_BY_CLIENT = f"""
SELECT c.id, c.legal_name, t.* FROM clients c JOIN (
  SELECT client_id, {BUCKET_SQL}, SUM(owed) AS total FROM ({OPEN_BALANCES}) o WHERE owed > 0 GROUP BY client_id
) t ON t.client_id = c.id
ORDER BY t.total DESC, lower(c.legal_name), c.id LIMIT 26"""  # noqa: S608 (constants only)


def _params(today: date) -> dict:
    return {"today": today, **{f"d{n}": today - timedelta(days=n) for n in (1, 30, 31, 60, 61, 90, 91)}}


def load_sqlite(path: Path, n_invoices: int, n_clients: int) -> None:
    """The rows of bench/run.py, inserted in one transaction with indexes built after."""
    import random

    from run import _data, built_indexes

    path.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    started = time.perf_counter()
    tables = Base.metadata.tables
    with engine.begin() as conn:  # the tables bare: indexes are built after the load
        Base.metadata.create_all(conn)
        indexes = built_indexes(conn)
        for index in indexes:
            conn.execute(DropIndex(index))
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=OFF")
    for table, columns, rows in _data(random.Random(42), n_invoices, n_clients):
        model = tables[table]
        extra = [c for c in model.columns if c.name not in columns]
        defaults = tuple(c.default.arg if c.default is not None and c.default.is_scalar else None for c in extra)
        names = columns + [c.name for c in extra]
        sql = f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'  # noqa: S608
        batch, n = [], 0
        for row in rows:
            batch.append(tuple(_sqlite_value(v) for v in row) + defaults)
            if len(batch) == 10_000:
                raw.executemany(sql, batch)
                n, batch = n + len(batch), []
        raw.executemany(sql, batch)
        print(f"  {table}: {n + len(batch):,} rows ({time.perf_counter() - started:.0f}s)", flush=True)
    raw.commit()
    raw.close()
    with engine.begin() as conn:
        for index in indexes:
            conn.execute(CreateIndex(index))
        conn.execute(text("ANALYZE"))
    engine.dispose()
    print(f"  loaded and analyzed in {time.perf_counter() - started:.0f}s", flush=True)


def _sqlite_value(value):
    from datetime import datetime

    if isinstance(value, datetime):  # stored as the app's UTCDateTime stores it: naive UTC text
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="SQLAlchemy URL of a PostgreSQL database to fill (it is rebuilt)")
    parser.add_argument("--sqlite", type=Path, help="an SQLite file to fill and measure instead of PostgreSQL")
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--reload", action="store_true", help="load the data again even if the scale matches")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the best is kept)")
    args = parser.parse_args()

    from run import database_url, load, loaded_scale

    if args.sqlite:
        url = f"sqlite:///{args.sqlite}"
        if args.reload or not args.sqlite.exists() or loaded_scale(url) != (args.invoices, args.clients):
            print(f"loading {args.invoices:,} invoices over {args.clients:,} clients into {args.sqlite}", flush=True)
            load_sqlite(args.sqlite, args.invoices, args.clients)
    else:
        url = database_url(args.database_url)
        if args.reload or loaded_scale(url) != (args.invoices, args.clients):
            print(f"loading {args.invoices:,} invoices over {args.clients:,} clients", flush=True)
            load(url, args.invoices, args.clients)
    measure(url, args.repeat)


def measure(url: str, repeat: int) -> None:
    from run import bench_staff

    from portal import create_app, db
    from portal.clock import today
    from portal.services import ledger
    from portal.services.collections import analytics, forecast
    from portal.web.auth.identity import Identity

    instance = tempfile.mkdtemp(prefix="portal-aging-bench-")
    app = create_app({"ENV": "test", "DATABASE_URL": url, "INSTANCE_PATH": instance, "SECRET_KEY": "b" * 48,
                      "SMTP_URL": None, "STRIPE_SECRET_KEY": None, "WTF_CSRF_ENABLED": False,
                      "RATELIMIT_ENABLED": False})
    with app.app_context():
        session = db.session()
        on = today()
        params = _params(on)
        staff = bench_staff(session)
        staff_id = Identity(staff).get_id()
        session.rollback()

        def raw_totals():
            row = session.execute(text(RAW_TOTALS), params).one()
            session.rollback()
            return [int(v or 0) for v in row]

        def service_totals():
            report = ledger.receivables(session, on)
            session.rollback()
            return [report.totals[b] for b in ("current", "1-30", "31-60", "61-90", "90+")]

        def raw_by_client():
            rows = session.execute(text(RAW_BY_CLIENT), params).all()
            session.rollback()
            return [(r[0], int(r[-1])) for r in rows[:25]]

        def service_by_client():
            page = analytics.client_aging_page(session, on, per_page=25)
            session.rollback()
            return [(r.client_id, r.total_cents) for r in page.items]

        def raw_every_client():
            rows = session.execute(text(RAW_EVERY_CLIENT), params).all()
            session.rollback()
            totals = [sum(int(r[3 + k] or 0) for r in rows) for k in range(5)]
            return totals, len(rows)

        def service_every_client():
            overview = analytics.aging_overview(session, on)
            session.rollback()
            return [overview.report.totals[b] for b in ("current", "1-30", "31-60", "61-90", "90+")], \
                len(overview.clients)

        def derived_totals():
            row = session.execute(text(DERIVED_TOTALS), params).one()
            session.rollback()
            return [int(v or 0) for v in row]

        derived_s, derived = best(derived_totals, 1)
        if derived != raw_totals():
            raise SystemExit(f"the kept sums disagree with the allocation rows:\n  {raw_totals()}\n  {derived}")

        results = []
        for name, raw, service in (("aging totals (other pages)", raw_totals, service_totals),
                                   ("dashboard aging: totals + clients", raw_every_client, service_every_client),
                                   ("aging page (first 25 by total)", raw_by_client, service_by_client)):
            raw_s, raw_result = best(raw, repeat)
            service_s, service_result = best(service, repeat)
            if raw_result != service_result:
                raise SystemExit(f"{name}: the service and the hand-written query disagree:\n"
                                 f"  {service_result}\n  {raw_result}")
            results.append((name, raw_s, service_s))
        others = []
        for name, fn in (("summary (totals, sales, settings)", lambda: analytics.summary(session, on)),
                         ("12-month trend", lambda: analytics.trend(session, on)),
                         ("cash forecast", lambda: forecast.forecast(session, on))):
            seconds, _ = best(lambda fn=fn: (fn(), session.rollback()), repeat)
            others.append((name, seconds))
        from sqlalchemy import delete

        from portal.models import DashboardFigures
        from portal.services.collections import figures

        session.execute(delete(DashboardFigures))  # an earlier run's: the step must compute them here
        session.commit()
        started = time.perf_counter()
        figures.refresh(session, on)  # what the hourly run-due step does; the page then reads them
        refresh_s = time.perf_counter() - started

    client = app.test_client()
    with client.session_transaction() as s:
        s["_user_id"], s["_fresh"] = staff_id, True

    def page():
        response = client.get("/admin/")
        if response.status_code != 200:
            raise SystemExit(f"/admin/ answered {response.status_code}")
        return len(response.data)

    cold_s, size = best(page, 1)  # the first view of this process: nothing cached, the stored figures read
    page_s, size = best(page, repeat)

    print(f"\ndatabase: {create_engine(url).dialect.name}, best of {repeat}")
    print(f"{'what':34} {'hand-written':>13} {'service':>10} {'ratio':>7}")
    for name, raw_s, service_s in results:
        print(f"{name:34} {raw_s * 1000:10.1f} ms {service_s * 1000:7.1f} ms {service_s / raw_s:6.2f}x")
    print(f"{'aging totals derived from the rows':34} {derived_s * 1000:10.1f} ms  (the floor before 0008)")
    for name, seconds in others:
        print(f"{name:34} {'':13} {seconds * 1000:7.1f} ms")
    print(f"{'run-due: dashboard figures (hourly)':34} {'':13} {refresh_s * 1000:7.1f} ms")
    print(f"{'GET /admin/ first view (cold)':34} {'':13} {cold_s * 1000:7.1f} ms")
    print(f"{'GET /admin/ (whole page, staff)':34} {'':13} {page_s * 1000:7.1f} ms   ({size:,} bytes)")


if __name__ == "__main__":
    main()
