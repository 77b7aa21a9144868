"""Two invoice indexes (issue 14):

- (client_id, status, due_date, total_cents, settled_cents): a client's owing invoices and what each still owes
  (the balances on the client list and a client's page, what a payment is applied to) from the index alone;
  before, every invoice of the client was read and the paid ones thrown away.
- (client_id, total_cents, issue_date): a new bill's twins for the duplicate-bill check (every new invoice, an
  import chunk by chunk); before, every invoice of the client in the window was read, which made a large import
  slow down as clients' histories grew.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 22:45:00
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_invoices_client_status_due', 'invoices',
                    ['client_id', 'status', 'due_date', 'total_cents', 'settled_cents'], unique=False)
    op.create_index('ix_invoices_client_total_issue', 'invoices', ['client_id', 'total_cents', 'issue_date'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_invoices_client_total_issue', table_name='invoices')
    op.drop_index('ix_invoices_client_status_due', table_name='invoices')
