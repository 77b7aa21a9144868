"""The collections steps of `portal run-due` (listed in services/due.py STEPS): promises first, so a promise broken
today lets its invoices' reminders resume in the same run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import promises, reminders

if TYPE_CHECKING:
    from ..due import DueContext


def settle_promises(ctx: DueContext) -> None:
    """Open promises paid since they were made are kept; those whose date passed unpaid are broken."""
    promises.settle(ctx.session, ctx.today)


def send_reminders(ctx: DueContext) -> None:
    result = reminders.send_due(ctx.session, ctx.rt, ctx.today)
    ctx.report.notices += result.sent
    ctx.report.problems.extend(result.problems)
    ctx.report.problems.extend(f"reminder not sent (retried next run): {n} invoice(s)" for n in
                               ([result.failed] if result.failed else []))
