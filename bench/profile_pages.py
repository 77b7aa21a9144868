"""In-process profile of a client contact's /invoices and the staff dashboard /admin/, or ``--pages`` (not a test).

    python bench/profile_pages.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench_profile \
        --invoices 100000 --clients 1000

Loads the data the way bench/run.py does (its loader; the database is rebuilt when the scale differs), signs in
contact 1 and a staff user, then for each page: SQL statements per request (counted on the engine, so pool
pre-pings and BEGIN/ROLLBACK issued by the driver are not in it: they are listed separately), the median
wall time, and where Python time goes (cProfile, cumulative time grouped by the top package of each frame's file).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--pages", nargs="+", default=["/invoices", "/admin/"],
                        help="paths to profile; /admin/... as staff, the rest as contact 1")
    args = parser.parse_args()

    import run as bench_run
    from flask import session as flask_session
    from flask_login import login_user
    from sqlalchemy import event, select

    from portal import create_app, db
    from portal.models import Contact, StaffUser
    from portal.services.staff import create_staff
    from portal.web.auth.identity import Identity

    if bench_run.loaded_scale(args.database_url) != (args.invoices, args.clients):
        bench_run.load(args.database_url, args.invoices, args.clients)
    app = create_app({"ENV": "production", "DATABASE_URL": args.database_url, "SECRET_KEY": "p" * 48,
                      "INSTANCE_PATH": tempfile.mkdtemp(), "BASE_URL": "http://localhost"})
    statements: list[str] = []
    event.listen(app.extensions["db_engine"], "before_cursor_execute",
                 lambda conn, cur, sql, *a: statements.append(" ".join(sql.split())))
    with app.app_context():
        s = db.session()
        staff = s.scalar(select(StaffUser).limit(1)) or create_staff(
            s, email="bench@msp.test", name="Bench", password="bench-password-123")
    cookies = {}
    for who, model, key in (("contact", Contact, 1), ("staff", StaffUser, None)):
        with app.test_request_context("/login", environ_base={"REMOTE_ADDR": "127.0.0.1"}):
            record = db.session().get(model, key or staff.id)
            login_user(Identity(record))
            cookies[who] = app.session_interface.get_signing_serializer(app).dumps(dict(flask_session))
    client = app.test_client()
    for path in args.pages:
        who = "staff" if path.startswith("/admin") else "contact"
        client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookies[who])
        assert client.get(path).status_code == 200, path
        statements.clear()
        client.get(path)
        per_request = Counter(sql.split()[0].upper() for sql in statements)
        shown = [sql[:110] for sql in statements]
        times = []
        for _ in range(args.requests):
            start = time.perf_counter()
            client.get(path)
            times.append(time.perf_counter() - start)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.requests):
            client.get(path)
        profile.disable()
        print(f"\n{path} as {who}: median {statistics.median(times) * 1000:.1f} ms over {args.requests}; "
              f"{sum(per_request.values())} statements per request {dict(per_request)}")
        for sql in shown:
            print(f"    {sql}")
        by_package: Counter[str] = Counter()
        for (file, _line, _name), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(profile).stats.items():
            by_package[_package(file)] += tottime
        total = sum(by_package.values())
        for package, seconds in by_package.most_common(12):
            print(f"  {package:<28}{seconds / args.requests * 1000:>7.2f} ms  {seconds / total:>5.0%}")


def _package(file: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/")[1].split("/")[0]
    if "/portal/" in file:
        parts = file.split("/portal/")[1].split("/")
        return "portal." + (parts[0] if len(parts) > 1 else parts[0].removesuffix(".py"))
    if file.startswith("<"):
        return "builtins (C calls, incl. socket I/O)"
    return "stdlib"


if __name__ == "__main__":
    main()
