"""``portal payments reconcile``: ask the gateway about everything still unfinished and settle it.

For when a webhook never arrived (endpoint down, misconfigured secret) or a request died between the gateway call
and our commit. Safe to run at any time and on several nodes: every answer goes through ``apply_result`` (locked,
forward-only) and every repeated call reuses its idempotency key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.gateways.payments import GatewayError, PaymentGateway
from portal.models import ChargeAttempt, GatewayRefund

from . import online_payments, online_refunds

log = logging.getLogger(__name__)

#: An attempt written this recently may still be inside its browser request's gateway call: leave it alone.
GRACE = timedelta(minutes=2)
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


def reconcile(session: Session, gateway: PaymentGateway, *, grace: timedelta = GRACE,
              on_progress: Callable[[int, int], None] | None = None) -> ReconcileReport:
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
                attempt = online_payments.apply_result(session, attempt.id, gateway.retrieve(attempt.gateway_id),
                                                       source="reconcile")
                if attempt.status == rules.REQUIRES_ACTION and attempt.created_at <= now() - ABANDONED_AFTER:
                    attempt = online_payments.apply_result(session, attempt.id, gateway.cancel(attempt.gateway_id),
                                                           source="reconcile")
            else:
                attempt = online_payments.replay_charge(session, gateway, attempt)
        except GatewayError as e:
            session.rollback()
            report.problems.append(f"charge attempt {attempt_id}: {e}")
            log.warning("reconcile: charge attempt %s: %s", attempt_id, e)
        _count(report, before, attempt.status)
        if on_progress:
            on_progress(n, len(ids))
    _retry_refunds(session, gateway, report)
    return report


def _count(report: ReconcileReport, before: str, after: str) -> None:
    if after != before:
        report.changed += 1
    if after in rules.FINAL and before not in rules.FINAL:
        report.settled += 1
    elif after not in rules.FINAL:
        report.still_open += 1


def _retry_refunds(session: Session, gateway: PaymentGateway, report: ReconcileReport) -> None:
    """Refunds whose gateway call ended without an answer: ask again with the same idempotency key."""
    rows = session.scalars(
        select(GatewayRefund).join(ChargeAttempt, ChargeAttempt.id == GatewayRefund.attempt_id)
        .where(GatewayRefund.status.in_(("requested", "unknown")), GatewayRefund.created_at <= now() - GRACE,
               ChargeAttempt.gateway == gateway.name)
        .order_by(GatewayRefund.id)
    ).all()
    for row in rows:
        report.checked += 1
        try:
            online_refunds.send_refund(session, gateway, row)
        except DomainError as e:
            report.problems.append(f"refund {row.id}: {e}")
        else:
            report.changed += 1
