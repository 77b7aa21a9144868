"""An index of the invoice numbers the portal gives (INV-000123) by what they count to, on both databases: the next
number is one past the highest, read through it instead of reading every number (models/billing.py, OUR_NUMBER).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 14:40:00
"""
from alembic import op

from portal.models.billing import NUMBER_PREFIX, OUR_NUMBER


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    ours = OUR_NUMBER[op.get_bind().dialect.name]
    op.execute(f"CREATE INDEX ix_invoices_our_number ON invoices "
               f"(CAST(substr(number, {len(NUMBER_PREFIX) + 1}) AS BIGINT)) WHERE {ours}")


def downgrade() -> None:
    op.execute("DROP INDEX ix_invoices_our_number")
