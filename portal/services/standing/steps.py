"""The run-due steps of this area (listed in services/due.py STEPS): standing changes, then webhook deliveries.

They take run-due's context (``ctx.session``, ``ctx.today``, ``ctx.report``) without importing services.due, which
imports them."""

from __future__ import annotations

import logging

from .. import leases, outbound_webhooks
from .changes import record_changes

log = logging.getLogger(__name__)
STANDING_STEP = "standing changes"  # the step's name in STEPS, which is also its lease's name


def standing_changes(ctx) -> None:
    """Recompute every client's standing; record each change and announce it once (standing.changed).

    Runs under the step's lease (one node at a time) and lets go when done, so the next run, on any node, recomputes
    at once: a hold must lift on the run after the payment settles, not when a lease expires."""
    try:
        changes = record_changes(ctx.session, ctx.today)
    finally:
        ctx.session.rollback()
        leases.release(ctx.session, STANDING_STEP, ctx.node)
    if changes:
        log.info("run-due: %d standing changes", len(changes))


def webhook_deliveries(ctx) -> None:
    """Announce facts not announced yet (payments, signatures, defaulted plans), then send what is due. A slow or
    failing receiver costs at most its timeout per try, within the step's time budget; it is tried again later."""
    outbound_webhooks.discover(ctx.session)
    report = outbound_webhooks.deliver_due(ctx.session)
    if report.delivered or report.failed or report.left:
        log.info("run-due: webhooks %d delivered, %d failed tries, %d left for the next run",
                 report.delivered, report.failed, report.left)
