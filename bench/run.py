"""Benchmark: a signed-in contact's invoice list (25 rows) over a million invoices, against a bare-Flask floor.

    python bench/run.py                                   # 1,000,000 invoices over 10,000 clients
    python bench/run.py --invoices 100000 --clients 1000  # a quick run
    python bench/run.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench

Steps: start PostgreSQL (.ci/start-postgres) unless a URL is given; bulk-load clients, contacts, invoices, lines,
payments and allocations with COPY (skipped when the database already holds the same scale); make a real session
cookie for one client contact with the app's own sign-in (Flask-Login + the app's session serializer); serve the
portal (PORTAL_ENV=production) and bench/floor_app.py under gunicorn with the same settings; check both answer
200 with the expected page; load each with wrk (32 connections; a Python load generator if wrk is missing);
print req/s and latency percentiles of both and the ratio. See bench/README.md. This is not a test.
"""

from __future__ import annotations

import argparse
import http.cookies
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import create_engine, func, inspect, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.schema import CreateIndex, DropIndex  # noqa: E402

from portal.models import Base, settled  # noqa: E402

USER_AGENT = "portal-bench/1.0"
PAGE_SIZE = 25
DESCRIPTIONS = ["Managed IT services", "Microsoft 365 Business Premium licences", "Cloud backup & DR",
                "Project hours: firewall replacement", "Hardware: Dell OptiPlex 7020", "Endpoint security (EDR)"]
METHODS = ["check", "ach", "card", "wire"]


# --- database ---------------------------------------------------------------------------------------------------

def database_url(given: str | None) -> str:
    if given:
        url = given
    else:
        started = subprocess.run([str(ROOT / ".ci" / "start-postgres")], check=True, capture_output=True, text=True)
        url = str(make_url(started.stdout.strip().splitlines()[-1]).set(database="portal_bench")
                  .render_as_string(hide_password=False))
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{parsed.database}"')
    return url


def psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def loaded_scale(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        if not inspect(engine).has_table("invoices"):
            return (0, 0)
        with engine.connect() as conn:
            return (conn.scalar(select(func.count()).select_from(Base.metadata.tables["invoices"])),
                    conn.scalar(select(func.count()).select_from(Base.metadata.tables["clients"])))
    finally:
        engine.dispose()


def built_indexes(conn) -> list:
    """The models' indexes that ``create_all`` built on this database (the search indexes are PostgreSQL's only)."""
    if conn.dialect.name == "sqlite":  # which SQLAlchemy does not read back for an index over an expression
        names = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
    else:
        inspector = inspect(conn)
        names = {ix["name"] for table in Base.metadata.tables for ix in inspector.get_indexes(table)}
    return [index for table in Base.metadata.sorted_tables for index in table.indexes if index.name in names]


def load(url: str, n_invoices: int, n_clients: int, seed: int = 42) -> None:
    """Rebuild the schema and COPY everything in one transaction (COPY FREEZE, indexes built after the load)."""
    rng = random.Random(seed)
    engine = create_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        Base.metadata.create_all(conn)
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # no FK triggers during the load
        indexes = built_indexes(conn)
        for index in indexes:
            conn.execute(DropIndex(index))
        raw = conn.connection.dbapi_connection
        counts = {}
        for table, columns, rows in _data(rng, n_invoices, n_clients):
            counts[table] = _copy(raw, table, columns, rows)
            print(f"  {table}: {counts[table]:,} rows ({time.perf_counter() - started:.0f}s)", flush=True)
        for index in indexes:
            conn.execute(CreateIndex(index))
        for backfill in (settled.BACKFILL, settled.PAYMENT_BACKFILL):  # the triggers were off for the COPY
            conn.execute(text(backfill))
        for table in counts:  # our own table names, not input
            setval = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
            conn.execute(text(setval))
    print(f"  indexes built ({time.perf_counter() - started:.0f}s)", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(f"  loaded and analyzed in {time.perf_counter() - started:.0f}s", flush=True)


def _copy(raw, table: str, columns: list[str], rows) -> int:
    """COPY rows into ``table``; model columns the bench does not fill get their scalar default (or NULL)."""
    model = Base.metadata.tables[table]
    extra, extra_values = [], []
    for column in model.columns:
        if column.name in columns:
            continue
        default = column.default.arg if column.default is not None and column.default.is_scalar else None
        if default is None and not column.nullable and column.server_default is None:
            raise SystemExit(f"bench/run.py does not know how to fill {table}.{column.name}; add it to _data()")
        extra.append(column.name)
        extra_values.append(default)
    names = ", ".join(f'"{c}"' for c in columns + extra)
    n = 0
    with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({names}) FROM STDIN (FREEZE)') as copy:
        tail = tuple(extra_values)
        for row in rows:
            copy.write_row(row + tail)
            n += 1
    return n


def _data(rng: random.Random, n_invoices: int, n_clients: int):
    """(table, columns, rows) in load order. Every client has the same number of invoices, one every 9 days,
    newest last; older ones are mostly paid in full by one payment, and a quarter of the open ones are part-paid."""
    now = datetime.now(UTC)
    today = date.today()
    per_client = max(1, n_invoices // n_clients)
    yield ("msp_settings", ["id", "name", "legal_name", "address", "email", "reply_to", "currency",
                            "default_net_days", "payment_instructions"],
           [(1, "Bench MSP", "Bench MSP, LLC", "1 Main St\nBoise, ID 83702", "billing@bench.test",
             "billing@bench.test", "USD", 30, "Pay online.")])
    yield ("clients", ["id", "external_id", "legal_name", "address_line1", "city", "region", "postal_code",
                       "country", "status", "notes", "created_at"],
           ((c, f"PSA-{c}", f"Client {c} LLC", f"{c} Main St", "Boise", "ID", "83702", "US", "active", "", now)
            for c in range(1, n_clients + 1)))
    yield ("contacts", ["id", "client_id", "name", "email", "phone", "title", "is_billing", "portal_access",
                        "session_epoch", "created_at"],
           ((c, c, f"AP Clerk {c}", f"ap@client{c}.bench.test", "", "Accounts Payable", True, True, 0, now)
            for c in range(1, n_clients + 1)))

    totals: list[int] = []
    statuses: list[str] = []
    partial: set[int] = set()

    def invoices():
        for i in range(n_invoices):
            client, j = i % n_clients + 1, i // n_clients
            issue = today - timedelta(days=(per_client - j) * 9)
            due = issue + timedelta(days=30)
            total = rng.randint(5_000, 500_000)
            paid = due < today - timedelta(days=30) and rng.random() < 0.9
            if not paid and rng.random() < 0.25:
                partial.add(i)
            totals.append(total)
            statuses.append("paid" if paid else "open")
            issued = datetime(issue.year, issue.month, issue.day, 14, tzinfo=UTC)
            yield (i + 1, client, f"B-{i + 1:07d}", "paid" if paid else "open", "USD", issue, due, 0, total, 0,
                   total, "", "import", issued, issued, issued + timedelta(days=30) if paid else None, "")

    yield ("invoices", ["id", "client_id", "number", "status", "currency", "issue_date", "due_date", "tax_rate",
                        "subtotal_cents", "tax_cents", "total_cents", "memo", "source", "created_at", "issued_at",
                        "paid_at", "void_reason"], invoices())
    yield ("invoice_lines", ["id", "invoice_id", "position", "description", "quantity", "unit_price_cents",
                             "amount_cents", "taxable"],
           ((i + 1, i + 1, 1, DESCRIPTIONS[i % len(DESCRIPTIONS)], 1, totals[i], totals[i], False)
            for i in range(n_invoices)))
    settled = [(i, totals[i] if statuses[i] == "paid" else totals[i] // 2)
               for i in range(n_invoices) if statuses[i] == "paid" or i in partial]
    yield ("payments", ["id", "client_id", "method", "status", "amount_cents", "currency", "received_on",
                        "reference", "memo", "created_at"],
           ((p + 1, i % n_clients + 1, METHODS[p % 4], "succeeded", cents, "USD", today, f"REF-{p + 1}", "", now)
            for p, (i, cents) in enumerate(settled)))
    yield ("allocations", ["id", "payment_id", "invoice_id", "amount_cents", "created_at", "note"],
           ((p + 1, p + 1, i + 1, cents, now, "") for p, (i, cents) in enumerate(settled)))


# --- the signed-in contact ----------------------------------------------------------------------------------------

def session_cookie(env: dict[str, str]) -> tuple[str, str]:
    """Sign contact 1 in the way the app does (Flask-Login's login_user, the app's session serializer).

    Returns (Cookie header value, an invoice number that must be on its first page)."""
    from flask import session
    from flask_login import login_user

    from portal import create_app, db
    from portal.models import Contact, Invoice
    from portal.web.auth.identity import Identity

    app = create_app({k[len("PORTAL_"):]: v for k, v in env.items() if k.startswith("PORTAL_")})
    with app.test_request_context("/login", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                  headers={"User-Agent": USER_AGENT}):
        contact = db.session().get(Contact, 1)
        login_user(Identity(contact))  # sets _user_id, _fresh and _id (remote address + User-Agent)
        value = app.session_interface.get_signing_serializer(app).dumps(dict(session))
        newest = db.session().scalar(select(Invoice.number).where(Invoice.client_id == contact.client_id)
                                     .order_by(Invoice.issue_date.desc(), Invoice.id.desc()))
        db.session().close()
    app.extensions["db_engine"].dispose()
    return f"{app.config['SESSION_COOKIE_NAME']}={value}", newest


def bench_staff(session):
    """The bench's staff user (created on first use; it has no password to sign in with)."""
    from portal.clock import now
    from portal.models import StaffUser

    staff = session.scalar(select(StaffUser).where(StaffUser.email == "bench@msp.test"))
    if staff is None:
        staff = StaffUser(email="bench@msp.test", name="Bench", password_hash="!", role="admin", is_active=True,
                          created_at=now())
        session.add(staff)
        session.commit()
    return staff


def staff_cookie(env: dict[str, str]) -> str:
    """Sign a bench staff user in the same way (created on first use; it has no password to sign in with)."""
    from flask import session
    from flask_login import login_user

    from portal import create_app, db
    from portal.web.auth.identity import Identity

    app = create_app({k[len("PORTAL_"):]: v for k, v in env.items() if k.startswith("PORTAL_")})
    with app.test_request_context("/admin/login", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                  headers={"User-Agent": USER_AGENT}):
        s = db.session()
        login_user(Identity(bench_staff(s)))
        value = app.session_interface.get_signing_serializer(app).dumps(dict(session))
        s.close()
    app.extensions["db_engine"].dispose()
    return f"{app.config['SESSION_COOKIE_NAME']}={value}"


# A client's page is measured tab by tab (the overview is /admin/clients/1); then the lists searched (a number that
# one invoice has, a reference fragment and a client's name; models/search.py); then the pages that list every
# client past due or every client's terms (the call list, the agreements overview), and the 200 oldest open invoices
# never emailed, each with its client (bulk send).
STAFF_PAGES = ("/admin/", "/admin/invoices", "/admin/payments", "/admin/clients", "/admin/clients/1",
               *(f"/admin/clients/1?tab={tab}" for tab in ("invoices", "payments", "plans", "collections",
                                                          "equipment")),
               "/admin/invoices?q=b-0990001", "/admin/payments?q=ref-4242", "/admin/clients?q=client+42+llc",
               "/admin/receivables", "/admin/collections/", "/admin/agreements/", "/admin/invoices/send-bulk")


def single_connection_ms(url: str, cookie: str, requests: int = 101, warmup: int = 200) -> float:
    """Median latency of sequential requests on one kept-alive connection (a person clicking, not a crowd). The
    warm-up reaches every gunicorn worker many times: each has its own database connection, whose statements
    psycopg prepares on their fifth run and PostgreSQL plans for the values at hand five times more before it may
    keep one plan, so a server that has run a while is what is measured (20 warm-ups, ~5 a worker, measured that
    transition: the client overview 8.2-8.4 ms against 6.4), but only 10 for a page whose first answer took over 50
    ms (its own work dwarfs the planning; the call list took 15 s before the ninth session); 101 requests make the
    median steady from run to run."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=60)

    def once() -> float:
        start = time.perf_counter()
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                     headers={"Cookie": cookie, "User-Agent": USER_AGENT})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{url} answered {response.status}")
        return time.perf_counter() - start

    if once() > 0.05:  # a page that slow is its own work, not planning: a few warm-ups will do
        warmup = min(warmup, 10)
    for _ in range(warmup - 1):
        once()
    measured = sorted(once() for _ in range(requests))
    conn.close()
    return measured[len(measured) // 2] * 1000


# --- servers ------------------------------------------------------------------------------------------------------

def gunicorn(app_path: str, port: int, env: dict[str, str], args, chdir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "--chdir", str(chdir), "--bind", f"127.0.0.1:{port}",
               "--workers", str(args.workers), "--log-level", "warning", "--backlog", "2048"]
    if args.worker_threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(args.worker_threads)]
    process = subprocess.Popen(command + [app_path], env=env, start_new_session=True)
    deadline = time.time() + 180  # each worker imports the app (WeasyPrint is slow to load on a busy machine)
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/nonexistent-probe", timeout=2):
                pass
            return process
        except urllib.error.HTTPError:
            return process  # it answers (404): up
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn for {app_path} exited with {process.returncode}") from None
            time.sleep(0.3)
    stop(process)
    raise SystemExit(f"gunicorn for {app_path} did not start on port {port}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the master and its workers, nothing else
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def fetch(url: str, cookie: str) -> tuple[int, str]:
    status, body, _ = fetch_with_cookie(url, cookie)
    return status, body


def fetch_with_cookie(url: str, cookie: str) -> tuple[int, str, str]:
    """(status, body, the Cookie header a browser would send next: ``cookie`` updated by any Set-Cookie)."""
    request = urllib.request.Request(url, headers={"Cookie": cookie, "User-Agent": USER_AGENT})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            jar = http.cookies.SimpleCookie(cookie)
            for header in response.headers.get_all("Set-Cookie") or []:
                jar.load(header)
            sent = "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())
            return response.status, response.read().decode(), sent
    except urllib.error.HTTPError as e:
        return e.code, "", cookie


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect to /login means the cookie did not work: report it, do not follow it


# --- load generation --------------------------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    bytes_per_response: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(name: str, url: str, cookie: str, args, duration: float) -> Result:
    env = {**os.environ, "BENCH_COOKIE": cookie, "BENCH_USER_AGENT": USER_AGENT}
    out = subprocess.run(
        ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
         "-s", str(ROOT / "bench" / "wrk.lua"), url],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    data = json.loads(next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))[11:])
    errors = sum(data["errors"].values())
    return Result(name, data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p90_us"] / 1000,
                  data["p99_us"] / 1000, errors, data["bytes"] / max(1, data["requests"]))


def run_python(name: str, url: str, cookie: str, args, duration: float) -> Result:
    """Fallback when wrk is unavailable: one thread per connection (the GIL makes it a weaker load generator)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    sizes = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker():
        conn, mine, bad, size = None, [], 0, 0
        while time.perf_counter() < deadline:
            try:
                conn = conn or HTTPConnection(parts.hostname, parts.port, timeout=10)
                start = time.perf_counter()
                conn.request("GET", parts.path, headers={"Cookie": cookie, "User-Agent": USER_AGENT})
                response = conn.getresponse()
                body = response.read()
                mine.append(time.perf_counter() - start)
                size += len(body)
                bad += response.status >= 400
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except OSError:
                bad += 1
                conn = None
        with lock:
            latencies.extend(mine)
            errors[0] += bad
            sizes[0] += size

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0.0

    return Result(name, len(latencies), elapsed, pct(0.5), pct(0.9), pct(0.99), errors[0],
                  sizes[0] / max(1, len(latencies)))


def load_generator(choice: str):
    if choice in ("auto", "wrk") and not shutil.which("wrk") and os.geteuid() == 0:
        print("wrk not found: installing the Debian package", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    if shutil.which("wrk") and choice != "python":
        return run_wrk
    if choice == "wrk":
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --loadgen python")
    print("using the Python load generator (install wrk for sharper figures)", flush=True)
    return run_python


# --- main ---------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="SQLAlchemy URL of a PostgreSQL database to fill (it is rebuilt)")
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--reload", action="store_true", help="load the data again even if the scale matches")
    parser.add_argument("--duration", type=float, default=15, help="seconds of measurement per page")
    parser.add_argument("--staff-warmup", type=int, default=200,
                        help="unmeasured requests before each one-connection page's 101 (the floor's too; "
                             "single_connection_ms says why 200)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers for each app")
    parser.add_argument("--worker-threads", type=int, default=1, help=">1: gthread workers with this many threads")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--portal-port", type=int, default=8061)
    parser.add_argument("--floor-port", type=int, default=8062)
    args = parser.parse_args()
    if args.invoices < args.clients * PAGE_SIZE:
        parser.error(f"use at least {PAGE_SIZE} invoices per client so the page has {PAGE_SIZE} rows")

    url = database_url(args.database_url)
    print(f"database: {make_url(url).render_as_string(hide_password=True)}", flush=True)
    if args.reload or loaded_scale(url) != (args.invoices, args.clients):
        print(f"loading {args.invoices:,} invoices over {args.clients:,} clients", flush=True)
        load(url, args.invoices, args.clients)
    else:
        print(f"reusing the loaded {args.invoices:,} invoices over {args.clients:,} clients", flush=True)

    instance = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    env = {**os.environ, "PORTAL_ENV": "production", "PORTAL_DATABASE_URL": url,
           "PORTAL_SECRET_KEY": secrets.token_urlsafe(48), "PORTAL_INSTANCE_PATH": str(instance),
           "PORTAL_BASE_URL": f"http://127.0.0.1:{args.portal_port}", "BENCH_DATABASE_URL": url,
           "BENCH_MAX_INVOICE_ID": str(args.invoices)}
    cookie, newest = session_cookie(env)
    run = load_generator(args.loadgen)

    portal_url = f"http://127.0.0.1:{args.portal_port}/invoices"
    floor_url = f"http://127.0.0.1:{args.floor_port}/invoice"
    servers = []
    try:
        servers.append(gunicorn("wsgi:app", args.portal_port, env, args, ROOT))
        servers.append(gunicorn("floor_app:app", args.floor_port, env, args, ROOT / "bench"))
        # the first page adds the CSRF token to the session (the layout's sign-out form): the load then sends the
        # cookie a browser holds from then on, not one that has the session re-signed on every request
        status, body, cookie = fetch_with_cookie(portal_url, cookie)
        rows = body.count("B-")  # invoice numbers on the page (each appears in its link at least once)
        if status != 200 or newest not in body:
            raise SystemExit(f"the signed-in invoice list answered {status} without invoice {newest}: "
                             "the cookie or the page does not work")
        status, _ = fetch(floor_url, "")
        if status != 200:
            raise SystemExit(f"the floor app answered {status}")
        print(f"checked: /invoices answers 200 for the contact with its newest invoice {newest} "
              f"({rows} invoice-number mentions, {len(body):,} bytes)", flush=True)

        results = []
        for name, target, sent_cookie in (("floor: bare Flask, 1 indexed query", floor_url, ""),
                                          ("portal: contact /invoices (25 rows)", portal_url, cookie)):
            if args.warmup:
                run(name, target, sent_cookie, args, args.warmup)
            results.append(run(name, target, sent_cookie, args, args.duration))
        status, body = fetch(portal_url, cookie)
        if status != 200 or newest not in body:
            raise SystemExit(f"after the run /invoices answered {status}: the figures are not of the real page")
        base = f"http://127.0.0.1:{args.portal_port}"
        _, _, staff = fetch_with_cookie(base + "/admin/invoices", staff_cookie(env))  # as above: the CSRF token
        latencies = [("floor page", single_connection_ms(floor_url, "", warmup=args.staff_warmup))]
        latencies += [(path, single_connection_ms(base + path, staff, warmup=args.staff_warmup))
                      for path in STAFF_PAGES]
    finally:
        for process in servers:
            stop(process)
        shutil.rmtree(instance, ignore_errors=True)

    floor, portal = results
    print()
    print(f"{args.invoices:,} invoices, {args.clients:,} clients; gunicorn {args.workers} workers"
          f"{f' x {args.worker_threads} threads' if args.worker_threads > 1 else ''}; {args.connections} "
          f"connections for {args.duration:g}s each; {os.cpu_count()} CPUs shared with the load generator and "
          "PostgreSQL")
    print(f"{'page':<38}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'bytes':>8}")
    for r in results:
        print(f"{r.name:<38}{r.rps:>9.1f}{r.p50_ms:>9.1f}{r.p90_ms:>9.1f}{r.p99_ms:>9.1f}{r.errors:>8}"
              f"{r.bytes_per_response:>8.0f}")
    floor_ms = latencies[0][1]
    print(f"\n{'staff page, one connection':<38}{'median ms':>10}{'x floor':>9}   (target: within 5x)")
    for path, ms in latencies:
        print(f"{path:<38}{ms:>10.1f}{ms / floor_ms:>9.1f}")
    ratio = portal.rps / floor.rps if floor.rps else 0.0
    print(f"ratio portal/floor throughput: {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'}); "
          f"portal p99 {portal.p99_ms:.1f} ms (target < 25 ms: {'met' if portal.p99_ms < 25 else 'NOT met'})")


if __name__ == "__main__":
    main()
