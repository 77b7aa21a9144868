"""payments.applied_cents and refunded_cents: what was applied from and refunded out of each payment, kept by
triggers (portal/models/settled.py says why), and an index of the payments that hold credit (issue 14).

A client's credit summed every allocation and refund of its whole payment history on each view of its overview,
the portal's home and the payment form (~1 ms at a hundred payments a client), and the payment lists summed both
per row. Now the credit reads the few payments that hold any, and the lists read two columns.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 08:10:00
"""
from alembic import op
import sqlalchemy as sa

from portal.models.billing import HOLDS_CREDIT
from portal.models.settled import APPLIED, PAYMENT_BACKFILL, REFUNDED


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

SOURCES = (("allocations", APPLIED), ("refunds", REFUNDED))


def upgrade() -> None:
    # plain ALTERs, no batch copy of the table: SQLite cannot drop a table other rows point at
    for column in ('applied_cents', 'refunded_cents'):
        op.add_column('payments', sa.Column(column, sa.BigInteger(), server_default='0', nullable=False))
    op.execute(PAYMENT_BACKFILL)
    dialect = op.get_bind().dialect.name
    for table, kept in SOURCES:
        for statement in kept.trigger_statements(dialect, table):
            op.execute(statement)
    op.create_index('ix_payments_credit', 'payments', ['client_id'], unique=False,
                    postgresql_where=sa.text(HOLDS_CREDIT), sqlite_where=sa.text(HOLDS_CREDIT))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, kept in SOURCES:
        for statement in kept.drop_statements(dialect, table):
            op.execute(statement)
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS {kept.function}()")
    op.drop_index('ix_payments_credit', table_name='payments')
    for column in ('applied_cents', 'refunded_cents'):
        op.execute(f"ALTER TABLE payments DROP COLUMN {column}")  # SQLite 3.35+ and PostgreSQL alike
