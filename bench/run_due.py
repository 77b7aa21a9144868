"""Benchmark: `portal run-due` charging 10,000 due autopay invoices against the fake Stripe server.

    python bench/run_due.py                                  # 10,000 invoices, 100 ms per gateway call, 100/s limit
    python bench/run_due.py --invoices 1000 --clients 200    # a quick run
    python bench/run_due.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench_due

Steps: a database (a temporary SQLite file unless a URL is given; the schema is rebuilt, do not point it at data you
keep); the fake Stripe server (tests/fake_stripe) on loopback; clients, each with a gateway customer and a card saved
through a SetupIntent with the real ``stripe`` SDK, autopay on with no pre-charge notice, and invoices already due;
then the fake's latency is raised to ``--latency-ms`` and one `run-due` runs in this process exactly as the CLI
runs it (worker threads with their own sessions, the token bucket at ``--rate``). Prints the charging step's charges
per second and the ratio to the limit (aim: at least 0.8), and checks that the fake created exactly one PaymentIntent
per invoice. See bench/README.md. This is not a test.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from portal import create_app, db  # noqa: E402
from portal.domain.invoices import LineInput  # noqa: E402
from portal.models import Base, ChargeAttempt, Invoice  # noqa: E402
from portal.services import billing, clients  # noqa: E402
from portal.services.due import run_due  # noqa: E402
from portal.services.payments.autopay_charging import DATABASE_TURNS  # noqa: E402
from tests.fake_stripe import FakeStripe  # noqa: E402
from tests.run_due_fixtures import CARD, enroll_rows, saved_on_gateway  # noqa: E402


def build(session, rt, fake: FakeStripe, n_invoices: int, n_clients: int) -> list[int]:
    per_client, extra = divmod(n_invoices, n_clients)
    ids: list[int] = []
    for n in range(n_clients):
        client = clients.create_client(session, legal_name=f"Clinic {n:05d} LLC")
        for k in range(per_client + (1 if n < extra else 0)):
            line = LineInput("Managed IT services", Decimal(1), 10_000 + 7 * k, taxable=False)
            ids.append(billing.create_invoice(session, client, lines=[line], issue_date=date(2026, 1, 1),
                                              due_date=date(2026, 2, 1), issue=True).id)
        customer, card = saved_on_gateway(rt, client, fake.confirmation_token("pm_card_visa"))
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
        if (n + 1) % 100 == 0:
            print(f"  {n + 1}/{n_clients} clients, {len(ids)} invoices", flush=True)
    return ids


def _in_process(app, session, rt, rate: float):
    """One run-due here, as the CLI runs it; the seconds are those of its charging step."""
    marks: dict[str, float] = {}

    @contextmanager
    def worker_session():
        with app.app_context():
            yield db.session()

    def on_step(name: str) -> None:
        marks[name] = time.monotonic()

    report = run_due(session, replace(rt, config={**rt.config, "GATEWAY_RATE_LIMIT": rate}),
                     open_session=worker_session, on_step=on_step)
    ended = time.monotonic()
    names = list(marks)
    later = names.index("autopay charges") + 1
    return report, (marks[names[later]] if later < len(names) else ended) - marks["autopay charges"]


@dataclass
class _Summed:
    charged: int = 0
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each process's count is in its summary line

    def summary(self) -> str:
        return "\n".join(self.lines)


def _in_processes(args, url: str, workdir: Path, fake: FakeStripe):
    """N `portal run-due` processes started together, each allowed rate/N; the seconds are from their start to the
    last one's end (all steps, so slightly pessimistic)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.update({"PORTAL_ENV": "test", "PORTAL_DATABASE_URL": url, "PORTAL_INSTANCE_PATH": str(workdir / "instance"),
                "PORTAL_SECRET_KEY": "bench-secret", "PORTAL_BASE_URL": "http://localhost",
                "PORTAL_STRIPE_SECRET_KEY": fake.secret_key, "PORTAL_STRIPE_PUBLISHABLE_KEY": fake.publishable_key,
                "PORTAL_STRIPE_WEBHOOK_SECRET": fake.webhook_secret, "PORTAL_STRIPE_API_BASE": fake.url,
                "PORTAL_GATEWAY_RATE_LIMIT": str(args.rate / args.processes),
                "PORTAL_RUN_DUE_DATABASE_THREADS": str(args.database_threads)})
    portal = Path(sys.executable).parent / "portal"
    started = time.monotonic()
    procs = [subprocess.Popen([str(portal), "run-due"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, text=True) for _ in range(args.processes)]
    outs = [p.communicate()[0] for p in procs]
    seconds = time.monotonic() - started
    summed = _Summed()
    for out in outs:
        line = out.strip().splitlines()[-1] if out.strip() else "run-due: (no output)"
        summed.lines.append(line)
        if " charged (" in line:
            summed.charged += int(line.split(": ", 1)[1].split(" charged")[0])
    return summed, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="SQLAlchemy URL of a database to rebuild (default: temporary SQLite)")
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added to every fake Stripe answer")
    parser.add_argument("--rate", type=float, default=100.0, help="the gateway rate limit (requests/second), in all")
    parser.add_argument("--processes", type=int, default=1,
                        help="run this many `portal run-due` processes at once, each with rate/N (as N nodes would)")
    parser.add_argument("--database-threads", type=int, default=DATABASE_TURNS,
                        help="RUN_DUE_DATABASE_THREADS: charging threads working on the database at once, per process")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # clients without contacts: the "no one to email" notes are expected

    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-due-"))
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    with FakeStripe() as fake:
        app = create_app({
            "ENV": "test", "DATABASE_URL": url, "INSTANCE_PATH": str(workdir / "instance"),
            "SECRET_KEY": "bench-secret", "BASE_URL": "http://localhost", "SMTP_URL": None,
            "STRIPE_SECRET_KEY": fake.secret_key, "STRIPE_PUBLISHABLE_KEY": fake.publishable_key,
            "STRIPE_WEBHOOK_SECRET": fake.webhook_secret, "STRIPE_API_BASE": fake.url,
            "GATEWAY_RATE_LIMIT": args.rate, "RUN_DUE_DATABASE_THREADS": args.database_threads,
            "RATELIMIT_ENABLED": False,
        })
        gc.freeze()  # as the `portal` command does once its app is built (portal/cli.py)
        engine = app.extensions["db_engine"]
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with app.app_context():
            session = db.session()
            rt = app.extensions["runtime"]
            print(f"loading {args.invoices} invoices over {args.clients} clients ({engine.dialect.name})...")
            started = time.monotonic()
            invoice_ids = build(session, rt, fake, args.invoices, args.clients)
            print(f"  loaded in {time.monotonic() - started:.0f} s")

            fake.latency_seconds = args.latency_ms / 1000
            before = fake.payment_intent_count
            session.commit()
            if args.processes > 1:
                report, seconds = _in_processes(args, url, workdir, fake)
            else:
                report, seconds = _in_process(app, session, rt, args.rate)

            per_invoice = fake.charges_by("invoice_id")
            twice = sum(1 for n in per_invoice.values() if n > 1)
            session.rollback()
            paid = session.scalar(select(func.count()).select_from(Invoice)
                                  .where(Invoice.id.in_(invoice_ids), Invoice.status == "paid"))
            unfinished = session.scalar(select(func.count()).select_from(ChargeAttempt)
                                        .where(ChargeAttempt.status != "succeeded"))
    made = fake.payment_intent_count - before
    cps = report.charged / seconds if seconds else 0.0
    print(report.summary())
    for problem in report.problems[:5]:  # in one process: its first few, in full
        print(f"  problem: {problem}")
    print(f"gateway: {args.latency_ms:.0f} ms per call, limit {args.rate:.0f} requests/s, {engine.dialect.name}, "
          f"{args.database_threads} database thread(s) a process")
    print(f"{args.processes} process(es); charging: {report.charged} charges in {seconds:.1f} s = {cps:.1f} charges/s; "
          f"ratio to the limit {cps / args.rate:.2f} (aim: at least 0.80)")
    print(f"PaymentIntents created: {made} for {len(invoice_ids)} invoices; invoices charged more than once: "
          f"{twice}; paid: {paid}; attempts not succeeded: {unfinished}")
    ok = twice == 0 and made == len(invoice_ids) == paid and unfinished == 0
    print("OK: every invoice charged exactly once" if ok else "PROBLEM: see the counts above")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
