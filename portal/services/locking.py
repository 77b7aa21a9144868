"""Transactions that check what is owed (or what was signed) and then write: the write lock comes first.

Two requests that both read "$120 still owed" and then both charge are the classic double charge. The cure is
to serialise the check-then-write, and each database needs its own way:

- PostgreSQL: the reads take row locks (``SELECT ... FOR UPDATE``), so ``begin_write`` has nothing to do.
- SQLite has no row locks and ignores ``FOR UPDATE``. ``begin_write`` starts the transaction with
  ``BEGIN IMMEDIATE``, which takes the database's write lock before the first read: a second process waits (up
  to the busy timeout) until the first has committed, then reads what the first wrote. Plain reads stay
  concurrent (WAL mode) because ordinary transactions still start with a deferred ``BEGIN``
  (``portal.db.make_engine`` turns the driver's own transaction handling off and emits the BEGIN itself).

Lock order, the same everywhere so two transactions can never wait on each other (a deadlock on PostgreSQL):
  1. the client's invoices (``ledger.open_items(lock=True)``, in due-date, id order),
  2. then the payment request / charge attempt / payment / refund rows.
A transaction that needs both takes the invoices first, even when it starts from an attempt.
"""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.orm import Session

IMMEDIATE = {"sqlite_begin": "IMMEDIATE"}


def begin_write(session: Session) -> None:
    """Start a fresh transaction that holds the write lock on SQLite before anything is read.

    Ends the session's current transaction first (its reads are stale the moment we wait for the lock); pending,
    unflushed changes would be committed by that, which is a programming error, so they are refused.
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("begin_write() with unsaved changes: commit or roll back first")
    if session.in_transaction():
        session.commit()  # only reads happened: ends the read snapshot (objects stay loaded: expire_on_commit=False)
    session.connection(execution_options=IMMEDIATE)


def serialize(session: Session, what: str) -> None:
    """Hold a named lock until this transaction ends, for check-then-insert work that has no row to lock yet
    (the next invoice number, the first save of a default schedule).

    PostgreSQL: a transaction-scoped advisory lock; the statements after it see what the previous holder committed
    (READ COMMITTED takes a fresh snapshot per statement). SQLite: writers are already serialised by the database
    lock, so this is a no-op there; callers start with ``begin_write`` or have written already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(what.encode())})
