"""Money going back on an online payment: refunds sent through the gateway and refunds made in the gateway's own
dashboard. Each ends as a ledger Refund row, so invoices reopen the usual way (disputes: ``disputes.py``).

Like a charge: the GatewayRefund row is committed before the gateway call (its id makes the idempotency key), the
gateway's answer is committed on that row on its own, and only then is the refund put on the ledger, under the lock
order (the client's invoices, then the attempt, then the refund row). A booking that fails is finished by
reconciliation; the knowledge that money went back is never rolled back with it.

Amounts: staff refund *invoice money*; the matching share of any card surcharge goes back with it. What the
gateway reports (refunded totals, dispute amounts) is in charged cents and is split back the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import payments as rules
from portal.domain.errors import DomainError, InvalidAmount
from portal.domain.payments import GatewayRefundStatus, RefundStatus
from portal.gateways.payments import GatewayRequestError, GatewayUnavailable, RefundUpdate
from portal.models import ChargeAttempt, Dispute, GatewayRefund, Refund, StaffUser

from ..idempotency import commit_with_key
from ..locking import begin_write
from ..runtime import Runtime
from .booking import refund_payment
from .locks import client_of_attempt, end_reads, lock_attempt, lock_client_invoices
from .results import payment_of

log = logging.getLogger(__name__)

# may have sent (or did send) money back
LIVE_REFUND_STATUSES = (GatewayRefundStatus.REQUESTED, GatewayRefundStatus.UNKNOWN, GatewayRefundStatus.PENDING,
                        GatewayRefundStatus.SUCCEEDED)


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
                              .where(Refund.payment_id == payment.id, Refund.status != RefundStatus.FAILED))
    in_progress = session.scalar(select(func.coalesce(func.sum(GatewayRefund.amount_cents), 0)).where(
        GatewayRefund.attempt_id == attempt.id, GatewayRefund.refund_id.is_(None),
        GatewayRefund.status.in_(LIVE_REFUND_STATUSES)))
    return Refundable(payment.amount_cents, int(refunded), int(in_progress))


def _gateway_refunded_base(session: Session, attempt: ChargeAttempt) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(GatewayRefund.amount_cents), 0)).where(
        GatewayRefund.attempt_id == attempt.id, GatewayRefund.status.in_(LIVE_REFUND_STATUSES))))


def lock_for_money_back(session: Session, attempt_id: int) -> ChargeAttempt:
    """Begin a write transaction and take its locks in the one order: the client's invoices, then the attempt."""
    begin_write(session)
    lock_client_invoices(session, client_of_attempt(session, attempt_id))
    return lock_attempt(session, attempt_id)


def refunds_of(session: Session, attempt: ChargeAttempt) -> list[GatewayRefund]:
    return list(session.scalars(select(GatewayRefund).where(GatewayRefund.attempt_id == attempt.id)
                                .order_by(GatewayRefund.id)))


def has_open_dispute(session: Session, attempt: ChargeAttempt) -> bool:
    disputes = session.scalars(select(Dispute.status).where(Dispute.attempt_id == attempt.id))
    return any(rules.is_open_dispute(status) for status in disputes)


def refund(session: Session, rt: Runtime, attempt: ChargeAttempt, *, amount_cents: int, reason: str,
           staff: StaffUser | None, form_nonce: str) -> GatewayRefund:
    """Send invoice money (and its share of the surcharge) back to the client's card or bank account.

    Submitting the same form twice (same ``form_nonce``) returns the first refund instead of refunding again.
    """
    existing = session.scalar(select(GatewayRefund).where(GatewayRefund.form_nonce == form_nonce))
    if existing is not None:
        return existing
    if amount_cents <= 0:
        raise InvalidAmount("A refund must be more than zero.")
    attempt = lock_for_money_back(session, attempt.id)
    if attempt.status != rules.SUCCEEDED or attempt.payment_id is None or not attempt.gateway_id:
        session.rollback()
        raise DomainError("Only a completed online payment can be refunded.")
    if has_open_dispute(session, attempt):
        session.rollback()
        raise DomainError("This payment is disputed: the card network decides where the money goes. "
                          "Respond to the dispute instead of refunding.")
    room = refundable(session, attempt)
    if amount_cents > room.left_cents:
        session.rollback()
        raise InvalidAmount("That is more than is left to refund on this payment.")
    row = GatewayRefund(
        attempt_id=attempt.id, amount_cents=amount_cents, status=GatewayRefundStatus.REQUESTED, source="portal",
        surcharge_cents=rules.surcharge_refund_cents(
            surcharge_cents=attempt.surcharge_cents, base_cents=attempt.amount_cents,
            refunded_before=_gateway_refunded_base(session, attempt), refunding=amount_cents),
        reason=reason.strip(), form_nonce=form_nonce, requested_by_id=staff.id if staff else None, created_at=now(),
    )
    row, new = commit_with_key(session, row, "portal-refund", lambda: session.scalar(
        select(GatewayRefund).where(GatewayRefund.form_nonce == form_nonce)))
    return send_refund(session, rt, row) if new else row


def send_refund(session: Session, rt: Runtime, row: GatewayRefund) -> GatewayRefund:
    """Call the gateway for a refund row (first time, or again after an unknown outcome: same key), record its
    answer, then put it on the ledger."""
    row_id, key, cents = row.id, row.idempotency_key or "", row.gateway_cents
    gateway_id = session.scalar(select(ChargeAttempt.gateway_id).where(ChargeAttempt.id == row.attempt_id)) or ""
    end_reads(session)
    try:
        result = rt.gateway.refund(idempotency_key=key, gateway_id=gateway_id, amount_cents=cents)
    except GatewayUnavailable as e:
        _record(session, row_id, status=GatewayRefundStatus.UNKNOWN)
        raise RefundOutcomeUnknown("The payment service did not answer, so the refund may or may not have gone "
                                   "out. `portal payments reconcile` will find out; do not refund again.") from e
    except GatewayRequestError as e:
        _record(session, row_id, status=GatewayRefundStatus.FAILED, error=str(e))
        raise DomainError(f"The payment service refused the refund: {e}") from e
    status = rules.gateway_refund_status_for(result.status)
    row = _record(session, row_id, status=status, gateway_refund_id=result.refund_id)
    if status != GatewayRefundStatus.FAILED:
        book_safely(session, row_id)
    session.refresh(row)
    return row


def _record(session: Session, row_id: int, *, status: GatewayRefundStatus, error: str | None = None,
            gateway_refund_id: str | None = None) -> GatewayRefund:
    """The gateway's answer about a refund, committed on its own before any booking."""
    begin_write(session)
    row = session.get(GatewayRefund, row_id, with_for_update=True, populate_existing=True)
    assert row is not None
    row.status = status
    if error is not None:
        row.error = error
    if gateway_refund_id:
        row.gateway_refund_id = gateway_refund_id
    session.commit()
    return row


def needs_booking(row: GatewayRefund) -> bool:
    return (row.status in (GatewayRefundStatus.PENDING, GatewayRefundStatus.SUCCEEDED) and row.refund_id is None
            and row.amount_cents > 0)


def book_safely(session: Session, row_id: int) -> None:
    try:
        book(session, row_id)
    except (SQLAlchemyError, DomainError):
        session.rollback()
        log.exception("gateway refund %s: recorded but not booked yet; `portal payments reconcile` will finish it",
                      row_id)


def book(session: Session, row_id: int) -> None:
    """Put a gateway refund on the ledger (once): the money leaves the payment, invoices it paid reopen."""
    attempt_id = session.scalar(select(GatewayRefund.attempt_id).where(GatewayRefund.id == row_id))
    assert attempt_id is not None
    lock_for_money_back(session, attempt_id)
    row = session.get(GatewayRefund, row_id, with_for_update=True, populate_existing=True)
    assert row is not None
    if needs_booking(row):
        _book(session, row, reason=row.reason or "Refunded online", status=row.status,
              ref=row.gateway_refund_id or "")
    session.commit()


def _book(session: Session, row: GatewayRefund, *, reason: str, status: str, ref: str) -> None:
    payment = payment_of(session, row.attempt)
    if payment is None or row.amount_cents <= 0 or row.refund_id is not None:
        return
    ledger_status = RefundStatus.SUCCEEDED if status == GatewayRefundStatus.SUCCEEDED else RefundStatus.PENDING
    refund_row = refund_payment(session, payment, amount_cents=row.amount_cents, reason=reason,
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
    attempt = lock_for_money_back(session, attempt.id)
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
    row = GatewayRefund(attempt_id=attempt.id, amount_cents=base, surcharge_cents=extra - base,
                        status=GatewayRefundStatus.SUCCEEDED,
                        source="gateway", reason="Refunded in the payment service's dashboard", created_at=now())
    session.add(row)
    session.flush()
    _book(session, row, reason=row.reason, status=GatewayRefundStatus.SUCCEEDED, ref=update.charge_id)
    session.commit()
    return f"recorded a dashboard refund of {extra} cents"
