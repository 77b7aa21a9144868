"""autopay, enrollment side: saved payment methods, the MSP's autopay settings and per-client enrollments,
ledger adjustments (autopay discounts), rate locks, onboarding invitations and conversion-campaign offers

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:49:55.662008
"""
from alembic import op
import sqlalchemy as sa
import portal.models.base


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('autopay_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('timing', sa.String(length=20), nullable=False),
    sa.Column('offset_days', sa.Integer(), nullable=False),
    sa.Column('day_of_month', sa.Integer(), nullable=True),
    sa.Column('cap_cents', sa.BigInteger(), nullable=True),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('method_types', sa.String(length=60), nullable=False),
    sa.Column('use_fallback', sa.Boolean(), nullable=False),
    sa.Column('notice_days', sa.Integer(), nullable=False),
    sa.Column('retry_days', sa.String(length=60), nullable=False),
    sa.Column('required_for_new_clients', sa.Boolean(), nullable=False),
    sa.Column('incentive_kind', sa.String(length=20), nullable=False),
    sa.Column('discount_percent', sa.Numeric(precision=9, scale=4), nullable=True),
    sa.Column('stop_after_failures', sa.Integer(), nullable=False),
    sa.Column('next_increase_on', sa.Date(), nullable=True),
    sa.Column('next_increase_percent', sa.Numeric(precision=9, scale=4), nullable=True),
    sa.Column('updated_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autopay_settings'))
    )
    op.create_table('due_leases',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('holder', sa.String(length=255), nullable=False),
    sa.Column('expires_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_due_leases'))
    )
    op.create_table('due_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=255), nullable=False),
    sa.Column('started_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('charged', sa.Integer(), nullable=False),
    sa.Column('succeeded', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('notices', sa.Integer(), nullable=False),
    sa.Column('settled', sa.Integer(), nullable=False),
    sa.Column('problems', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_due_runs'))
    )
    with op.batch_alter_table('due_runs', schema=None) as batch_op:
        batch_op.create_index('ix_due_runs_started', ['started_at'], unique=False)

    op.create_table('autopay_enrollments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('enrolled', sa.Boolean(), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('timing', sa.String(length=20), nullable=True),
    sa.Column('offset_days', sa.Integer(), nullable=True),
    sa.Column('day_of_month', sa.Integer(), nullable=True),
    sa.Column('has_cap_override', sa.Boolean(), nullable=False),
    sa.Column('cap_cents', sa.BigInteger(), nullable=True),
    sa.Column('scope', sa.String(length=20), nullable=True),
    sa.Column('method_types', sa.String(length=60), nullable=True),
    sa.Column('use_fallback', sa.Boolean(), nullable=True),
    sa.Column('notice_days', sa.Integer(), nullable=True),
    sa.Column('retry_days', sa.String(length=60), nullable=True),
    sa.Column('incentive_state', sa.String(length=20), nullable=False),
    sa.Column('incentive_kind', sa.String(length=20), nullable=True),
    sa.Column('incentive_stop_reason', sa.String(length=30), nullable=True),
    sa.Column('incentive_started_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('incentive_stopped_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('incentive_stop_notified_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('left_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('left_reason', sa.Text(), nullable=False),
    sa.Column('updated_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_autopay_enrollments_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autopay_enrollments')),
    sa.UniqueConstraint('client_id', name=op.f('uq_autopay_enrollments_client_id'))
    )
    op.create_table('autopay_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('sent_on', sa.Date(), nullable=False),
    sa.Column('charge_on', sa.Date(), nullable=True),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_autopay_notices_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autopay_notices')),
    sa.UniqueConstraint('kind', 'subject', name=op.f('uq_autopay_notices_kind'))
    )
    with op.batch_alter_table('autopay_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_autopay_notices_client_id'), ['client_id'], unique=False)

    op.create_table('rate_locks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('granted_on', sa.Date(), nullable=False),
    sa.Column('waived_increase_on', sa.Date(), nullable=True),
    sa.Column('increase_percent', sa.Numeric(precision=9, scale=4), nullable=True),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('end_reason', sa.String(length=30), nullable=True),
    sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_rate_locks_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_locks'))
    )
    with op.batch_alter_table('rate_locks', schema=None) as batch_op:
        batch_op.create_index('ix_rate_locks_client', ['client_id', 'granted_on'], unique=False)

    op.create_table('autopay_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('campaign', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('sent_by_staff_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('opened_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_autopay_offers_client_id_clients')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_autopay_offers_contact_id_contacts')),
    sa.ForeignKeyConstraint(['sent_by_staff_id'], ['staff_users.id'], name=op.f('fk_autopay_offers_sent_by_staff_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autopay_offers')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_autopay_offers_token_hash'))
    )
    with op.batch_alter_table('autopay_offers', schema=None) as batch_op:
        batch_op.create_index('ix_autopay_offers_client', ['client_id', 'sent_at'], unique=False)

    op.create_table('due_run_skips',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_due_run_skips_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['run_id'], ['due_runs.id'], name=op.f('fk_due_run_skips_run_id_due_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_due_run_skips'))
    )
    with op.batch_alter_table('due_run_skips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_due_run_skips_run_id'), ['run_id'], unique=False)

    op.create_table('ledger_adjustments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('percent', sa.Numeric(precision=9, scale=4), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('memo', sa.Text(), nullable=False),
    sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_cents <> 0', name=op.f('ck_ledger_adjustments_amount_not_zero')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_ledger_adjustments_client_id_clients')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_ledger_adjustments_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_adjustments')),
    sa.UniqueConstraint('kind', 'attempt_id', name='kind_attempt')
    )
    with op.batch_alter_table('ledger_adjustments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_adjustments_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_adjustments_invoice_id'), ['invoice_id'], unique=False)

    op.create_table('onboarding_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('autopay_required', sa.Boolean(), nullable=False),
    sa.Column('invited_by_staff_id', sa.Integer(), nullable=True),
    sa.Column('sent_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resend_count', sa.Integer(), nullable=False),
    sa.Column('opened_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('terms_signed_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('autopay_on_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_onboarding_invitations_client_id_clients')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_onboarding_invitations_contact_id_contacts')),
    sa.ForeignKeyConstraint(['invited_by_staff_id'], ['staff_users.id'], name=op.f('fk_onboarding_invitations_invited_by_staff_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_onboarding_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_onboarding_invitations_token_hash'))
    )
    with op.batch_alter_table('onboarding_invitations', schema=None) as batch_op:
        batch_op.create_index('ix_onboarding_invitations_client', ['client_id', 'id'], unique=False)

    op.create_table('saved_payment_methods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('gateway', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.String(length=255), nullable=False),
    sa.Column('method_id', sa.String(length=255), nullable=False),
    sa.Column('setup_id', sa.String(length=255), nullable=True),
    sa.Column('mandate_id', sa.String(length=255), nullable=True),
    sa.Column('method_type', sa.String(length=20), nullable=False),
    sa.Column('brand', sa.String(length=30), nullable=True),
    sa.Column('card_funding', sa.String(length=20), nullable=True),
    sa.Column('last4', sa.String(length=4), nullable=True),
    sa.Column('exp_month', sa.Integer(), nullable=True),
    sa.Column('exp_year', sa.Integer(), nullable=True),
    sa.Column('bank_name', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('microdeposit_type', sa.String(length=20), nullable=True),
    sa.Column('microdeposits_arrive', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('is_fallback', sa.Boolean(), nullable=False),
    sa.Column('blocked_code', sa.String(length=40), nullable=True),
    sa.Column('authorization_id', sa.Integer(), nullable=True),
    sa.Column('saved_by_contact_id', sa.Integer(), nullable=True),
    sa.Column('expiry_notice_sent_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('verified_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('removed_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("method_type IN ('card', 'us_bank_account')", name=op.f('ck_saved_payment_methods_method_type_known')),
    sa.ForeignKeyConstraint(['authorization_id'], ['agreements.id'], name=op.f('fk_saved_payment_methods_authorization_id_agreements')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_saved_payment_methods_client_id_clients')),
    sa.ForeignKeyConstraint(['saved_by_contact_id'], ['contacts.id'], name=op.f('fk_saved_payment_methods_saved_by_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_payment_methods')),
    sa.UniqueConstraint('gateway', 'method_id', name=op.f('uq_saved_payment_methods_gateway')),
    sa.UniqueConstraint('setup_id', name=op.f('uq_saved_payment_methods_setup_id'))
    )
    with op.batch_alter_table('saved_payment_methods', schema=None) as batch_op:
        batch_op.create_index('ix_saved_payment_methods_client_status', ['client_id', 'status'], unique=False)

    op.create_table('autopay_charges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('charge_number', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('method_id', sa.String(length=255), nullable=False),
    sa.Column('method_type', sa.String(length=20), nullable=False),
    sa.Column('charged_on', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('discount_cents', sa.BigInteger(), nullable=False),
    sa.Column('decline_class', sa.String(length=30), nullable=True),
    sa.Column('decline_code', sa.String(length=100), nullable=True),
    sa.Column('handled_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('charge_number > 0', name=op.f('ck_autopay_charges_charge_number_positive')),
    sa.ForeignKeyConstraint(['attempt_id'], ['charge_attempts.id'], name=op.f('fk_autopay_charges_attempt_id_charge_attempts')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_autopay_charges_client_id_clients')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_autopay_charges_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['request_id'], ['payment_requests.id'], name=op.f('fk_autopay_charges_request_id_payment_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autopay_charges')),
    sa.UniqueConstraint('attempt_id', name=op.f('uq_autopay_charges_attempt_id')),
    sa.UniqueConstraint('invoice_id', 'charge_number', name=op.f('uq_autopay_charges_invoice_id')),
    sa.UniqueConstraint('request_id', name=op.f('uq_autopay_charges_request_id'))
    )
    with op.batch_alter_table('autopay_charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_autopay_charges_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_autopay_charges_unhandled', ['handled_at', 'id'], unique=False)

    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=20), server_default='checkout', nullable=False))
        batch_op.add_column(sa.Column('decline_code', sa.String(length=100), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_column('decline_code')
        batch_op.drop_column('origin')

    with op.batch_alter_table('autopay_charges', schema=None) as batch_op:
        batch_op.drop_index('ix_autopay_charges_unhandled')
        batch_op.drop_index(batch_op.f('ix_autopay_charges_client_id'))

    op.drop_table('autopay_charges')
    with op.batch_alter_table('saved_payment_methods', schema=None) as batch_op:
        batch_op.drop_index('ix_saved_payment_methods_client_status')

    op.drop_table('saved_payment_methods')
    with op.batch_alter_table('onboarding_invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_onboarding_invitations_client')

    op.drop_table('onboarding_invitations')
    with op.batch_alter_table('ledger_adjustments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_adjustments_invoice_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_adjustments_client_id'))

    op.drop_table('ledger_adjustments')
    with op.batch_alter_table('due_run_skips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_due_run_skips_run_id'))

    op.drop_table('due_run_skips')
    with op.batch_alter_table('autopay_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_autopay_offers_client')

    op.drop_table('autopay_offers')
    with op.batch_alter_table('rate_locks', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_locks_client')

    op.drop_table('rate_locks')
    with op.batch_alter_table('autopay_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_autopay_notices_client_id'))

    op.drop_table('autopay_notices')
    op.drop_table('autopay_enrollments')
    with op.batch_alter_table('due_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_due_runs_started')

    op.drop_table('due_runs')
    op.drop_table('due_leases')
    op.drop_table('autopay_settings')
