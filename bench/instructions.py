"""Python instructions per page view or per import line, counted by valgrind (not a test, not a timing).

    python bench/instructions.py page /invoices                 # contact 1's invoice list
    python bench/instructions.py page /admin/clients/1 --root /tmp/old-checkout   # against another checkout
    python bench/instructions.py import                         # an unchanged import of 10,000 lines (SQLite)

On a shared machine a 5% change in a page's time is lost in the noise of consecutive runs (bench/README.md). The
number of instructions the Python process executes repeats from run to run (hash seed fixed) to within 0.02-0.5%,
so a change to what the portal does per request shows up whatever else the machine is doing. It counts this process
only: PostgreSQL's own work and the time spent waiting for it are not in it (bench/run.py measures those).

Method: the same loop runs under `valgrind --tool=cachegrind` with N and with 2N repetitions, side by side, and the
difference divided by N is one repetition's count (start-up, imports and the first, warming repetition cancel out).
Pages run in-process through Flask's test client against bench/run.py's million-invoice PostgreSQL database (load
it with bench/run.py first); the import against a SQLite database holding the file already. Needs valgrind
(`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench"


def child(root: str, what: str, target: str, repeat: int, url: str) -> None:
    """Under valgrind: ``repeat`` page views (or imports) from the checkout at ``root``."""
    sys.path.insert(0, root)
    from portal import create_app, db

    app = create_app({"ENV": "production", "DATABASE_URL": url, "SECRET_KEY": "i" * 48,
                      "INSTANCE_PATH": tempfile.mkdtemp(), "BASE_URL": "http://localhost"})
    if what == "import":
        from portal.services.importer import import_csv

        gc.freeze()  # as the `portal` command does
        with app.app_context():
            for _ in range(repeat):
                with open(target, encoding="utf-8-sig", newline="") as f:
                    import_csv(db.session(), f)
        return
    from flask import session as flask_session
    from flask_login import login_user
    from sqlalchemy import select

    from portal.models import Contact, StaffUser
    from portal.web.auth.identity import Identity

    staff = target.startswith("/admin")
    with app.test_request_context("/login", environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        session = db.session()
        record = session.scalar(select(StaffUser).limit(1)) if staff else session.get(Contact, 1)
        login_user(Identity(record))
        cookie = app.session_interface.get_signing_serializer(app).dumps(dict(flask_session))
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    assert client.get(target).status_code == 200, target  # the warming view, in both counts
    for _ in range(repeat):
        client.get(target)


def count(root: str, what: str, target: str, repeat: int, url: str) -> int:
    """Instructions of one repetition: the run with 2N minus the run with N, over N."""
    def run(n: int) -> int:
        out = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             sys.executable, __file__, "--child", root, what, target, str(n), url],
            env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=True)
        return int(re.search(r"I\s+refs:\s+([\d,]+)", out.stderr).group(1).replace(",", ""))

    with ThreadPoolExecutor(2) as pool:
        once, twice = pool.map(run, (repeat, 2 * repeat))
    return (twice - once) // repeat


def prepared_import(lines: int, clients: int) -> tuple[str, str]:
    """A file and a SQLite database that already holds it (so each counted import is the unchanged one)."""
    sys.path.insert(0, str(HERE.parent))
    from import_bench import write_file

    from portal import create_app, db
    from portal.models import Base
    from portal.services.importer import import_csv

    work = Path(tempfile.mkdtemp(prefix="portal-instructions-"))
    path, url = work / "export.csv", f"sqlite:///{work / 'import.db'}"
    write_file(path, lines, clients)
    app = create_app({"ENV": "production", "DATABASE_URL": url, "SECRET_KEY": "i" * 48,
                      "INSTANCE_PATH": str(work), "BASE_URL": "http://localhost"})
    Base.metadata.create_all(app.extensions["db_engine"])
    with app.app_context(), open(path, encoding="utf-8", newline="") as f:
        import_csv(db.session(), f)
    return str(path), url


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        root, what, target, repeat, url = sys.argv[2:7]
        child(root, what, target, int(repeat), url)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("page", "import"))
    parser.add_argument("path", nargs="?", default="/invoices", help="page: the path (/admin/... as staff)")
    parser.add_argument("--database-url", default=DEFAULT_PG, help="page: bench/run.py's loaded database")
    parser.add_argument("--repeat", type=int, default=20, help="page views (N) per count")
    parser.add_argument("--lines", type=int, default=10_000, help="import: lines of the file")
    parser.add_argument("--root", action="append", default=[], help="another checkout to count too (repeatable)")
    args = parser.parse_args()
    roots = [str(HERE.parent), *args.root]
    if args.what == "import":
        target, url = prepared_import(args.lines, max(1, args.lines // 10))
        repeat, unit = 1, f"line of an unchanged {args.lines:,}-line import"
    else:
        target, url, repeat, unit = args.path, args.database_url, args.repeat, f"view of {args.path}"
    for root in roots:
        n = count(root, args.what, target, repeat, url)
        per = n // args.lines if args.what == "import" else n
        print(f"{root}: {per:,} Python instructions per {unit}")


if __name__ == "__main__":
    main()
