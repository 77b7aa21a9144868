"""A client's payments by date (issue 14): (client_id, received_on, id) replaces (client_id).

The statement's payments in its range were found through the client's index, their dates tested row by row; once
the statement's query was prepared, PostgreSQL's generic plan (which cannot see the range) combined that index with
the one on received_on alone and read every payment of the range for all clients: 26 ms a statement at a million
invoices, against a few index entries now. The new index's first column serves every lookup the old one did.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 05:40:00
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_payments_client_received', 'payments', ['client_id', 'received_on', 'id'], unique=False)
    op.drop_index('ix_payments_client_id', table_name='payments')


def downgrade() -> None:
    op.create_index('ix_payments_client_id', 'payments', ['client_id'], unique=False)
    op.drop_index('ix_payments_client_received', table_name='payments')
