"""Disputes (chargebacks) on online payments: the card network's process, reported by the gateway's webhooks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import payments as rules
from portal.gateways.payments import DisputeUpdate
from portal.models import ChargeAttempt, Dispute

from .booking import refund_payment
from .refunds import attempt_for_gateway_id, lock_for_money_back, refundable
from .results import payment_of


def disputes_of(session: Session, attempt: ChargeAttempt) -> list[Dispute]:
    return list(session.scalars(select(Dispute).where(Dispute.attempt_id == attempt.id).order_by(Dispute.id)))


def record_dispute(session: Session, update: DisputeUpdate) -> str:
    """``charge.dispute.*``: keep the dispute's latest state. When the MSP loses, the money is gone for good: the
    ledger reverses it like a refund (the invoices it paid reopen). Winning changes nothing."""
    attempt = attempt_for_gateway_id(session, update.payment_intent_id)
    if attempt is None:
        return "ignored: not a portal payment"
    attempt = lock_for_money_back(session, attempt.id)
    dispute = session.scalar(select(Dispute).where(Dispute.dispute_id == update.dispute_id))
    stamp = now()
    if dispute is None:
        dispute = Dispute(dispute_id=update.dispute_id, attempt_id=attempt.id, status=update.status,
                          reason=update.reason or "", amount_cents=update.amount_cents, currency=update.currency,
                          opened_at=stamp, updated_at=stamp)
        session.add(dispute)
    dispute.status = rules.advance_dispute(dispute.status, update.status)
    dispute.updated_at = stamp
    if not rules.is_open_dispute(dispute.status) and dispute.closed_at is None:
        dispute.closed_at = stamp
    session.flush()
    payment = payment_of(session, attempt)
    if dispute.status == rules.DisputeStatus.LOST and dispute.reversal_refund_id is None and payment is not None:
        base = rules.base_part_of_charge(charged_cents=attempt.charged_cents, base_cents=attempt.amount_cents,
                                         gateway_cents=dispute.amount_cents)
        base = min(base, refundable(session, attempt).left_cents)
        if base > 0:
            reversal = refund_payment(
                session, payment, amount_cents=base, reason=f"Dispute lost ({dispute.reason or 'no reason'})",
                gateway_ref=dispute.dispute_id[:100], commit=False)
            dispute.reversal_refund_id = reversal.id
    session.commit()
    return f"dispute {dispute.status}"
