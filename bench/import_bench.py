"""Benchmark: `portal import` lines per second and peak memory, new and unchanged files, SQLite and PostgreSQL.

    python bench/import_bench.py                       # 20,000 lines over 2,000 clients, SQLite + PostgreSQL
    python bench/import_bench.py --lines 1000000       # the memory check: a million-line file
    python bench/import_bench.py --profile --database-url ""   # statements per chunk + cProfile, SQLite
    python bench/import_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench_import

Each measurement runs in its own process (so its peak resident memory is its own) on a freshly created schema:
the file is imported once (all lines new), then again (all unchanged). The floor, measured in the same run, is
reading and checking the same file without a database (csv + the domain's line parser and file checks): what an
import costs before it touches the database. Not a test; see bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import gc
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
        start, cpu = time.perf_counter(), time.process_time()
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = imports.read_header(next(reader))
            checks = imports.FileChecks()
            n = 0
            for line, cells in enumerate(reader, start=2):
                parsed = imports.parse_row(line, cells, header, currency="USD")
                checks.check(parsed)
                n += 1
        return {"runs": [{"lines": n, "seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}],
                "peak_mb": peak_mb()}

    from sqlalchemy.orm import configure_mappers

    from portal import create_app, db
    from portal.models import Base
    from portal.services.importer import import_csv

    instance = tempfile.mkdtemp(prefix="portal-import-bench-")
    app = create_app({"ENV": "production", "DATABASE_URL": url, "SECRET_KEY": "bench-" + "x" * 40,
                      "INSTANCE_PATH": instance, "BASE_URL": "http://localhost"})
    engine = app.extensions["db_engine"]
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    configure_mappers()  # once per process, whatever the file's size: not counted in the lines/s
    gc.freeze()  # as the `portal` command does once its app is built (portal/cli.py)
    runs = [_database_floor(engine, path)]
    for _ in range(2):  # new, then unchanged
        with app.app_context():
            start, cpu = time.perf_counter(), time.process_time()
            with open(path, encoding="utf-8-sig", newline="") as f:
                report = import_csv(db.session(), f, progress_every=10_000, on_progress=lambda n: None)
            seconds = time.perf_counter() - start
        runs.append({"lines": report.rows, "seconds": seconds, "cpu": time.process_time() - cpu,
                     "summary": report.summary()})
    engine.dispose()
    return {"runs": runs, "peak_mb": peak_mb()}


def profile(path: str, url: str, top: int = 25) -> None:
    """In-process: statements per 500-line chunk (an engine listener counts them by kind) and a cProfile of the
    new and the unchanged import, by cumulative time."""
    import cProfile
    import pstats
    from collections import Counter

    from sqlalchemy import event
    from sqlalchemy.orm import configure_mappers

    from portal import create_app, db
    from portal.models import Base
    from portal.services.importer import CHUNK, import_csv

    instance = tempfile.mkdtemp(prefix="portal-import-bench-")
    app = create_app({"ENV": "production", "DATABASE_URL": url, "SECRET_KEY": "bench-" + "x" * 40,
                      "INSTANCE_PATH": instance, "BASE_URL": "http://localhost"})
    engine = app.extensions["db_engine"]
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    configure_mappers()
    gc.freeze()
    for label in ("new", "unchanged"):
        kinds: Counter[str] = Counter()
        executes = [0]

        def count(conn, cursor, statement, parameters, context, executemany, kinds=kinds, executes=executes):
            words = statement.split()
            table = next((w for w in words[1:6] if w.isidentifier() and w.upper() not in
                          ("INTO", "FROM", "DISTINCT")), "")
            kinds[f"{words[0]} {table}".strip()] += 1
            executes[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        with app.app_context():
            prof = cProfile.Profile()
            start = time.perf_counter()
            with open(path, encoding="utf-8-sig", newline="") as f:
                prof.enable()
                report = import_csv(db.session(), f)
                prof.disable()
            seconds = time.perf_counter() - start
        event.remove(engine, "before_cursor_execute", count)
        chunks = max(1, -(-report.rows // CHUNK))
        print(f"--- {label}: {report.rows:,} lines in {seconds:.2f} s ({report.rows / seconds:,.0f} lines/s), "
              f"{report.summary()}; {executes[0]:,} statements = {executes[0] / chunks:.1f} per {CHUNK}-line chunk")
        for kind, n in kinds.most_common():
            print(f"    {n / chunks:8.1f} per chunk  {kind}")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
        pstats.Stats(prof).sort_stats("tottime").print_stats(top)
    engine.dispose()


def _database_floor(engine, path: str) -> dict:
    """The same number of lines as bare Core statements on the same database, per 500 lines: one executemany
    INSERT of (number, total) into a scratch table and a commit, then (the unchanged floor) one SELECT of those
    500 numbers. What the database itself costs a chunk, with no parsing, checks or ORM."""
    from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select

    meta = MetaData()
    scratch = Table("bench_import_floor", meta, Column("id", Integer, primary_key=True),
                    Column("number", String(50), unique=True), Column("total", BigInteger))
    meta.drop_all(engine)
    meta.create_all(engine)

    def chunks():  # streamed like the import, so this floor does not raise the process's peak memory
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            while chunk := [cells[2] for _, cells in zip(range(500), reader, strict=False)]:
                yield chunk

    lines = 0
    start, cpu = time.perf_counter(), time.process_time()
    with engine.connect() as conn:
        for numbers in chunks():
            conn.execute(insert(scratch), [{"number": n, "total": 100} for n in numbers])
            conn.commit()
            lines += len(numbers)
    inserted = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    with engine.connect() as conn:
        for numbers in chunks():
            conn.execute(select(scratch.c.id, scratch.c.total).where(scratch.c.number.in_(numbers))).all()
    meta.drop_all(engine)
    return {"lines": lines, "seconds": inserted[0], "cpu": inserted[1],
            "select_seconds": time.perf_counter() - start, "select_cpu": time.process_time() - cpu}


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
    parser.add_argument("--profile", action="store_true",
                        help="in-process: statements per chunk and a cProfile, SQLite (or --database-url)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="portal-import-bench-"))
    path = work / "export.csv"
    write_file(path, args.lines, args.clients)
    if args.profile:
        if args.database_url.startswith("postgresql"):
            _create_database(args.database_url)
        profile(str(path), args.database_url or f"sqlite:///{work / 'bench.db'}")
        return
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
    # cpu: this process's own CPU seconds. On a loaded machine wall time includes waiting for a core; the CPU
    # time (PostgreSQL's own work is in its server processes, not here) shows what the import itself costs.
    print(f"{'what':<44}{'lines/s':>10}{'seconds':>9}{'cpu s':>7}{'peak MB':>9}")
    floor_rate = f["lines"] / f["seconds"]
    print(f"{'floor: read + check the file, no database':<44}{floor_rate:>10,.0f}{f['seconds']:>9.2f}"
          f"{f['cpu']:>7.2f}{floor['peak_mb']:>9.0f}")
    for name, url in targets:
        result = child("import", path, url)
        bare, runs = result["runs"][0], result["runs"][1:]
        for label, seconds, cpu in (("executemany INSERT", bare["seconds"], bare["cpu"]),
                                    ("SELECT by number", bare["select_seconds"], bare["select_cpu"])):
            what = f"{name} floor: bare {label} per 500"
            print(f"{what:<44}{bare['lines'] / seconds:>10,.0f}{seconds:>9.2f}{cpu:>7.2f}")
        for run, label, aim, db_floor in zip(runs, ("new", "unchanged"), (20_000, 50_000),
                                             (bare["seconds"], bare["select_seconds"]), strict=True):
            rate = run["lines"] / run["seconds"]
            what = f"{name}: {label} ({run['summary']})"
            print(f"{what:<44}{rate:>10,.0f}{run['seconds']:>9.2f}{run['cpu']:>7.2f}"
                  f"{result['peak_mb']:>9.0f}  aim >= {aim:,}: {'met' if rate >= aim else 'NOT met'}; "
                  f"{rate / floor_rate:.2f} of the file floor, {db_floor / run['seconds']:.2f} of the database's")
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
