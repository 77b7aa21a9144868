"""A GET's database session (portal.db). On PostgreSQL its reads run without BEGIN/ROLLBACK (the connection is in
autocommit), and whatever it writes or locks still runs in one transaction that commits or rolls back as a whole.
The atomicity tests run on both databases: on SQLite a GET keeps its ordinary transactions, and the same
guarantees must hold."""

from __future__ import annotations

import zlib
from contextlib import contextmanager

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import event, func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from portal import db
from portal.db import is_plain_read
from portal.models import Client
from portal.services import locking
from tests.conftest import sign_in


@contextmanager
def request_session(app, method: str):
    """The session ``db.session()`` gives a view of this method (its own app context, as each request has)."""
    with app.app_context(), app.test_request_context("/", method=method):
        yield db.session()


def _postgresql_only(app) -> None:
    if app.extensions["db_engine"].dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: a GET's reads skip BEGIN there; on SQLite (an in-process call) they keep it")


def _notes(app, client_id: int) -> str:
    """What another connection sees committed."""
    with app.extensions["db_engine"].connect() as conn:
        return conn.scalar(select(Client.notes).where(Client.id == client_id))


def _in_transaction(session) -> bool:
    driver = session.connection().connection.driver_connection
    return driver.info.transaction_status != TransactionStatus.IDLE


@pytest.mark.parametrize("statement", [
    "SELECT clients.id FROM clients WHERE clients.id = %(id)s",
    "  select 1",
    "SELECT count(*) AS count_1 FROM (SELECT 1 FROM invoices LIMIT %(param_1)s) AS anon_1",
])
def test_a_select_that_neither_locks_nor_moves_a_sequence_is_a_plain_read(statement):
    assert is_plain_read(statement)


@pytest.mark.parametrize("statement", [
    "INSERT INTO clients (legal_name) VALUES (%(name)s)",
    "UPDATE clients SET notes = ''",
    "DELETE FROM clients",
    "SAVEPOINT sa_savepoint_1",
    "WITH moved AS (UPDATE clients SET notes = '' RETURNING id) SELECT id FROM moved",
    "SELECT invoices.id FROM invoices WHERE invoices.client_id = %(id)s ORDER BY invoices.id FOR UPDATE",
    "SELECT clients.id FROM clients\nFOR NO KEY UPDATE OF clients SKIP LOCKED",
    "SELECT id FROM clients FOR SHARE",
    "SELECT id FROM clients FOR KEY SHARE",
    "SELECT pg_advisory_xact_lock(%(key)s)",
    "SELECT pg_try_advisory_lock(1)",
    "SELECT nextval('invoices_id_seq')",
    "SELECT setval('invoices_id_seq', 1)",
    "SELECT invoices.id FROM invoices WHERE invoices.memo = 'FOR UPDATE'",  # the words in a literal: a needless BEGIN
])
def test_a_statement_that_writes_or_locks_is_not_a_plain_read(statement):
    assert not is_plain_read(statement)


def test_a_gets_writes_roll_back_as_a_whole(app, make):
    first, second = make.client(notes="first"), make.client(notes="second")
    with request_session(app, "GET") as session:
        session.scalars(select(Client)).all()
        session.execute(update(Client).where(Client.id == first.id).values(notes="changed"))
        session.execute(update(Client).where(Client.id == second.id).values(notes="changed"))
        assert _notes(app, first.id) == "first"  # not committed statement by statement
        session.rollback()
    assert (_notes(app, first.id), _notes(app, second.id)) == ("first", "second")


def test_a_gets_writes_commit_together_and_the_session_goes_on(app, make):
    client = make.client(notes="before")
    make.client(external_id="PSA-1")
    with request_session(app, "GET") as session:
        session.execute(update(Client).where(Client.id == client.id).values(notes="once"))
        session.commit()
        assert _notes(app, client.id) == "once"
        session.execute(update(Client).where(Client.id == client.id).values(notes="twice"))
        session.rollback()  # the second transaction, begun afresh, rolls back alone
        assert _notes(app, client.id) == "once"
        with pytest.raises(IntegrityError):  # a refused write: the session is usable after its rollback
            session.execute(update(Client).where(Client.id == client.id).values(external_id="PSA-1"))
        session.rollback()
        assert session.scalar(select(Client.notes).where(Client.id == client.id)) == "once"


def test_a_get_streams_rows_through_a_server_side_cursor(app, make):
    """``yield_per`` (the aging CSV export): on PostgreSQL a server-side cursor, whose DECLARE needs a transaction."""
    ids = [make.client().id for _ in range(5)]
    with request_session(app, "GET") as session:
        streamed = list(session.scalars(select(Client.id).order_by(Client.id).execution_options(yield_per=2)))
    assert streamed == ids


def test_a_gets_reads_open_no_transaction_and_its_first_write_opens_one(app, make):
    _postgresql_only(app)
    client = make.client()
    with request_session(app, "GET") as session:
        session.scalar(select(Client.legal_name).where(Client.id == client.id))
        assert not _in_transaction(session)
        session.execute(update(Client).where(Client.id == client.id).values(notes="x"))
        assert _in_transaction(session)
        session.commit()
        assert not _in_transaction(session)
    with request_session(app, "POST") as session:  # a POST's session is an ordinary transaction
        session.scalar(select(Client.legal_name).where(Client.id == client.id))
        assert _in_transaction(session)


def test_a_row_locked_by_a_get_stays_locked_until_it_ends(app, make):
    _postgresql_only(app)
    client = make.client()
    other = app.extensions["db_engine"].connect()
    try:
        with request_session(app, "GET") as session:
            session.scalar(select(Client).where(Client.id == client.id).with_for_update())
            with pytest.raises(OperationalError, match="could not obtain lock"):
                other.execute(text("SELECT id FROM clients WHERE id = :id FOR UPDATE NOWAIT"), {"id": client.id})
            other.rollback()
            session.commit()
        assert other.scalar(text("SELECT id FROM clients WHERE id = :id FOR UPDATE NOWAIT"), {"id": client.id})
    finally:
        other.close()


def test_an_advisory_lock_taken_by_a_get_is_held_until_it_ends(app):
    _postgresql_only(app)
    other = app.extensions["db_engine"].connect()
    try_lock = text("SELECT pg_try_advisory_xact_lock(:key)").bindparams(key=zlib.crc32(b"next invoice number"))
    try:
        with request_session(app, "GET") as session:
            locking.serialize(session, "next invoice number")
            assert _in_transaction(session)
            assert other.scalar(try_lock) is False
            other.rollback()
            session.rollback()
        assert other.scalar(try_lock) is True  # released with the GET's transaction
    finally:
        other.close()


def test_an_admin_list_page_runs_every_statement_outside_a_transaction(app, http, make):
    _postgresql_only(app)
    sign_in(http, make.staff())
    make.invoice(make.client())
    states: list[TransactionStatus] = []

    def after(conn, *_args):
        states.append(conn.connection.driver_connection.info.transaction_status)

    engine = app.extensions["db_engine"]
    event.listen(engine, "after_cursor_execute", after)
    try:
        assert http.get("/admin/invoices").status_code == 200
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert states and set(states) == {TransactionStatus.IDLE}


def test_bulk_rows_join_the_transaction_a_gets_write_began_and_are_refused_outside_one(app, make):
    """``bulk.insert_rows`` sends COPY to the driver, past the hook that begins a GET's transaction: outside a
    transaction it refuses (rather than commit on its own); after a write began one, its rows roll back with it."""
    _postgresql_only(app)
    from portal.clock import now
    from portal.services.bulk import insert_rows

    client = make.client(notes="before")
    rows = [{"legal_name": f"Bulk {n} LLC", "created_at": now()} for n in range(3)]
    with request_session(app, "GET") as session:
        session.scalars(select(Client)).all()
        with pytest.raises(RuntimeError, match="open transaction"):
            insert_rows(session, Client.__table__, rows)
        session.execute(update(Client).where(Client.id == client.id).values(notes="changed"))
        insert_rows(session, Client.__table__, rows)
        assert session.scalar(select(func.count()).select_from(Client)) == 4  # seen inside the transaction
        session.rollback()
    with app.extensions["db_engine"].connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Client)) == 1
    assert _notes(app, client.id) == "before"
