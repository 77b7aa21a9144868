"""PostgreSQL connections' cursors describe a result only when the description is looked into (portal.db._Cursor):
what it says must be what psycopg's own cursor says, None where psycopg says None, and never another result's."""

from __future__ import annotations

import pytest
from psycopg import Cursor
from sqlalchemy import select, text

from portal.models import Client


@pytest.fixture
def driver(app):
    engine = app.extensions["db_engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite's cursors are the standard library's")
    with engine.connect() as connection:
        yield connection.connection.driver_connection


def _plain(driver) -> Cursor:
    """psycopg's own cursor on the same connection, to compare with."""
    return Cursor(driver)


def test_a_selects_description_is_what_psycopgs_own_cursor_gives(driver):
    sql = "SELECT 1 AS one, 'x'::text AS label, now() AS at, 2.5::numeric(9, 4) AS rate, NULL::date AS due"
    ours, theirs = driver.cursor(), _plain(driver)
    ours.execute(sql)
    theirs.execute(sql)
    assert type(ours).__name__ == "_Cursor"  # the engine's connect hook set the factory
    assert len(ours.description) == 5
    assert [tuple(column) for column in ours.description] == [tuple(column) for column in theirs.description]
    assert [column.name for column in ours.description] == ["one", "label", "at", "rate", "due"]
    assert ours.description[-1].type_code == theirs.description[-1].type_code
    assert ours.fetchall() == theirs.fetchall()


@pytest.mark.parametrize("sql", ["SELECT", "SELECT 1 WHERE false"])
def test_a_select_of_no_column_or_no_row_still_has_a_description(driver, sql):
    ours, theirs = driver.cursor(), _plain(driver)
    ours.execute(sql)
    theirs.execute(sql)
    assert ours.description is not None
    assert [tuple(column) for column in ours.description] == [tuple(column) for column in theirs.description]


@pytest.mark.parametrize("sql", ["SET LOCAL statement_timeout = 0", "CREATE TEMPORARY TABLE t (a int)"])
def test_a_statement_that_returns_no_rows_has_no_description(driver, sql):
    cursor = driver.cursor()
    assert cursor.description is None  # nothing run yet
    cursor.execute(sql)
    assert cursor.description is None


def test_a_description_kept_after_the_cursor_moved_on_refuses_to_answer(driver):
    cursor = driver.cursor()
    cursor.execute("SELECT 1 AS first")
    kept = cursor.description
    cursor.execute("SELECT 2 AS second, 3 AS third")
    assert len(kept) == 1  # the count is the first result's
    with pytest.raises(RuntimeError, match="moved to another result"):
        kept[0]
    assert [column.name for column in cursor.description] == ["second", "third"]


def test_a_description_looked_into_before_the_cursor_moved_on_keeps_its_columns(driver):
    cursor = driver.cursor()
    cursor.execute("SELECT 1 AS first")
    kept = cursor.description
    assert kept[0].name == "first"
    cursor.execute("SELECT 2 AS second")
    assert kept[0].name == "first"


def test_sqlalchemy_results_through_these_cursors(session, make):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    make.client("Acme Dental")
    make.client("Birch Law")
    # a textual statement: SQLAlchemy reads every column of the description to name the row's keys
    rows = session.execute(text("SELECT id, legal_name AS name FROM clients ORDER BY legal_name")).mappings().all()
    assert [row["name"] for row in rows] == ["Acme Dental", "Birch Law"]
    # a compiled one, twice (the second from the compiled cache, which no longer reads the description)
    for _ in range(2):
        result = session.execute(select(Client.legal_name, Client.id).order_by(Client.legal_name.desc()))
        assert list(result.keys()) == ["legal_name", "id"]
        assert [row.legal_name for row in result] == ["Birch Law", "Acme Dental"]
    # a statement without rows still says how many it changed
    assert session.execute(text("UPDATE clients SET notes = 'x'")).rowcount == 2
