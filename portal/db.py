"""Engine and session lifecycle: one SQLAlchemy session per request / CLI command, closed at teardown.

Services receive the session and own the transaction (they commit); views and commands never commit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from contextlib import suppress

from flask import Flask, current_app, g, has_request_context, request
from psycopg import Cursor, ServerCursor
from psycopg.pq import ExecStatus, TransactionStatus
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from portal.services.locking import IMMEDIATE

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def init_app(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    engine = make_engine(url)
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    # A request that changes things takes SQLite's write lock at the start of each transaction, so it never
    # fails half-way when another process wrote after its first read (no effect on PostgreSQL).
    app.extensions["db_write_sessionmaker"] = sessionmaker(bind=engine.execution_options(**IMMEDIATE),
                                                           expire_on_commit=False)
    # A GET on PostgreSQL sends no BEGIN/ROLLBACK around its reads (two of a list page's five round trips): its
    # connection is in autocommit, and _begin_before_writing opens a real transaction before anything that writes
    # or locks. Under READ COMMITTED each statement takes its own snapshot either way, so the reads see the same.
    # The bigger gain: psycopg forgets its prepared statements at every ROLLBACK, so a GET's statements were parsed
    # and planned afresh on every request; now they are prepared once per connection, as the other paths' are.
    reads = engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
    app.extensions["db_read_sessionmaker"] = sessionmaker(bind=reads, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def make_engine(url: str, **pool) -> Engine:
    """``pool``: the connection pool's size, overflow and timeout when they should differ from the defaults."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # No pre-ping: it is one more round trip on every request (issue 14). Connections are replaced after 30 minutes
    # instead, before a firewall or server idle timeout drops them; after a database restart the first statement
    # on a dead connection fails, and SQLAlchemy then discards every pooled connection (disconnect detection).
    # `run-due` runs up to pool_size - 1 charging threads (one connection each, and one for the run itself).
    engine = create_engine(url, **{"pool_recycle": 1800, "pool_size": 20, "max_overflow": 10, **pool})
    event.listen(engine, "before_cursor_execute", _begin_before_writing)
    event.listen(engine, "connect", _postgresql_connect)
    return engine


def _postgresql_connect(dbapi_conn, _record) -> None:
    dbapi_conn.cursor_factory = _Cursor


class _Cursor(Cursor):
    """psycopg's cursor, whose ``description`` is built only when looked into. psycopg builds a ``Column`` object
    for every column of the result each time it is asked, and SQLAlchemy asks after every SELECT, only to check it
    is not None when its compiled cache already knows the statement's columns (3.8% of the Python instructions of a
    client's admin overview, 1.7% of a client's invoice list: bench/README.md)."""

    @property
    def description(self):
        result = self.pgresult  # psycopg's rule for "returned rows" (a SELECT of no columns too)
        if result and (result.nfields or result.status in _ROWS):
            return _Description(self)
        return None


_ROWS = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class _Description(Sequence):
    """``Cursor.description`` of the result the cursor held when it was asked, built at the first look inside."""

    __slots__ = ("_cursor", "_result", "_columns")

    def __init__(self, cursor: _Cursor):
        self._cursor, self._result, self._columns = cursor, cursor.pgresult, None

    def __len__(self) -> int:
        return self._result.nfields

    def __getitem__(self, index):
        if self._columns is None:
            if self._cursor.pgresult is not self._result:
                raise RuntimeError("a cursor's description read after the cursor moved to another result")
            self._columns = Cursor.description.fget(self._cursor)
        return self._columns[index]


# What may run outside a transaction: a SELECT that neither locks rows nor takes an advisory lock nor moves a
# sequence. Anything else (INSERT, SAVEPOINT, WITH ..., SELECT ... FOR UPDATE, pg_advisory_xact_lock) begins one.
_PLAIN_READ = re.compile(r"\s*SELECT\b(?!.*\bFOR\s+(?:NO\s+KEY\s+|KEY\s+)?(?:UPDATE|SHARE)\b)"
                         r"(?!.*\b(?:pg_\w*advisory\w*|nextval|setval)\s*\()", re.IGNORECASE | re.DOTALL)


@functools.lru_cache(maxsize=1024)
def is_plain_read(statement: str) -> bool:
    """_PLAIN_READ, remembered per statement: the pattern reads the whole text (~30 us for a page's typical SELECT),
    and the same few hundred statements (SQLAlchemy's compiled cache hands out the same strings) run all day."""
    return _PLAIN_READ.match(statement) is not None


def _begin_before_writing(conn, cursor, statement, _parameters, _context, _executemany) -> None:
    """PostgreSQL, a connection in autocommit (a GET's): BEGIN before the first statement that writes or locks, or
    that reads through a server-side cursor (``yield_per``: its DECLARE lives in a transaction), so the work
    commits or rolls back as a whole (psycopg's commit and rollback end a transaction they did not begin)."""
    driver = conn.connection.driver_connection
    if driver.autocommit and driver.info.transaction_status == TransactionStatus.IDLE and (
            isinstance(cursor, ServerCursor) or not is_plain_read(statement)):
        driver.execute("BEGIN")


def _sqlite_connect(dbapi_conn, _record) -> None:
    # The driver's own transaction handling is off (it would BEGIN only at the first write, so SAVEPOINTs and
    # "read, then write" transactions would not be what SQLAlchemy thinks); _sqlite_begin emits the BEGIN.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cur.execute("PRAGMA busy_timeout=30000")  # a writer waits for the write lock instead of failing at once
    cur.close()


def _sqlite_begin(conn) -> None:
    # "BEGIN IMMEDIATE" for transactions that check then write (portal.services.locking.begin_write)
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def engine() -> Engine:
    return current_app.extensions["db_engine"]


def session() -> Session:
    """The session of the current request or command."""
    if "db_session" not in g:
        if not has_request_context():
            kind = "db_sessionmaker"  # a command
        else:
            kind = "db_read_sessionmaker" if request.method in SAFE_METHODS else "db_write_sessionmaker"
        g.db_session = current_app.extensions[kind]()
    return g.db_session


def write_session() -> Session:
    """The command's session, every transaction of which takes SQLite's write lock before it reads: for commands
    such as `run-due`, several of which may run at once, whose transactions read and then write (a deferred one
    would be refused when another process wrote in between). No effect on PostgreSQL."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_write_sessionmaker"]()
    return g.db_session


def discard_session() -> None:
    """Throw away the request's session after a failed statement (on PostgreSQL the whole transaction is aborted),
    so what runs next, such as the error page reading the MSP's settings, gets a fresh one."""
    broken = g.pop("db_session", None)
    if broken is not None:
        with suppress(SQLAlchemyError):  # a dead connection cannot roll back; the pool discards it anyway
            broken.close()


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()
