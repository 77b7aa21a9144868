"""begin_write serialises "check, then write" across OS processes, and savepoints nest, on both databases."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from portal.db import make_engine
from portal.services.locking import begin_write

WORKERS = 4


def _increment(url: str, start, use_lock: bool) -> str:
    """One process: read the counter, think, write counter + 1 (a lost update unless the check is serialised)."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            start.wait(timeout=30)
            if use_lock:
                begin_write(session)
            value = session.execute(text("SELECT n FROM lock_probe WHERE id = 1 FOR UPDATE"
                                         if engine.dialect.name == "postgresql"
                                         else "SELECT n FROM lock_probe WHERE id = 1")).scalar_one()
            time.sleep(0.05)  # the window in which a second process could read the same value
            session.execute(text("UPDATE lock_probe SET n = :n WHERE id = 1"), {"n": value + 1})
            session.commit()
        return "ok"
    except Exception as e:  # reported to the parent, which asserts on it
        return f"{type(e).__name__}: {e}"
    finally:
        engine.dispose()


def _probe_table(url: str):
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS lock_probe"))
        conn.execute(text("CREATE TABLE lock_probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO lock_probe (id, n) VALUES (1, 0)"))
    return engine


@pytest.fixture
def probe(database_url):
    engine = _probe_table(database_url)
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE lock_probe"))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    """SQLite-specific behaviour is checked on its own file in both test runs (SQLite and PostgreSQL)."""
    url = f"sqlite:///{tmp_path / 'locking.db'}"
    _probe_table(url).dispose()
    return url


def _race(url: str, use_lock: bool) -> list[str]:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared but the database
    with ctx.Manager() as manager:
        start = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            return pool.starmap(_increment, [(url, start, use_lock)] * WORKERS)


def test_processes_that_begin_write_never_lose_an_update(database_url, probe):
    outcomes = _race(database_url, use_lock=True)
    assert outcomes == ["ok"] * WORKERS
    with probe.connect() as conn:
        assert conn.execute(text("SELECT n FROM lock_probe")).scalar_one() == WORKERS


def test_without_the_write_lock_sqlite_refuses_the_stale_write(sqlite_url):
    """The failure begin_write exists for: on SQLite a deferred transaction that read, then writes after another
    process committed, is refused (and nothing is lost silently)."""
    outcomes = _race(sqlite_url, use_lock=False)
    assert any("database is locked" in o for o in outcomes), outcomes
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM lock_probe")).scalar_one() == outcomes.count("ok")
    engine.dispose()


def test_sqlite_processes_that_begin_write_never_lose_an_update(sqlite_url):
    assert _race(sqlite_url, use_lock=True) == ["ok"] * WORKERS
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM lock_probe")).scalar_one() == WORKERS
    engine.dispose()


def test_a_savepoint_before_the_first_write_nests_inside_the_transaction(probe):
    """With the driver's own transaction handling, SQLite turned such a SAVEPOINT into the outermost transaction and
    releasing it committed; now the outer rollback undoes it."""
    with Session(probe) as session:
        session.execute(text("SELECT n FROM lock_probe")).all()  # a read first: the transaction has begun
        with session.begin_nested():
            session.execute(text("UPDATE lock_probe SET n = 41"))
        with session.begin_nested() as inner:
            session.execute(text("UPDATE lock_probe SET n = 42"))
            inner.rollback()
        assert session.execute(text("SELECT n FROM lock_probe")).scalar_one() == 41
        session.rollback()
    with probe.connect() as conn:
        assert conn.execute(text("SELECT n FROM lock_probe")).scalar_one() == 0


def test_begin_write_refuses_unsaved_changes(probe):
    with Session(probe) as session:
        session.execute(text("SELECT 1"))
        begin_write(session)  # only reads so far: fine
        assert session.in_transaction()

    from portal.models import MspSettings

    with Session(probe) as session:
        session.add(MspSettings(id=99, name="x"))
        with pytest.raises(RuntimeError, match="unsaved changes"):
            begin_write(session)
