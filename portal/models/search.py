"""Substring search of the staff lists (invoices, payments, clients) on PostgreSQL: trigram indexes (the ``pg_trgm``
extension, part of PostgreSQL's standard contrib modules and trusted: a database's owner may create it).

An invoice's number, a payment's reference or a client's name is searched anywhere in it (``lower(number) LIKE
'%q%'``), which no B-tree index serves: at a million invoices a search that found nothing read them all (~450 ms
for the list's page and its count). A GIN index of the value's trigrams answers it from the index (~1-10 ms).
SQLite has none: its deployments are a single server's few thousand invoices, where the scan is quick.
"""

from __future__ import annotations

from sqlalchemy import DDL, Column, Index, event, func

from .base import Base

# before ``create_all`` makes the tables (migration 0014 creates it itself)
event.listen(Base.metadata, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))


def search_index(column: Column) -> Index:
    """The trigram index over ``lower(column)`` that the lists' searches use, on PostgreSQL only."""
    label = f"{column.name}_lower"
    index = Index(f"ix_{column.table.name}_{column.name}_search", func.lower(column).label(label),
                  postgresql_using="gin", postgresql_ops={label: "gin_trgm_ops"})
    index.ddl_if(dialect="postgresql")
    return index
