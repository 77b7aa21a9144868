"""``portal payments reconcile``: ask the gateway about everything still unfinished and settle it.

For when a webhook never arrived (endpoint down, misconfigured secret), a request died between the gateway call
and our commit, or an answer was recorded but its booking or email failed (``finish``). Safe to run at any time and
on several nodes: every answer goes through ``apply_result`` (locked, forward-only), every booking checks under
lock that it is still owed, and every repeated call reuses its idempotency key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.gateways.payments import GatewayError
from portal.models import ChargeAttempt, GatewayRefund, Payment

from ..runtime import Runtime
from . import refunds, results
from .charging import replay_charge
from .locks import end_reads

log = logging.getLogger(__name__)

#: An attempt written this recently may still be inside its browser request's gateway call: leave it alone.
GRACE = timedelta(minutes=2)
#: How long a receipt or failure email the client is owed (not sent, refused, or no one to send it to) is tried again
#: by each run. After that the payment history in the portal is where it is: a receipt for a payment weeks old would
#: confuse more than it tells, and a client with no billing contact would otherwise be looked at by every run forever.
OWED_EMAIL_WINDOW = timedelta(days=7)
#: A bank authentication step (3-D Secure) not finished after this long is abandoned: it is canceled so the amount
#: it holds on the invoices is freed and an old browser tab cannot complete it later.
ABANDONED_AFTER = timedelta(hours=1)


@dataclass
class ReconcileReport:
    checked: int = 0
    settled: int = 0  # reached a final state during this run
    changed: int = 0  # any state change
    still_open: int = 0
    problems: list[str] = field(default_factory=list)


def reconcile(session: Session, rt: Runtime, *, grace: timedelta = GRACE,
              on_progress: Callable[[int, int], None] | None = None) -> ReconcileReport:
    gateway = rt.gateway
    report = ReconcileReport()
    cutoff = now() - grace
    ids = session.scalars(
        select(ChargeAttempt.id)
        .where(ChargeAttempt.status.in_(rules.IN_FLIGHT), ChargeAttempt.gateway == gateway.name)
        .order_by(ChargeAttempt.id)
    ).all()
    for n, attempt_id in enumerate(ids, start=1):
        attempt = session.get(ChargeAttempt, attempt_id, populate_existing=True)
        if attempt is None or attempt.status not in rules.IN_FLIGHT:
            continue  # another node settled it meanwhile
        if attempt.gateway_id is None and attempt.created_at > cutoff:
            continue
        report.checked += 1
        before = attempt.status
        try:
            if attempt.gateway_id:
                gateway_id = attempt.gateway_id
                end_reads(session)
                attempt = results.apply_result(session, rt, attempt_id, gateway.retrieve(gateway_id),
                                               source="reconcile")
                if attempt.status == rules.REQUIRES_ACTION and attempt.created_at <= now() - ABANDONED_AFTER:
                    end_reads(session)
                    attempt = results.apply_result(session, rt, attempt_id, gateway.cancel(gateway_id),
                                                   source="reconcile")
            else:
                attempt = replay_charge(session, rt, attempt)
        except GatewayError as e:
            session.rollback()
            report.problems.append(f"charge attempt {attempt_id}: {e}")
            log.warning("reconcile: charge attempt %s: %s", attempt_id, e)
        _count(report, before, attempt.status)
        if on_progress:
            on_progress(n, len(ids))
    _retry_refunds(session, rt, report)
    finish(session, rt, report, grace=grace)
    return report


def finish(session: Session, rt: Runtime, report: ReconcileReport, *, grace: timedelta = GRACE) -> None:
    """Answers already recorded whose booking or email did not happen (the database failed after the gateway's
    answer was saved): book them and send what the client is owed."""
    cutoff = now() - grace
    unbooked = session.scalars(
        select(ChargeAttempt.id).outerjoin(Payment, Payment.id == ChargeAttempt.payment_id)
        .where(ChargeAttempt.status.in_((rules.PROCESSING, rules.SUCCEEDED, rules.FAILED, rules.CANCELED)),
               or_(Payment.id.is_(None) & ChargeAttempt.status.in_((rules.PROCESSING, rules.SUCCEEDED)),
                   Payment.status != ChargeAttempt.status))
        .order_by(ChargeAttempt.id)).all()
    for attempt_id in unbooked:
        report.checked += 1
        if results.book_safely(session, attempt_id):
            report.changed += 1
    unsent = session.scalars(
        select(ChargeAttempt.id).join(Payment, Payment.id == ChargeAttempt.payment_id)
        .where(ChargeAttempt.updated_at <= cutoff, ChargeAttempt.updated_at > now() - OWED_EMAIL_WINDOW,
               Payment.status == ChargeAttempt.status,
               or_((ChargeAttempt.status == rules.SUCCEEDED) & ChargeAttempt.receipt_sent_at.is_(None),
                   (ChargeAttempt.status == rules.FAILED) & ChargeAttempt.failure_notice_sent_at.is_(None)))
        .order_by(ChargeAttempt.id)).all()
    for attempt_id in [*unbooked, *unsent]:
        results.finish_notices(session, rt, attempt_id)
    for row_id in session.scalars(select(GatewayRefund.id).where(
            GatewayRefund.status.in_((rules.GatewayRefundStatus.PENDING, rules.GatewayRefundStatus.SUCCEEDED)),
            GatewayRefund.refund_id.is_(None),
            GatewayRefund.amount_cents > 0).order_by(GatewayRefund.id)).all():
        report.checked += 1
        refunds.book_safely(session, row_id)


def _count(report: ReconcileReport, before: str, after: str) -> None:
    if after != before:
        report.changed += 1
    if after in rules.FINAL and before not in rules.FINAL:
        report.settled += 1
    elif after not in rules.FINAL:
        report.still_open += 1


def _retry_refunds(session: Session, rt: Runtime, report: ReconcileReport) -> None:
    """Refunds whose gateway call ended without an answer: ask again with the same idempotency key."""
    rows = session.scalars(
        select(GatewayRefund).join(ChargeAttempt, ChargeAttempt.id == GatewayRefund.attempt_id)
        .where(GatewayRefund.status.in_((rules.GatewayRefundStatus.REQUESTED, rules.GatewayRefundStatus.UNKNOWN)),
               GatewayRefund.created_at <= now() - GRACE,
               ChargeAttempt.gateway == rt.gateway.name)
        .order_by(GatewayRefund.id)
    ).all()
    for row in rows:
        report.checked += 1
        try:
            refunds.send_refund(session, rt, row)
        except DomainError as e:
            report.problems.append(f"refund {row.id}: {e}")
        else:
            report.changed += 1
