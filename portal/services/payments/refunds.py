"""Money going back on an online payment: refunds sent through the gateway, refunds made in the gateway's own
dashboard, and disputes (chargebacks). Each ends as a ledger Refund row, so invoices reopen the usual way.

Amounts: staff refund *invoice money*; the matching share of any card surcharge goes back with it. What the
gateway reports (refunded totals, dispute amounts) is in charged cents and is split back the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import payments as rules
from portal.domain.errors import DomainError, InvalidAmount
from portal.gateways.payments import (
    DisputeUpdate,
    GatewayRequestError,
    GatewayUnavailable,
    PaymentGateway,
    RefundUpdate,
)
from portal.models import ChargeAttempt, Dispute, GatewayRefund, Refund, StaffUser

from . import payments as ledger_payments
from .idempotency import commit_with_key
from .online_payments import payment_of

log = logging.getLogger(__name__)

LIVE_REFUND_STATUSES = ("requested", "unknown", "pending", "succeeded")  # may have sent (or did send) money back


class RefundOutcomeUnknown(DomainError):
    """The gateway did not answer: the refund may or may not have gone out. Reconciliation will find out."""


@dataclass(frozen=True)
class Refundable:
    payment_cents: int
    refunded_cents: int  # ledger refunds of any kind (gateway, lost dispute, ...)
    in_progress_cents: int  # gateway refunds sent but not yet on the ledger

    @property
    def left_cents(self) -> int:
        return self.payment_cents - self.refunded_cents - self.in_progress_cents


def refundable(session: Session, attempt: ChargeAttempt) -> Refundable:
    payment = payment_of(session, attempt)
    if payment is None or payment.status != rules.SUCCEEDED:
        return Refundable(0, 0, 0)
    refunded = session.scalar(select(func.coalesce(func.sum(Refund.amount_cents), 0))
                              .where(Refund.payment_id == payment.id, Refund.status != "failed"))
    in_progress = session.scalar(select(func.coalesce(func.sum(GatewayRefund.amount_cents), 0)).where(
        GatewayRefund.attempt_id == attempt.id, GatewayRefund.refund_id.is_(None),
        GatewayRefund.status.in_(LIVE_REFUND_STATUSES)))
    return Refundable(payment.amount_cents, int(refunded), int(in_progress))


def _gateway_refunded_base(session: Session, attempt: ChargeAttempt) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(GatewayRefund.amount_cents), 0)).where(
        GatewayRefund.attempt_id == attempt.id, GatewayRefund.status.in_(LIVE_REFUND_STATUSES))))


def _lock(session: Session, attempt: ChargeAttempt) -> ChargeAttempt:
    locked = session.get(ChargeAttempt, attempt.id, with_for_update=True, populate_existing=True)
    assert locked is not None
    return locked


def disputes_of(session: Session, attempt: ChargeAttempt) -> list[Dispute]:
    return list(session.scalars(select(Dispute).where(Dispute.attempt_id == attempt.id).order_by(Dispute.id)))


def refunds_of(session: Session, attempt: ChargeAttempt) -> list[GatewayRefund]:
    return list(session.scalars(select(GatewayRefund).where(GatewayRefund.attempt_id == attempt.id)
                                .order_by(GatewayRefund.id)))


def has_open_dispute(session: Session, attempt: ChargeAttempt) -> bool:
    return any(rules.is_open_dispute(d.status) for d in disputes_of(session, attempt))


def refund(session: Session, gateway: PaymentGateway, attempt: ChargeAttempt, *, amount_cents: int, reason: str,
           staff: StaffUser | None, form_nonce: str) -> GatewayRefund:
    """Send invoice money (and its share of the surcharge) back to the client's card or bank account.

    The GatewayRefund row is committed before the gateway call and its id makes the idempotency key; submitting
    the same form twice (same ``form_nonce``) returns the first refund instead of refunding again.
    """
    existing = session.scalar(select(GatewayRefund).where(GatewayRefund.form_nonce == form_nonce))
    if existing is not None:
        return existing
    attempt = _lock(session, attempt)
    if attempt.status != rules.SUCCEEDED or attempt.payment_id is None or not attempt.gateway_id:
        session.rollback()
        raise DomainError("Only a completed online payment can be refunded.")
    if has_open_dispute(session, attempt):
        session.rollback()
        raise DomainError("This payment is disputed: the card network decides where the money goes. "
                          "Respond to the dispute instead of refunding.")
    if amount_cents <= 0:
        session.rollback()
        raise InvalidAmount("A refund must be more than zero.")
    room = refundable(session, attempt)
    if amount_cents > room.left_cents:
        session.rollback()
        raise InvalidAmount("That is more than is left to refund on this payment.")
    row = GatewayRefund(
        attempt_id=attempt.id, amount_cents=amount_cents, status="requested", source="portal",
        surcharge_cents=rules.surcharge_refund_cents(
            surcharge_cents=attempt.surcharge_cents, base_cents=attempt.amount_cents,
            refunded_before=_gateway_refunded_base(session, attempt), refunding=amount_cents),
        reason=reason.strip(), form_nonce=form_nonce, requested_by_id=staff.id if staff else None, created_at=now(),
    )
    row, new = commit_with_key(session, row, "portal-refund", lambda: session.scalar(
        select(GatewayRefund).where(GatewayRefund.form_nonce == form_nonce)))
    return send_refund(session, gateway, row) if new else row


def send_refund(session: Session, gateway: PaymentGateway, row: GatewayRefund) -> GatewayRefund:
    """Call the gateway for a refund row (first time, or again after an unknown outcome: same key)."""
    try:
        result = gateway.refund(idempotency_key=row.idempotency_key or "", gateway_id=row.attempt.gateway_id or "",
                                amount_cents=row.gateway_cents)
    except GatewayUnavailable as e:
        row.status = "unknown"
        session.commit()
        raise RefundOutcomeUnknown("The payment service did not answer, so the refund may or may not have gone "
                                   "out. `portal payments reconcile` will find out; do not refund again.") from e
    except GatewayRequestError as e:
        row.status, row.error = "failed", str(e)
        session.commit()
        raise DomainError(f"The payment service refused the refund: {e}") from e
    row.gateway_refund_id = result.refund_id
    row.status = result.status if result.status in ("succeeded", "pending", "failed") else "pending"
    if row.status != "failed":
        _book(session, row, reason=row.reason or "Refunded online", status=row.status, ref=result.refund_id)
    session.commit()
    return row


def _book(session: Session, row: GatewayRefund, *, reason: str, status: str, ref: str) -> None:
    """Put a gateway refund on the ledger: the money leaves the payment, invoices it paid reopen."""
    payment = payment_of(session, row.attempt)
    if payment is None or row.amount_cents <= 0 or row.refund_id is not None:
        return
    ledger_status = "succeeded" if status == "succeeded" else "pending"
    refund_row = ledger_payments.refund_payment(session, payment, amount_cents=row.amount_cents, reason=reason,
                                                status=ledger_status, gateway_ref=ref[:100], commit=False)
    row.refund_id = refund_row.id


# --- told by the gateway ------------------------------------------------------------------------------------------

def attempt_for_gateway_id(session: Session, gateway_id: str | None) -> ChargeAttempt | None:
    if not gateway_id:
        return None
    return session.scalar(select(ChargeAttempt).where(ChargeAttempt.gateway_id == gateway_id))


def record_gateway_refund(session: Session, update: RefundUpdate) -> str:
    """``charge.refunded``: the cumulative amount refunded. Anything beyond the refunds we sent was made in the
    gateway's dashboard; it is put on the ledger here so the books match the bank."""
    attempt = attempt_for_gateway_id(session, update.payment_intent_id)
    if attempt is None:
        return "ignored: not a portal payment"
    attempt = _lock(session, attempt)
    known = session.scalars(select(GatewayRefund).where(GatewayRefund.attempt_id == attempt.id,
                                                        GatewayRefund.status.in_(LIVE_REFUND_STATUSES))).all()
    known_gateway_cents = sum(r.gateway_cents for r in known)
    extra = update.amount_refunded_cents - known_gateway_cents
    if extra <= 0:
        session.commit()
        return "no change: refunds already recorded"
    base_total = rules.base_part_of_charge(charged_cents=attempt.charged_cents, base_cents=attempt.amount_cents,
                                           gateway_cents=update.amount_refunded_cents)
    base = max(0, min(base_total - sum(r.amount_cents for r in known), refundable(session, attempt).left_cents))
    row = GatewayRefund(attempt_id=attempt.id, amount_cents=base, surcharge_cents=extra - base, status="succeeded",
                        source="gateway", reason="Refunded in the payment service's dashboard", created_at=now())
    session.add(row)
    session.flush()
    _book(session, row, reason=row.reason, status="succeeded", ref=update.charge_id)
    session.commit()
    return f"recorded a dashboard refund of {extra} cents"


def record_dispute(session: Session, update: DisputeUpdate) -> str:
    """``charge.dispute.*``: keep the dispute's latest state. When the MSP loses, the money is gone for good: the
    ledger reverses it like a refund (the invoices it paid reopen). Winning changes nothing."""
    attempt = attempt_for_gateway_id(session, update.payment_intent_id)
    if attempt is None:
        return "ignored: not a portal payment"
    attempt = _lock(session, attempt)
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
    if dispute.status == "lost" and dispute.reversal_refund_id is None and payment is not None:
        base = rules.base_part_of_charge(charged_cents=attempt.charged_cents, base_cents=attempt.amount_cents,
                                         gateway_cents=dispute.amount_cents)
        base = min(base, refundable(session, attempt).left_cents)
        if base > 0:
            reversal = ledger_payments.refund_payment(
                session, payment, amount_cents=base, reason=f"Dispute lost ({dispute.reason or 'no reason'})",
                gateway_ref=dispute.dispute_id[:100], commit=False)
            dispute.reversal_refund_id = reversal.id
    session.commit()
    return f"dispute {dispute.status}"
