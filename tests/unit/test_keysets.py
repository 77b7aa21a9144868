"""A fixed status is written into a statement's SQL, never bound: PostgreSQL then keeps one plan for the prepared
statement instead of planning it on every execution (bench/README.md). Only plain words may be written."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from portal.domain.invoices import InvoiceStatus
from portal.models import Invoice
from portal.services.keysets import one_of, written


@pytest.mark.parametrize("dialect", [postgresql.psycopg.dialect(), sqlite.dialect()], ids=["postgresql", "sqlite"])
def test_statuses_are_written_into_the_sql_not_bound(dialect):
    query = select(Invoice.id).where(Invoice.status == written(InvoiceStatus.OPEN),
                                     one_of(Invoice.status, {InvoiceStatus.VOID, InvoiceStatus.DRAFT}))
    compiled = query.compile(dialect=dialect)
    sql = str(compiled)
    assert "invoices.status = 'open'" in sql
    assert "invoices.status IN ('draft', 'void')" in sql
    assert compiled.params == {}  # nothing left to bind


@pytest.mark.parametrize("value", ["open'; DROP TABLE invoices; --", "Open", "", "o pen", "1"])
def test_only_a_plain_word_is_written(value):
    with pytest.raises(ValueError, match="not a status"):
        written(value)
