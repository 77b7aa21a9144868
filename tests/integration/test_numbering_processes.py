"""Check-then-insert work with no row to lock, from several OS processes at once (run-due on several nodes, first
signers on a fresh install, a double-clicked button), on both databases: every new invoice gets its own number, the
default reminder schedule and the E-SIGN disclosure are saved once, and a first write whose row may not exist yet
(a client's first pause or credit limit, a promise replacing the open one, the collection settings, a reminder
step) leaves one row."""

from __future__ import annotations

import multiprocessing
import time
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from portal.domain import dunning
from portal.models import DunningStep, Invoice, TermsVersion
from portal.services.collections import schedule

WORKERS = 4
INVOICES_EACH = 15


def _raise_invoices(config: dict, client_id: int, start) -> str:
    """One process: raise invoices (late fees, plan interest do the same) in their own transactions."""
    from portal import create_app, db
    from portal.domain.invoices import LineInput
    from portal.models import Client
    from portal.services import billing
    from portal.services.locking import begin_write

    app = create_app(config)
    try:
        with app.app_context():
            session = db.session()
            client = session.get(Client, client_id)
            session.commit()
            start.wait(timeout=60)
            for n in range(INVOICES_EACH):
                begin_write(session)
                billing.create_invoice(session, client, issue=True,
                                       lines=[LineInput(f"Fee {n}", Decimal(1), 1000, taxable=False)])
            return "ok"
    except Exception as e:  # reported to the parent, which asserts on it
        return f"{type(e).__name__}: {e}"
    finally:
        app.extensions["db_engine"].dispose()


def _save_schedule(config: dict, start) -> str:
    from portal import create_app, db
    from portal.services.collections import schedule

    app = create_app(config)
    try:
        with app.app_context():
            start.wait(timeout=60)
            schedule.ensure_saved(db.session())
            return "ok"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        app.extensions["db_engine"].dispose()


def _publish_disclosure(config: dict, start) -> str:
    from portal import create_app, db
    from portal.services import terms

    app = create_app(config)
    try:
        with app.app_context():
            session = db.session()
            # a signing page has read before it needs the disclosure: each process holds a read snapshot from
            # before any of them wrote (SQLite refuses a write from it once another process has committed)
            assert terms.current_version(session, terms.T.DISCLOSURE) is None
            start.wait(timeout=60)
            return f"v{terms.ensure_disclosure(session).number}"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        app.extensions["db_engine"].dispose()


def _first_write(config: dict, kind: str, client_id: int, start) -> str:
    """One process: a write whose row may not exist yet (the first pause of a client, its first credit limit, a
    promise replacing the open one, the first save of the collection settings, a new reminder step)."""
    from datetime import date
    from decimal import Decimal

    from portal import create_app, db
    from portal.domain.dunning import StepSpec
    from portal.domain.errors import DomainError
    from portal.services.collections import calls, promises, schedule
    from portal.services.collections.settings import update_collection_settings
    from portal.services.enforcement import credit

    today = date(2026, 3, 16)
    app = create_app(config)
    try:
        with app.app_context():
            session = db.session()
            start.wait(timeout=60)
            if kind == "pause":
                calls.pause(session, client_id, reason="double click", until=None, today=today)
            elif kind == "credit limit":
                credit.set_limit(session, client_id, 500_000, staff=None)
            elif kind == "promise":
                promises.record(session, client_id=client_id, invoice_id=None, amount_cents=1_000,
                                promised_on=date(2026, 3, 20), today=today)
            elif kind == "settings":
                update_collection_settings(session, borrowing_rate_percent=Decimal("9"), call_after_days=4,
                                           duplicate_window_days=5)
            else:
                schedule.save_step(session, StepSpec(45, "Day 45", "Invoice {invoice_number}", "Pay {pay_link}"))
            return "ok"
    except DomainError as e:
        return f"refused: {e}"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        app.extensions["db_engine"].dispose()


def _race(target, args: list[tuple]) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(len(args))
        with ctx.Pool(len(args)) as pool:
            return pool.starmap(target, [(*a[:-1], start) if a[-1] is None else a for a in args])


def test_processes_raising_invoices_at_once_never_reuse_a_number(app, app_config, session, make):
    clients = [make.client(f"Numbering {i} LLC") for i in range(WORKERS)]
    session.commit()
    outcomes = _race(_raise_invoices, [(app_config, c.id, None) for c in clients])
    assert outcomes == ["ok"] * WORKERS
    numbers = session.scalars(select(Invoice.number)).all()
    assert len(numbers) == WORKERS * INVOICES_EACH
    assert sorted(numbers) == [f"INV-{n:06d}" for n in range(1, WORKERS * INVOICES_EACH + 1)]


def test_processes_finding_no_reminder_schedule_save_the_defaults_once(app, app_config, session):
    assert session.scalar(select(func.count()).select_from(DunningStep)) == 0
    outcomes = _race(_save_schedule, [(app_config, None)] * WORKERS)
    assert outcomes == ["ok"] * WORKERS
    session.rollback()  # the count above began a read snapshot
    saved = session.scalars(select(DunningStep.offset_days).order_by(DunningStep.offset_days)).all()
    assert saved == sorted(spec.offset_days for spec in dunning.DEFAULT_SCHEDULE)


def test_first_signers_at_once_publish_the_disclosure_once(app, app_config, session):
    outcomes = _race(_publish_disclosure, [(app_config, None)] * WORKERS)
    assert outcomes == ["v1"] * WORKERS  # each got the one version 1, none an error
    assert session.scalar(select(func.count()).select_from(TermsVersion)) == 1


FIRST_WRITES = {  # kind: (the table it writes, what is left once all four are done)
    "pause": ("client_collections", "SELECT count(*) FROM client_collections"),
    "credit limit": ("credit_limits", "SELECT count(*) FROM credit_limits"),
    "promise": ("payment_promises", "SELECT count(*) FROM payment_promises WHERE status = 'open'"),
    "settings": ("collection_settings", "SELECT count(*) FROM collection_settings"),
    "step": ("dunning_steps", "SELECT count(*) FROM dunning_steps WHERE offset_days = 45"),
}


@pytest.mark.parametrize("kind", FIRST_WRITES)
def test_four_processes_making_the_same_first_write_at_once_leave_one_row(app, app_config, session, make, kind):
    """A double-clicked button, or two staff at once, where each request first reads that there is no row yet. On
    PostgreSQL the test holds the table in SHARE mode, so every insert waits until all four processes have read
    and are waiting, then lets them go: without the lock each service takes, more than one would insert (a key
    violation, a 500; or two open promises for one balance). SQLite serialises writers by itself."""
    table, left = FIRST_WRITES[kind]
    client = make.client("Harbor Dental LLC")
    make.invoice(client, 50_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))  # past due: a promise
    schedule.ensure_saved(session)
    session.commit()
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    if on_postgresql:
        session.execute(text(f"LOCK TABLE {table} IN SHARE MODE"))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            pending = pool.starmap_async(_first_write, [(app_config, kind, client.id, start)] * WORKERS)
            if on_postgresql:
                _wait_until_waiting(app, WORKERS)
                session.commit()  # lets them go
            outcomes = pending.get(timeout=120)
    if kind == "step":  # the first adds day 45; the others are told the day is taken
        assert sorted(outcomes)[0] == "ok" and all(o.startswith("refused:") for o in sorted(outcomes)[1:]), outcomes
    else:
        assert outcomes == ["ok"] * WORKERS
    session.rollback()
    assert session.scalar(text(left)) == 1


def _wait_until_waiting(app, backends: int) -> None:
    """Until ``backends`` other database sessions are waiting for a lock (PostgreSQL)."""
    deadline = time.monotonic() + 120
    with app.extensions["db_engine"].connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.scalar(text("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"))
            probe.rollback()
            if waiting >= backends:
                return
            time.sleep(0.05)
    raise AssertionError(f"{backends} processes never waited together")
