"""Benchmark: planning `run-due`'s reminders over a large MSP's backlog, against reading the candidates alone.

    python bench/reminders.py                                    # PostgreSQL (.ci/start-postgres), 1,000,000 invoices
    python bench/reminders.py --invoices 100000 --clients 1000   # a quick run
    python bench/reminders.py --database-url postgresql+psycopg://postgres@127.0.0.1:54329/portal_bench

Loads the data of bench/run.py when the database does not hold that scale (the default reminder schedule is saved
if there is none, as run-due does), then, in one process, times each of these several times and keeps the best:

- the floor: the candidates (open invoices whose earliest reminder day has come and whose schedule's last step has
  not gone) read with hand-written SQL into tuples, what no planning can go below;
- ``reminders.plan``: everything the step decides before it sends (the candidates and, for them, what was paid,
  current plans, autopay, duplicate holds, contacts, pauses, promises and the steps already sent). Nothing is sent.

Prints both, the ratio, and how many invoices the plan has due a reminder. See bench/README.md. This is not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import make_url, text  # noqa: E402

CANDIDATES = text("""
  SELECT i.id, i.client_id, i.issue_date, i.due_date, i.total_cents FROM invoices i
  WHERE i.status = 'open' AND i.due_date <= :earliest_day
    AND NOT EXISTS (SELECT 1 FROM reminder_sends r
                    WHERE r.invoice_id = i.id AND r.step_id = :last_step AND r.sent_at IS NOT NULL)
  ORDER BY i.id""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="SQLAlchemy URL of a PostgreSQL database to fill (it is rebuilt)")
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the best is kept)")
    args = parser.parse_args()

    from run import database_url, load, loaded_scale

    url = database_url(args.database_url)
    if loaded_scale(url) != (args.invoices, args.clients):
        print(f"loading {args.invoices:,} invoices over {args.clients:,} clients", flush=True)
        load(url, args.invoices, args.clients)
    measure(url, args.repeat)


def measure(url: str, repeat: int) -> None:
    from aging import best

    from portal import create_app, db
    from portal.clock import today
    from portal.domain import dunning
    from portal.services.collections import reminders, schedule
    from portal.web.runtime import runtime

    app = create_app({"ENV": "test", "DATABASE_URL": url, "INSTANCE_PATH": tempfile.mkdtemp(),
                      "SECRET_KEY": "b" * 48, "BASE_URL": "http://localhost"})
    with app.app_context():
        session, rt, on = db.session(), runtime(), today()
        schedule.ensure_saved(session)
        steps = [s for s in schedule.steps(session) if s.active]
        values = {"earliest_day": dunning.step_day(on, -min(s.offset_days for s in steps)),
                  "last_step": max(steps, key=lambda s: s.offset_days).id}

        def floor():
            rows = session.connection().execute(CANDIDATES, values).all()
            session.rollback()
            return len(rows)

        def plan():
            due, skipped = reminders.plan(session, rt, on)
            session.rollback()
            return len(due), skipped

        floor_s, candidates = best(floor, repeat)
        plan_s, (due, skipped) = best(plan, repeat)

    print(f"\ndatabase: {make_url(url).get_backend_name()}, best of {repeat}; {candidates:,} candidates, "
          f"{due:,} due a reminder, skipped: {skipped or 'none'}")
    print(f"{'floor: the candidates, hand-written':40} {floor_s * 1000:9.1f} ms")
    print(f"{'reminders.plan':40} {plan_s * 1000:9.1f} ms   {plan_s / floor_s:5.1f}x the floor")


if __name__ == "__main__":
    main()
