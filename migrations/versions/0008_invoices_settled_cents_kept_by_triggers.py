"""invoices.settled_cents: the sum of an invoice's allocations and ledger adjustments, kept by triggers, for reports
over a million invoices (portal/models/settled.py says why); the owing-invoices index covers those reports

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:24:49.414856
"""
from alembic import op
import sqlalchemy as sa

from portal.models.settled import BACKFILL, SETTLING_TABLES, trigger_statements


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTERs, no batch copy of the table: SQLite cannot drop a table other rows point at
    op.add_column('invoices', sa.Column('settled_cents', sa.BigInteger(), server_default='0', nullable=False))
    op.drop_index('ix_invoices_status_due', table_name='invoices')
    op.create_index('ix_invoices_status_due', 'invoices',
                    ['status', 'due_date', 'client_id', 'total_cents', 'settled_cents'], unique=False)
    op.execute(BACKFILL)
    dialect = op.get_bind().dialect.name
    for table in SETTLING_TABLES:
        for statement in trigger_statements(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in SETTLING_TABLES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_settle ON {table}")
        else:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_settle_{event}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS settle_invoice()")
    op.drop_index('ix_invoices_status_due', table_name='invoices')
    op.create_index('ix_invoices_status_due', 'invoices', ['status', 'due_date'], unique=False)
    op.execute("ALTER TABLE invoices DROP COLUMN settled_cents")  # SQLite 3.35+ and PostgreSQL alike
