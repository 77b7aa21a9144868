"""A chunk's worth of keys in one query, for the bulk paths (import, the duplicate-bill check), sent as one bound
parameter where the database plans that well: an ``IN (:p1, ..., :p500)`` list is rendered afresh for every chunk,
and a ``VALUES`` table of 500 rows is a new statement each time (SQLAlchemy's cache cannot hold it), compiled at a
cost greater than running it. And the opposite case, ``written`` and ``one_of``: a fixed status, or a handful, written
into a statement built once; ``among_written``: ids written in when it runs. And ``plain_rows``: a statement of plain
columns run past the ORM's result handling.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    ColumnElement,
    CursorResult,
    Executable,
    Integer,
    Select,
    String,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy import literal_column as raw
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

_WORD = re.compile(r"[a-z_]+")


def written(status: str) -> ColumnElement[str]:
    """A fixed status written into the SQL (``'open'``) rather than bound, for a condition like ``Invoice.status ==
    written(OPEN)``. PostgreSQL keeps one plan for a prepared statement only while that generic plan costs no more
    than planning for the values at hand; with the status a parameter it cannot tell ``'open'`` (a few rows) from
    ``'paid'`` (most of them), so it planned the standing's past-due read afresh on every execution (0.45 ms
    against 0.21). Plain lowercase words only: nothing a user typed is ever written into SQL."""
    if not _WORD.fullmatch(status):
        raise ValueError(f"not a status to write into SQL: {status!r}")
    return raw(f"'{status}'", String)


def one_of(column, values: Iterable) -> ColumnElement[bool]:
    """``column IN ('a', 'b')`` for a fixed handful of statuses in a statement built once, written into it
    (``written``); ``in_`` with a list makes one expanding parameter, which SQLAlchemy renders into the SQL again
    every time the statement runs."""
    return column.in_([written(v) for v in sorted(values)])


def among(session: Session, column, values: Iterable) -> ColumnElement[bool]:
    """``column IN values`` for text keys or integer ids: ``IN (SELECT value FROM json_each(:json))`` (SQLite;
    PostgreSQL: ``jsonb_array_elements_text``), or for integer ids on PostgreSQL ``= ANY(array)``."""
    return _among(column, bindparam(None, key_values(session, column, values), type_=String()), on_postgresql(session))


def among_bound(column, name: str, *, postgresql: bool) -> ColumnElement[bool]:
    """``among`` for a statement built once: the values bound by ``name`` when it runs (``key_values``)."""
    return _among(column, bindparam(name, type_=String()), postgresql)


def key_values(session: Session, column, values: Iterable) -> str:
    """The value of ``among``'s parameter for ``column``: JSON text, or for integer ids on PostgreSQL an array's
    text (``{1,2,3}``). Not a list: psycopg writes an array out in Python, item by item (a re-import's invoice
    numbers: ~1 ms a 2,000-line chunk, against 0.1 ms for ``json.dumps``; each of `run-due`'s reminder lookups
    that send a million-invoice backlog's 134,329 ids: ~200 ms at the cursor, 30-37 ms as text)."""
    if on_postgresql(session) and _integer(column):
        return "{" + ",".join("NULL" if value is None else str(int(value)) for value in values) + "}"
    return json.dumps(list(values))


def among_written(column, name: str, *, postgresql: bool) -> ColumnElement[bool]:
    """``among`` for integer ids written into the statement when it runs (one literal, ``written_ids``), so the
    database plans for the ids at hand, never a prepared statement's generic plan that cannot tell ten ids from ten
    thousand (the staff lists' search, reports._search)."""
    return _among(column, bindparam(name, type_=String(), literal_execute=True), postgresql)


def written_ids(ids: str, *, postgresql: bool) -> str:
    """``among_written``'s value for ids joined by commas ('1,2,3'): an array's text, or a JSON array."""
    return f"{{{ids}}}" if postgresql else f"[{ids}]"


def _among(column, keys: BindParameter[str], postgresql: bool) -> ColumnElement[bool]:
    """``column`` among ``keys``, the text ``key_values`` or ``written_ids`` makes."""
    if postgresql and _integer(column):
        return column == any_(keys.cast(ARRAY(Integer())))
    elements = func.jsonb_array_elements_text(keys.cast(JSONB)) if postgresql else func.json_each(keys)
    return column.in_(select(raw("value")).select_from(elements))


def _integer(column) -> bool:
    return isinstance(column.type, Integer)


def with_pairs(query: Select, first: ColumnElement[int], second: ColumnElement[int], *, postgresql: bool) -> Select:
    """``query`` joined to a table of (first, second) pairs on (``first``, ``second``), the pairs bound by name
    when it runs (``pair_values``), so a statement built once serves every chunk: with an index on the two columns,
    one index range a pair (an IN list on each column probes their cross product; a row-value IN list was planned
    as a 500-term filter on every row, or, on SQLite, through another index). PostgreSQL: ``unnest(ARRAY[..],
    ARRAY[..])``, the arrays written into the statement when it runs (its compiled form stays cached): as bound
    parameters the driver prepared the statement after five chunks, and the generic plan PostgreSQL then used
    knew nothing of the arrays' sizes (a scan per pair, 500 ms a chunk). SQLite: ``json_each(:pairs)`` of
    ``[a, b]`` arrays, one bound parameter."""
    if postgresql:
        table = (func.unnest(*(bindparam(name, type_=ARRAY(BigInteger()), literal_execute=True)
                               for name in ("pairs_first", "pairs_second")))
                 .table_valued("first", "second").render_derived())
    else:
        table = (select(func.json_extract(raw("value"), "$[0]").label("first"),
                        func.json_extract(raw("value"), "$[1]").label("second"))
                 .select_from(func.json_each(bindparam("pairs"))).subquery())
    return query.join(table, (first == table.c.first) & (second == table.c.second))


def pair_values(session: Session, pairs: Iterable[tuple[int, int]]) -> dict:
    """The parameters of ``with_pairs``' table for ``pairs``."""
    pairs = list(pairs)
    if on_postgresql(session):
        return {"pairs_first": [a for a, _ in pairs], "pairs_second": [b for _, b in pairs]}
    return {"pairs": json.dumps(pairs)}


def on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def plain_rows(session: Session, statement: Executable, params: dict | None = None) -> CursorResult:
    """``session.execute`` for a statement of columns, no ORM entity in it: run on the session's connection (after a
    flush unless autoflush is off, ``no_autoflush``, as session.execute would), so the rows come from SQLAlchemy
    Core as they are. The ORM's result handling loads each row through per-column processors and builds its query
    context for rows that are tuples anyway: a quarter of such a statement's time at the driver (~100 us of 430 for
    the client's invoice page, measured in-process against the million-invoice database)."""
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)
