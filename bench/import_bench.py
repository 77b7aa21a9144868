"""Benchmark: `portal import` lines per second and peak memory, new and unchanged files, SQLite and PostgreSQL.

    python bench/import_bench.py                       # 20,000 lines over 2,000 clients, SQLite + PostgreSQL
    python bench/import_bench.py --lines 1000000       # the memory check: a million-line file
    python bench/import_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench_import

Each measurement runs in its own process (so its peak resident memory is its own) on a freshly created schema:
the file is imported once (all lines new), then again (all unchanged). The floor, measured in the same run, is
reading and checking the same file without a database (csv + the domain's line parser and file checks): what an
import costs before it touches the database. Not a test; see bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = ["client_external_id", "client_name", "invoice_number", "issue_date", "due_date", "description", "amount",
          "currency", "contact_email", "contact_name", "tax", "status", "city", "region", "postal_code", "country"]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench_import"


def write_file(path: Path, lines: int, clients: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for i in range(lines):
            c = i % clients + 1
            day = 1 + i % 28
            w.writerow([f"PSA-{c}", f"Client {c} LLC", f"IMP-{i + 1:07d}", f"2026-03-{day:02d}", f"2026-04-{day:02d}",
                        "Managed IT services", f"{100 + i % 900}.{i % 100:02d}", "USD", f"ap@client{c}.test",
                        "Accounts Payable", "", "open", "Boise", "ID", "83702", "US"])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def measure(kind: str, path: str, url: str | None) -> dict:
    """In a child process: the floor (kind 'floor') or one import after another ('import')."""
    if kind == "floor":
        from portal.domain import imports
        start = time.perf_counter()
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = imports.read_header(next(reader))
            checks = imports.FileChecks()
            n = 0
            for line, cells in enumerate(reader, start=2):
                parsed = imports.parse_row(line, cells, header, currency="USD")
                checks.check(parsed)
                n += 1
        return {"runs": [{"lines": n, "seconds": time.perf_counter() - start}], "peak_mb": peak_mb()}

    from portal import create_app, db
    from portal.models import Base
    from portal.services.importer import import_csv

    instance = tempfile.mkdtemp(prefix="portal-import-bench-")
    app = create_app({"ENV": "production", "DATABASE_URL": url, "SECRET_KEY": "bench-" + "x" * 40,
                      "INSTANCE_PATH": instance, "BASE_URL": "http://localhost"})
    engine = app.extensions["db_engine"]
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    runs = []
    for _ in range(2):  # new, then unchanged
        with app.app_context():
            start = time.perf_counter()
            with open(path, encoding="utf-8-sig", newline="") as f:
                report = import_csv(db.session(), f, progress_every=10_000, on_progress=lambda n: None)
            seconds = time.perf_counter() - start
        runs.append({"lines": report.rows, "seconds": seconds, "summary": report.summary()})
    engine.dispose()
    return {"runs": runs, "peak_mb": peak_mb()}


def child(kind: str, path: Path, url: str | None) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path), url or ""], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4] or None)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL database to rebuild ('' to skip)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="portal-import-bench-"))
    path = work / "export.csv"
    write_file(path, args.lines, args.clients)
    if args.database_url.startswith("postgresql"):
        _create_database(args.database_url)
    targets = [("SQLite", f"sqlite:///{work / 'bench.db'}")]
    if args.database_url:
        targets.append(("PostgreSQL", args.database_url))

    load1 = os.getloadavg()[0]
    floor = child("floor", path, None)
    f = floor["runs"][0]
    print(f"{args.lines:,} lines over {args.clients:,} clients ({path.stat().st_size / 1e6:.1f} MB); "
          f"load average {load1:.1f} on {os.cpu_count()} CPUs at the start")
    print(f"{'what':<44}{'lines/s':>10}{'seconds':>9}{'peak MB':>9}")
    floor_rate = f["lines"] / f["seconds"]
    print(f"{'floor: read + check the file, no database':<44}{floor_rate:>10,.0f}{f['seconds']:>9.2f}"
          f"{floor['peak_mb']:>9.0f}")
    for name, url in targets:
        result = child("import", path, url)
        for run, label, aim in zip(result["runs"], ("new", "unchanged"), (20_000, 50_000), strict=True):
            rate = run["lines"] / run["seconds"]
            what = f"{name}: {label} ({run['summary']})"
            print(f"{what:<44}{rate:>10,.0f}{run['seconds']:>9.2f}"
                  f"{result['peak_mb']:>9.0f}  aim >= {aim:,}: {'met' if rate >= aim else 'NOT met'}; "
                  f"{rate / floor_rate:.2f} of the floor")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def _create_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}):
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


if __name__ == "__main__":
    main()
