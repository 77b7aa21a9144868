"""agreements.chain_anchor: the chain head authenticated with a key kept outside the database

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Agreements recorded before this have no anchor: verification reports them as not vouched for by the key.
    with op.batch_alter_table('agreements') as batch:
        batch.add_column(sa.Column('chain_anchor', sa.String(length=64), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('agreements') as batch:
        batch.drop_column('chain_anchor')
