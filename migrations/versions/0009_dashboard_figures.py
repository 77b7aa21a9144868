"""dashboard figures: the trend's past month ends, the cash forecast and autopay adoption stored by `run-due` for
the page to read (services/collections/figures.py); indexes on invoices.issue_date (what was billed lately) and
payments (received_on, id) (the payments list, newest first)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:39:10.034768
"""
from alembic import op
import sqlalchemy as sa
import portal.models.base


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dashboard_figures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('made_on', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('computed_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dashboard_figures')),
    sa.UniqueConstraint('made_on', 'kind', name=op.f('uq_dashboard_figures_made_on'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_issue_date', ['issue_date'], unique=False)
    op.create_index('ix_payments_received', 'payments', ['received_on', 'id'], unique=False)



def downgrade() -> None:
    op.drop_index('ix_payments_received', table_name='payments')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_issue_date')

    op.drop_table('dashboard_figures')
