"""What happens after an autopay charge ends: nothing when it paid; after a decline, the consequences, once.

Hard (a lost card, a closed account, an ACH return other than R01/R09): the method is blocked for autopay, so the
next round charges the client's fallback method if there is one. Soft (insufficient funds, an issuer outage): the
same method is retried on the MSP's schedule (``plan_client`` asks ``declines.next_retry``), then autopay stops.
``authentication_required``: no unattended retry can succeed; the client gets a link to approve the payment.
Every failure emails the client what happened, what happens next and a link to update the method; the incentive
stops when the method keeps failing.

``handle`` runs right after a charge; ``handle_outcomes`` (a `run-due` step) catches outcomes learnt later, such as
an ACH debit returned days after it was sent. Both mark the AutopayCharge handled in the same transaction that
applies the consequences, under its row lock, so two nodes never handle one twice. (The autopay discount needs no
reversal: it is booked only when the money arrives, see autopay_discount.py.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import autopay as policy
from portal.domain import declines
from portal.domain import payments as rules
from portal.domain.autopay import SavedMethodStatus
from portal.models import AutopayCharge, ChargeAttempt, SavedPaymentMethod

from ..autopay import incentives
from ..locking import begin_write
from ..runtime import Runtime
from . import autopay_confirm, autopay_mail
from .locks import lock_client_invoices

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Handled:
    charge_id: int
    decline: declines.Decline | None  # None: it paid
    incentive_stop: policy.IncentiveStop | None = None


def handle(session: Session, rt: Runtime, charge_id: int) -> Handled | None:
    """Apply the consequences of one ended autopay charge; None when it has not ended or was handled already."""
    client_id = session.scalar(select(AutopayCharge.client_id).where(AutopayCharge.id == charge_id))
    if client_id is None:
        return None
    begin_write(session)
    lock_client_invoices(session, client_id)  # the lock order: invoices first (a discount reversal changes them)
    row = session.get(AutopayCharge, charge_id, with_for_update=True, populate_existing=True)
    attempt = session.get(ChargeAttempt, row.attempt_id, populate_existing=True) if row else None
    if row is None or attempt is None or row.handled_at is not None or attempt.status not in rules.FINAL:
        session.rollback()
        return None
    row.handled_at = now()
    if attempt.status == rules.SUCCEEDED:
        session.commit()
        return Handled(charge_id, None)
    decline = declines.classify(method_type=row.method_type, failure_code=attempt.failure_code,
                                decline_code=attempt.decline_code)
    row.decline_class, row.decline_code = decline.kind, decline.code[:100]
    if decline.stops_method:
        block_method(session, row.client_id, row.method_id, decline)
    session.commit()
    stop = _stop_incentive_if_failing(session, rt, client_id)
    autopay_mail.send_decline(session, rt, row.id, decline, confirm_url=_confirm_url(rt, row, decline))
    return Handled(charge_id, decline, stop)


def handle_outcomes(session: Session, rt: Runtime) -> int:
    """Every ended autopay charge not handled yet (a bank debit returned, a charge whose run was killed)."""
    ids = session.scalars(
        select(AutopayCharge.id).join(ChargeAttempt, ChargeAttempt.id == AutopayCharge.attempt_id)
        .where(AutopayCharge.handled_at.is_(None), ChargeAttempt.status.in_(rules.FINAL))
        .order_by(AutopayCharge.id)).all()
    return sum(1 for charge_id in ids if handle(session, rt, charge_id) is not None)


def block_method(session: Session, client_id: int, method_id: str, decline: declines.Decline) -> None:
    """A hard decline retires the method for unattended charges (autopay's and a plan's installments alike)."""
    method = session.scalar(select(SavedPaymentMethod).where(
        SavedPaymentMethod.client_id == client_id, SavedPaymentMethod.method_id == method_id,
        SavedPaymentMethod.status == SavedMethodStatus.ACTIVE).with_for_update())
    if method is not None:
        method.status, method.blocked_code = SavedMethodStatus.BLOCKED, decline.code[:40]


def _stop_incentive_if_failing(session: Session, rt: Runtime, client_id: int) -> policy.IncentiveStop | None:
    from .autopay_setup import enrolled_clients

    setups = enrolled_clients(session, rt.gateway.name, client_ids=[client_id])
    if not setups or setups[0].incentive is None:
        session.rollback()
        return None
    paid = [status == rules.SUCCEEDED for status in session.scalars(
        select(ChargeAttempt.status).join(AutopayCharge, AutopayCharge.attempt_id == ChargeAttempt.id)
        .where(AutopayCharge.client_id == client_id, AutopayCharge.handled_at.is_not(None))
        .order_by(AutopayCharge.id))]
    stop = policy.incentive_stop(setups[0].incentive, on_autopay=True,
                                 failures_in_a_row=declines.consecutive_failures(paid))
    session.rollback()
    if stop is None:
        return None
    begin_write(session)
    incentives.stop(session, client_id, stop)  # the client is told by incentives.send_stop_notices (a run-due step)
    session.commit()
    return stop


def _confirm_url(rt: Runtime, row: AutopayCharge, decline: declines.Decline) -> str | None:
    if decline.kind is not declines.AUTHENTICATION_REQUIRED:
        return None
    return autopay_confirm.confirm_url(rt, row.request.public_id)
