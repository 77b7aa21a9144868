"""Many rows into one table in one go, for the bulk paths (the import's new clients, contacts and invoices, the
duplicate-bill flags of a chunk): what ``session.execute(insert(table), rows)`` does, without its per-row cost.
"""

from __future__ import annotations

from psycopg.pq import TransactionStatus
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .keysets import among


def insert_rows(session: Session, table: Table, values: list[dict]) -> None:
    """``session.execute(insert(table), values)`` (every dict with the same keys), sent to the driver in one go (an
    executemany on SQLite, COPY on PostgreSQL) with each column's type conversion looked up once: SQLAlchemy builds
    and converts a parameter set per row in Python, which was a fifth of a new import's time. The statement is
    SQLAlchemy's own, compiled for the dialect; a column the rows leave out gets its scalar default, as SQLAlchemy
    would give it."""
    if not values:
        return
    connection = session.connection()
    dialect = connection.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(values[0]), for_executemany=True)
    order = compiled.positiontup if compiled.positional else list(compiled.binds)  # the bind names are the columns
    assert order is not None
    columns = []
    for name in order:
        if name in values[0]:
            column = [v[name] for v in values]
        else:
            default = table.c[name].default
            if default is None or not default.is_scalar:
                raise ValueError(f"{table.name}.{name} has no value and no scalar default")
            column = [default.arg] * len(values)
        convert = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if convert:  # once per distinct value: a chunk's rows share their timestamps, dates and rates
            converted: dict = {}
            column = [converted[x] if x in converted else converted.setdefault(x, convert(x)) for x in column]
        columns.append(column)
    rows = list(zip(*columns, strict=True))
    if dialect.name == "postgresql":
        _copy(connection, table, order, rows)
    else:
        connection.exec_driver_sql(compiled.string, rows if compiled.positional
                                   else [dict(zip(order, row, strict=True)) for row in rows])


def insert_and_get_ids(session: Session, table: Table, key: str, values: list[dict]) -> list[int]:
    """``insert_rows``, then the new ids read back by the unique ``key`` column, in the order of ``values``.

    Not INSERT ... RETURNING: with the ids wanted in parameter order, SQLAlchemy sends SQLite one INSERT per row
    (its RETURNING order is not guaranteed), and PostgreSQL's COPY returns nothing. The keys were looked up
    absent, so the SELECT finds exactly these rows (a row another writer added meanwhile makes the INSERT fail)."""
    insert_rows(session, table, values)
    column = table.c[key]
    by_key = dict(session.execute(select(column, table.c.id).where(among(session, column, [v[key] for v in values])))
                  .all())
    return [by_key[v[key]] for v in values]


def _copy(connection, table: Table, names: list[str], rows: list[tuple]) -> None:
    """PostgreSQL: the rows through ``COPY ... FROM STDIN`` in the transaction's own connection. psycopg's
    executemany binds and executes each row (~75 µs of client CPU a line of an import); COPY streams them. A
    refused row (another process added the same invoice) raises SQLAlchemy's IntegrityError, as the INSERT did.

    COPY goes to the driver directly, past the hook that opens a GET's transaction before its first write
    (``portal.db``), so it refuses to run outside one rather than commit on its own."""
    driver = connection.connection.driver_connection
    if driver.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError("bulk.insert_rows needs an open transaction that has written (or begun)")
    quote = connection.dialect.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except connection.dialect.dbapi.IntegrityError as e:
        raise IntegrityError(sql, None, e) from e
