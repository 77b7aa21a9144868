"""Trigram indexes for the staff lists' search (invoices, payments, clients) on PostgreSQL (models/search.py: why).

Creates the ``pg_trgm`` extension (trusted: the database's owner may). Nothing on SQLite. Building them reads the
tables once (about 2 s at a million invoices), during which those tables take no writes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:20:00
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

INDEXES = (("ix_invoices_number_search", "invoices", "number"),
           ("ix_payments_reference_search", "payments", "reference"),
           ("ix_clients_legal_name_search", "clients", "legal_name"),
           ("ix_clients_external_id_search", "clients", "external_id"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} USING gin (lower({column}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _, _ in INDEXES:
        op.execute(f"DROP INDEX {name}")  # the extension stays: anything else that uses it would go with it
