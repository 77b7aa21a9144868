"""Benchmark: where a client page's throughput goes, one layer at a time, against the floor (not a test).

    python bench/layers.py                      # the million-invoice database bench/run.py loads (loaded if absent)
    python bench/layers.py --invoices 100000 --clients 1000 --rounds 3

bench/run.py compares the contact's /invoices with the floor page (bare Flask, one indexed query). This serves
bench/layers_app.py (the portal plus three stops on the page's path: the request handling alone, past the sign-in
check, past the page's statement) and the floor under the same gunicorn settings, loads each with wrk in turn
(the floor first, then each stop, then the page; ``--rounds`` times), and prints each one's throughput against the
floor's and where its CPU went: milliseconds of CPU a request in the portal's (or floor's) gunicorn workers, in
PostgreSQL's processes and in the load generator, read from /proc and getrusage around each measurement. On 2
cores shared by all three, throughput is what a request costs them together.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/run.py: its loader, cookie, gunicorn and wrk helpers)

LAYERS = (("stack: request handling only", "/__layer/stack"), ("+ sign-in (the contact's row)", "/__layer/sign-in"),
          ("+ the page's statement", "/__layer/query"), ("+ the HTML: /invoices", "/invoices"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(session_id: int | None = None) -> float:
    """CPU seconds so far of the processes of one session (a gunicorn master started in its own, and its workers),
    or with None, of PostgreSQL's processes (named postgres)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if (name == "postgres") if session_id is None else int(fields[3]) == session_id:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def measure(name: str, url: str, cookie: str, server_session: int, args) -> tuple:
    run.run_wrk(name, url, cookie, args, args.warmup)
    before = cpu_seconds(server_session), cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run.run_wrk(name, url, cookie, args, args.duration)
    after = cpu_seconds(server_session), cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk = (after[2].ru_utime + after[2].ru_stime) - (before[2].ru_utime + before[2].ru_stime)
    per_request = 1000 / max(1, result.requests)
    return result, (after[0] - before[0]) * per_request, (after[1] - before[1]) * per_request, wrk * per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench")
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=10, help="seconds of measurement per layer")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured load before each")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers for each app")
    parser.add_argument("--portal-port", type=int, default=8061)
    parser.add_argument("--floor-port", type=int, default=8062)
    args = parser.parse_args()
    args.worker_threads = 1  # sync workers, as bench/run.py's default
    if run.load_generator("wrk") is not run.run_wrk:
        raise SystemExit("needs wrk")

    url = args.database_url
    if run.loaded_scale(url) != (args.invoices, args.clients):
        print(f"loading {args.invoices:,} invoices over {args.clients:,} clients", flush=True)
        run.load(url, args.invoices, args.clients)
    instance = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    env = {**os.environ, "PORTAL_ENV": "production", "PORTAL_DATABASE_URL": url,
           "PORTAL_SECRET_KEY": secrets.token_urlsafe(48), "PORTAL_INSTANCE_PATH": str(instance),
           "PORTAL_BASE_URL": f"http://127.0.0.1:{args.portal_port}", "BENCH_DATABASE_URL": url,
           "BENCH_MAX_INVOICE_ID": str(args.invoices)}
    cookie, newest = run.session_cookie(env)
    portal = f"http://127.0.0.1:{args.portal_port}"
    floor_url = f"http://127.0.0.1:{args.floor_port}/invoice"
    servers = []
    try:
        servers.append(run.gunicorn("layers_app:app", args.portal_port, env, args, HERE))
        servers.append(run.gunicorn("floor_app:app", args.floor_port, env, args, HERE))
        status, body, cookie = run.fetch_with_cookie(portal + "/invoices", cookie)  # the CSRF token, as run.py
        if status != 200 or newest not in body:
            raise SystemExit(f"/invoices answered {status} without invoice {newest}: the cookie does not work")
        for _, path in LAYERS[:-1]:
            status, body = run.fetch(portal + path, cookie)
            if (status, body) != (200, "ok"):  # a redirect to /login would measure the sign-in page instead
                raise SystemExit(f"{path} answered {status}")
        targets = [("floor: bare Flask, 1 indexed query", floor_url, "", servers[1].pid)]
        targets += [(name, portal + path, cookie, servers[0].pid) for name, path in LAYERS]
        print(f"{args.invoices:,} invoices; gunicorn {args.workers} workers, wrk {args.connections} connections, "
              f"{args.duration:g} s a layer; load average {os.getloadavg()[0]:.1f}; CPU ms a request in:")
        print(f"{'layer':<38}{'req/s':>8}{'x floor':>9}{'app':>7}{'pg':>7}{'wrk':>7}")
        for _ in range(args.rounds):
            floor_rps = None
            for name, target, sent_cookie, server in targets:
                result, app_ms, pg_ms, wrk_ms = measure(name, target, sent_cookie, server, args)
                floor_rps = floor_rps or result.rps
                print(f"{name:<38}{result.rps:>8.0f}{result.rps / floor_rps:>9.2f}{app_ms:>7.2f}{pg_ms:>7.2f}"
                      f"{wrk_ms:>7.2f}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        for process in servers:
            run.stop(process)
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
