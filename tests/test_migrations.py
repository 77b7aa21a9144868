"""`portal db upgrade` on an empty database produces exactly the models' schema, on SQLite and on PostgreSQL.

Each test gets a database of its own: a fresh SQLite file, or a PostgreSQL database created for it on the server
of PORTAL_TEST_DATABASE_URL and dropped afterwards. The shared test database (built by create_all) is not used.
"""

from __future__ import annotations

import re
import secrets
import warnings
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from portal import create_app
from portal.migrate import alembic_config, upgrade
from portal.models import Base

REGENERATE = (
    "alembic.command.revision(portal.migrate.alembic_config(app), autogenerate=True, rev_id='0001', "
    "message='initial schema') on an empty database"
)


@pytest.fixture
def empty_database_url(database_url, tmp_path) -> Iterator[str]:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    name = f"portal_migrations_{secrets.token_hex(4)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_app(empty_database_url, app_config, clock):
    application = create_app({**app_config, "DATABASE_URL": empty_database_url})
    application.extensions["clock"] = clock
    with application.app_context():
        yield application
    application.extensions["db_engine"].dispose()


def schema_differences(app) -> list:
    """What the database's schema lacks or has beyond the models'. Alembic cannot read SQLite's indexes over
    expressions back, so it leaves those out of the comparison, saying so: on SQLite exactly the models' expression
    indexes are expected to be left out, and are checked by name (the lists' search indexes are PostgreSQL's alone,
    models/search.py; the index of our invoice numbers is on both); on PostgreSQL they are compared like every
    other index."""
    engine = app.extensions["db_engine"]
    with engine.connect() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    skipped = {m.group(1) for w in caught if (m := re.search(r"expression-based index '(\w+)'", str(w.message)))}
    assert [str(w.message) for w in caught if "expression-based index" not in str(w.message)] == []
    if engine.dialect.name == "sqlite":
        assert skipped == SEARCH_INDEXES | {"ix_invoices_our_number"}
        built = index_names(engine)
        assert "ix_invoices_our_number" in built and not SEARCH_INDEXES & built
    else:
        assert skipped == set()
    return differences


def index_names(engine) -> set[str]:
    """Every index's name (SQLAlchemy does not read SQLite's indexes over an expression back: sqlite_master)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            return set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
    inspector = inspect(engine)
    return {i["name"] for table in inspector.get_table_names() for i in inspector.get_indexes(table)}


SEARCH_INDEXES = {"ix_invoices_number_search", "ix_payments_reference_search", "ix_clients_legal_name_search",
                  "ix_clients_external_id_search"}


def current_heads(app) -> tuple[str, ...]:
    with app.extensions["db_engine"].connect() as conn:
        return MigrationContext.configure(conn).get_current_heads()


def test_there_is_exactly_one_migration_head(empty_app):
    heads = ScriptDirectory.from_config(alembic_config(empty_app)).get_heads()

    assert len(heads) == 1, f"expected one migration head, found {heads or 'none'}; generate with {REGENERATE}"


def test_upgrade_on_an_empty_database_builds_exactly_the_models_schema(empty_app):
    assert inspect(empty_app.extensions["db_engine"]).get_table_names() == []

    upgrade(empty_app)

    assert schema_differences(empty_app) == [], f"migrations and models disagree; regenerate with {REGENERATE}"
    assert current_heads(empty_app) == tuple(ScriptDirectory.from_config(alembic_config(empty_app)).get_heads())


def test_downgrade_to_nothing_and_upgrade_again(empty_app):
    from alembic import command

    upgrade(empty_app)
    command.downgrade(alembic_config(empty_app), "base")

    assert set(inspect(empty_app.extensions["db_engine"]).get_table_names()) <= {"alembic_version"}
    upgrade(empty_app)  # on PostgreSQL this fails if a downgrade left an enum type or sequence behind
    assert schema_differences(empty_app) == []


def test_the_portal_db_upgrade_command_migrates_and_can_run_again(empty_app):
    runner = empty_app.test_cli_runner()

    first = runner.invoke(args=["db", "upgrade"])
    again = runner.invoke(args=["db", "upgrade"])  # every deploy runs it: on an up-to-date database it is a no-op

    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert "Database is at the latest schema." in first.output
    assert schema_differences(empty_app) == []
    assert set(inspect(empty_app.extensions["db_engine"]).get_table_names()) == {
        *Base.metadata.tables, "alembic_version"}


def _insert(conn, table: str, **values) -> None:
    """A row with ``values`` and a plain value in every other required column (the schema as migrated, no models)."""
    import datetime as dt

    from sqlalchemy import MetaData, Table

    with warnings.catch_warnings():  # SQLite's index over an expression (ours, models/billing.py) is not read back
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        reflected = Table(table, MetaData(), autoload_with=conn)
    columns = reflected.columns
    for column in columns:
        if column.name in values or column.nullable or column.server_default is not None or column.primary_key:
            continue
        python_type = column.type.python_type
        values[column.name] = {str: "", int: 0, bool: False, dt.datetime: dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                               dt.date: dt.date(2026, 11, 1)}.get(python_type, 0)
    conn.execute(reflected.insert().values(**values))


def test_0008_fills_settled_cents_from_the_ledger_and_the_triggers_keep_it(empty_app):
    """Invoices that already had payments and discounts get their sums; later writes (any writer, here plain SQL)
    move them, and a downgrade takes the column and the triggers away."""
    from alembic import command

    upgrade(empty_app, "0007")
    engine = empty_app.extensions["db_engine"]
    with engine.begin() as conn:
        _insert(conn, "clients", id=1, legal_name="Acme")
        for n in (1, 2):
            _insert(conn, "invoices", id=n, client_id=1, number=f"INV-{n}", status="open", currency="USD",
                    total_cents=10_000)
        _insert(conn, "payments", id=1, client_id=1, amount_cents=9_000, status="succeeded")
        for invoice_id, cents in ((1, 6_000), (1, -1_000), (2, 4_000)):
            _insert(conn, "allocations", payment_id=1, invoice_id=invoice_id, amount_cents=cents)
        _insert(conn, "ledger_adjustments", invoice_id=1, client_id=1, kind="autopay_discount", amount_cents=250)

    upgrade(empty_app)

    def settled() -> dict[int, int]:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT id, settled_cents FROM invoices ORDER BY id")).all())

    assert settled() == {1: 5_250, 2: 4_000}
    with engine.begin() as conn:
        _insert(conn, "allocations", payment_id=1, invoice_id=2, amount_cents=-4_000)
        conn.execute(text("UPDATE ledger_adjustments SET amount_cents = 300"))
    assert settled() == {1: 5_300, 2: 0}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_adjustments"))
    assert settled() == {1: 5_000, 2: 0}

    command.downgrade(alembic_config(empty_app), "0007")
    with engine.begin() as conn:  # no trigger left behind that would write to a column that is gone
        _insert(conn, "allocations", payment_id=1, invoice_id=2, amount_cents=100)
    assert "settled_cents" not in {c["name"] for c in inspect(engine).get_columns("invoices")}


def test_0013_fills_the_payments_sums_and_the_triggers_keep_them(empty_app):
    """Payments that already had allocations and refunds get their sums (a failed refund counts for nothing); later
    writes (here plain SQL: any writer) move them, a refund that fails gives its money back to the payment, and a
    downgrade takes the columns, the index and the triggers away."""
    from alembic import command

    upgrade(empty_app, "0012")
    engine = empty_app.extensions["db_engine"]
    with engine.begin() as conn:
        _insert(conn, "clients", id=1, legal_name="Acme")
        _insert(conn, "invoices", id=1, client_id=1, number="INV-1", status="open", currency="USD",
                total_cents=10_000)
        for n in (1, 2):
            _insert(conn, "payments", id=n, client_id=1, amount_cents=9_000, status="succeeded")
        for payment_id, cents in ((1, 6_000), (1, -1_000), (2, 4_000)):
            _insert(conn, "allocations", payment_id=payment_id, invoice_id=1, amount_cents=cents)
        _insert(conn, "refunds", id=1, payment_id=1, amount_cents=500, status="succeeded")
        _insert(conn, "refunds", id=2, payment_id=2, amount_cents=700, status="failed")

    upgrade(empty_app)

    def sums() -> dict[int, tuple[int, int]]:
        with engine.connect() as conn:
            return {i: (a, r) for i, a, r in conn.execute(
                text("SELECT id, applied_cents, refunded_cents FROM payments ORDER BY id"))}

    assert sums() == {1: (5_000, 500), 2: (4_000, 0)}
    with engine.begin() as conn:
        _insert(conn, "allocations", payment_id=2, invoice_id=1, amount_cents=-4_000)
        _insert(conn, "refunds", id=3, payment_id=2, amount_cents=1_000, status="pending")
        conn.execute(text("UPDATE refunds SET status = 'failed' WHERE id = 1"))
    assert sums() == {1: (5_000, 0), 2: (0, 1_000)}
    with engine.begin() as conn:
        conn.execute(text("UPDATE refunds SET payment_id = 1, amount_cents = 1200 WHERE id = 3"))
        conn.execute(text("DELETE FROM allocations WHERE amount_cents = -1000"))
    assert sums() == {1: (6_000, 1_200), 2: (0, 0)}

    command.downgrade(alembic_config(empty_app), "0012")
    with engine.begin() as conn:  # no trigger left behind that would write to a column that is gone
        _insert(conn, "allocations", payment_id=1, invoice_id=1, amount_cents=100)
        _insert(conn, "refunds", id=4, payment_id=1, amount_cents=100, status="succeeded")
    assert not {"applied_cents", "refunded_cents"} & {c["name"] for c in inspect(engine).get_columns("payments")}
    assert "ix_payments_credit" not in {i["name"] for i in inspect(engine).get_indexes("payments")}


def test_0014_builds_the_search_indexes_on_postgresql_and_takes_them_away(empty_app):
    """The lists' searches read the trigram indexes (reports._search), built with the extension they need; a
    downgrade drops the indexes. SQLite gets none (it has no trigram index): the migration does nothing there."""
    from alembic import command

    engine = empty_app.extensions["db_engine"]
    upgrade(empty_app, "0013")
    upgrade(empty_app)

    def search_indexes() -> set[str]:
        return SEARCH_INDEXES & index_names(engine)

    assert search_indexes() == (SEARCH_INDEXES if engine.dialect.name == "postgresql" else set())
    command.downgrade(alembic_config(empty_app), "0013")
    assert search_indexes() == set()
    upgrade(empty_app)  # the extension left in place does not stop the indexes being built again
    assert schema_differences(empty_app) == []
