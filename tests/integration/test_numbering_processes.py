"""Check-then-insert work with no row to lock, from several OS processes at once (run-due on several nodes, first
signers on a fresh install, a double-clicked button), on both databases: every new invoice gets its own number, the
default reminder schedule and the E-SIGN disclosure are saved once, and a client's collection row is added once."""

from __future__ import annotations

import multiprocessing
import time
from decimal import Decimal

from sqlalchemy import func, select, text

from portal.domain import dunning
from portal.models import Client, ClientCollection, DunningStep, Invoice, TermsVersion

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


def _pause_clients(config: dict, client_ids: list[int], start) -> str:
    """One process: pause each client's reminders (none was paused before: the first pause adds its row)."""
    from datetime import date

    from portal import create_app, db
    from portal.services.collections import calls

    app = create_app(config)
    try:
        with app.app_context():
            start.wait(timeout=60)
            for client_id in client_ids:
                calls.pause(db.session(), client_id, reason="double click", until=None, today=date(2026, 3, 16))
            return "ok"
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


def test_processes_pausing_a_never_paused_client_at_once_add_its_row_once(app, app_config, session, make):
    """A double-clicked "Pause" (or two staff at once) for a client never paused before: each request reads that
    the client has no collection row yet. On PostgreSQL this test holds the client's row locked, so every insert
    of the collection row (its foreign key) waits until all four processes have read and are waiting, then lets
    them go: without the per-client lock in ``calls`` three of them would insert the row again (a 500)."""
    client = make.client("Paused LLC")
    session.commit()
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    if on_postgresql:
        session.execute(select(Client.id).where(Client.id == client.id).with_for_update())
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            pending = pool.starmap_async(_pause_clients, [(app_config, [client.id], start)] * WORKERS)
            if on_postgresql:
                _wait_until_waiting(app, WORKERS)
                session.commit()  # lets them go
            outcomes = pending.get(timeout=120)
    assert outcomes == ["ok"] * WORKERS  # the later ones waited and updated the row, none hit its primary key
    assert session.scalar(select(func.count()).select_from(ClientCollection)) == 1


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
