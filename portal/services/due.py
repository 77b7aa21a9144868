"""`portal run-due`: everything time-driven, in order, the one cron entry. Cron runs it every few minutes on any
number of nodes at once.

Each step is idempotent and safe beside the same step on another node: it claims its work row by row (locks, unique
rows, stamps) or, when it has no row to claim, holds a lease (``DueLease``) so only one node runs it at a time. A
step that fails is logged in the run's problems and the next step still runs. Adding a step is one line in STEPS.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain.terms import TERMS
from portal.models import DueRun, DueRunSkip

from . import due_log, leases, terms
from .agreements import SYSTEM, remind_outstanding
from .autopay import incentives
from .collections import due_steps as collections
from .collections.figures import run_step as dashboard_figures
from .collections.forecast import run_snapshot_step as forecast_snapshot
from .locking import begin_write
from .payments import autopay_declines, autopay_notices, reconcile
from .payments.autopay_charging import DATABASE_TURNS, ChargeReport, OpenSession, charge_due
from .payments.rate_limit import DEFAULT_RATE_PER_SECOND
from .payments.reconciliation import GRACE
from .plans import charging as plan_charging
from .plans import lifecycle as plan_lifecycle
from .runtime import Runtime
from .standing.steps import standing_changes, webhook_deliveries

log = logging.getLogger(__name__)


@dataclass
class DueContext:
    session: Session
    rt: Runtime
    today: date
    open_session: OpenSession  # a fresh session for each worker thread
    node: str
    grace: timedelta
    report: DueReport
    on_progress: Callable[[str, int, int], None] | None = None

    @property
    def rate(self) -> float:
        return float(self.rt.config.get("GATEWAY_RATE_LIMIT") or DEFAULT_RATE_PER_SECOND)


@dataclass
class DueReport:
    charged: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    skipped: int = 0
    notices: int = 0
    settled: int = 0
    skips: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    run_id: int | None = None

    @property
    def needs_attention(self) -> bool:
        return bool(self.problems)

    def summary(self) -> str:
        return (f"run-due: {self.charged} charged ({self.succeeded} succeeded, {self.failed} failed, "
                f"{self.pending} pending), {self.skipped} skipped, {self.settled} settled, {self.notices} emails, "
                f"{len(self.problems)} problems")


# --- the steps -------------------------------------------------------------------------------------------------------

def settle_payments(ctx: DueContext) -> None:
    """Pending ACH debits, unknown outcomes (replayed with their key), missed webhooks: `payments reconcile`."""
    result = reconcile(ctx.session, ctx.rt, grace=ctx.grace)
    ctx.report.settled += result.settled
    ctx.report.problems.extend(result.problems)


def autopay_outcomes(ctx: DueContext) -> None:
    """Declines learnt since the last run (ACH returns): block, retry or notify, once."""
    autopay_declines.handle_outcomes(ctx.session, ctx.rt)


def autopay_charges(ctx: DueContext) -> None:
    progress = (lambda n, total: ctx.on_progress("autopay", n, total)) if ctx.on_progress else None
    result: ChargeReport = charge_due(ctx.session, ctx.rt, ctx.today, open_session=ctx.open_session,
                                      rate=ctx.rate, node=ctx.node, lease_seconds=ctx.grace.total_seconds(),
                                      database_threads=ctx.rt.config.get("RUN_DUE_DATABASE_THREADS") or DATABASE_TURNS,
                                      on_progress=progress)
    from portal.domain import payments as rules

    ctx.report.charged += result.charged
    ctx.report.succeeded += result.outcomes[rules.SUCCEEDED]
    ctx.report.failed += result.outcomes[rules.FAILED] + result.outcomes[rules.CANCELED]
    ctx.report.pending += result.charged - (result.outcomes[rules.SUCCEEDED] + result.outcomes[rules.FAILED]
                                            + result.outcomes[rules.CANCELED])
    ctx.report.skipped += len(result.skips)
    ctx.report.skips.extend(result.skips)
    ctx.report.problems.extend(result.problems)


def plan_installments(ctx: DueContext) -> None:
    """Installments (and unpaid down payments) due today or in retry, charged on the client's saved method."""
    from portal.domain import payments as rules

    result = plan_charging.charge_due(ctx.session, ctx.rt, ctx.today)
    ctx.report.charged += result.charged
    ctx.report.succeeded += result.outcomes[rules.SUCCEEDED]
    ctx.report.failed += result.outcomes[rules.FAILED] + result.outcomes[rules.CANCELED]
    ctx.report.pending += result.charged - (result.outcomes[rules.SUCCEEDED] + result.outcomes[rules.FAILED]
                                            + result.outcomes[rules.CANCELED])
    ctx.report.problems.extend(result.problems)


def plan_completion(ctx: DueContext) -> None:
    ctx.report.notices += plan_lifecycle.complete_done(ctx.session, ctx.rt, ctx.today).notices


def plan_defaults(ctx: DueContext) -> None:
    """An installment unpaid past its grace days ends the plan; the client and the MSP are told once."""
    ctx.report.notices += plan_lifecycle.default_missed(ctx.session, ctx.rt, ctx.today).notices


def plan_reminders(ctx: DueContext) -> None:
    """Clients with no saved method: a pay link a few days before each installment, once."""
    ctx.report.notices += plan_lifecycle.send_reminders(ctx.session, ctx.rt, ctx.today)


def incentive_stops(ctx: DueContext) -> None:
    """Clients whose autopay incentive stopped (the method kept failing, they left autopay) are told once."""
    ctx.report.notices += incentives.send_stop_notices(ctx.session, ctx.rt)


def pre_charge_notices(ctx: DueContext) -> None:
    ctx.report.notices += autopay_notices.send_pre_charge_notices(ctx.session, ctx.rt, ctx.today)


def expiring_cards(ctx: DueContext) -> None:
    ctx.report.notices += autopay_notices.email_expiring_cards(ctx.session, ctx.rt, ctx.today)


def late_fees(ctx: DueContext) -> None:
    """Each late invoice's fee for its current period, as the client's signed terms say, once."""
    from .collections.late_fees import charge_late_fees

    run = charge_late_fees(ctx.session, ctx.today)
    ctx.report.skips.extend(run.skipped)


def terms_reminders(ctx: DueContext) -> None:
    """Clients that have not signed the current payment terms (each reminded at most every few days)."""
    if terms.current_version(ctx.session, TERMS) is None:
        return  # nothing published, nothing to sign
    ctx.report.notices += remind_outstanding(ctx.session, ctx.rt, meta=SYSTEM).sent


def orders_cleared(ctx: DueContext) -> None:
    """Equipment orders whose deposit invoice got paid other than online (a check, credit): cleared to order."""
    from .enforcement.orders import clear_all_settled

    clear_all_settled(ctx.session)


def run_log_pruned(ctx: DueContext) -> None:
    """Runs older than a week that did nothing leave the run log (see due_log.QUIET_RUNS_KEPT)."""
    due_log.prune_quiet_runs(ctx.session, before=now() - due_log.QUIET_RUNS_KEPT)


def notices_withdrawn(ctx: DueContext) -> None:
    """Live remote-disable/recovery notices whose overdue balance is paid (settled money) are withdrawn; the client
    is told once."""
    from .enforcement.notices import withdraw_paid

    ctx.report.notices += withdraw_paid(ctx.session, ctx.rt, on=ctx.today)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[DueContext], None]
    #: Steps with no row to claim per item run on one node at a time, under a lease of this many minutes.
    lease_minutes: int | None = None


STEPS: tuple[Step, ...] = (
    Step("settle payments", settle_payments),
    Step("orders cleared", orders_cleared),  # after payments settle: a deposit paid by a settled debit counts
    Step("autopay outcomes", autopay_outcomes),
    Step("autopay charges", autopay_charges),
    Step("autopay outcomes", autopay_outcomes),  # outcomes of the charges just made that were not handled inline
    Step("plan installments", plan_installments),
    Step("plan completion", plan_completion),
    Step("plan defaults", plan_defaults),
    Step("plan reminders", plan_reminders),
    Step("incentive stops", incentive_stops),
    Step("pre-charge notices", pre_charge_notices),
    Step("expiring cards", expiring_cards),
    Step("late fees", late_fees),
    Step("terms reminders", terms_reminders, lease_minutes=30),
    Step("promises", collections.settle_promises),  # before reminders: a promise broken today resumes them
    Step("reminders", collections.send_reminders),
    Step("notices withdrawn", notices_withdrawn),  # after payments settle: only settled money withdraws
    Step("standing changes", standing_changes, lease_minutes=10),  # after payments settle: lifts count
    Step("webhook deliveries", webhook_deliveries),
    Step("forecast snapshot", forecast_snapshot),  # once a day (unique per day): compared with receipts a month on
    Step("dashboard figures", dashboard_figures, lease_minutes=30),  # hourly: the page reads them, never computes
    Step("run log pruned", run_log_pruned),
)


# --- running them ----------------------------------------------------------------------------------------------------

def node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_due(session: Session, rt: Runtime, *, open_session: OpenSession, grace: timedelta = GRACE,
            steps: tuple[Step, ...] = STEPS, on_step: Callable[[str], None] | None = None,
            on_progress: Callable[[str, int, int], None] | None = None) -> DueReport:
    report = DueReport()
    node = node_name()
    run = DueRun(node=node, started_at=now())
    session.add(run)
    session.commit()
    report.run_id = run.id
    ctx = DueContext(session=session, rt=rt, today=today(), open_session=open_session, node=node, grace=grace,
                     report=report, on_progress=on_progress)
    for step in steps:
        if on_step:
            on_step(step.name)
        if step.lease_minutes is not None and not take_lease(session, step.name, node, step.lease_minutes):
            continue
        try:
            step.run(ctx)
        except Exception as e:  # one broken step must not stop the others (a bad email must not stop charging)
            session.rollback()
            log.exception("run-due: step %r failed", step.name)
            report.problems.append(f"{step.name}: {type(e).__name__}: {e}")
    _finish(session, run, report)
    log.info(report.summary())
    return report


def _finish(session: Session, run: DueRun, report: DueReport) -> None:
    session.rollback()
    # the write lock first: on SQLite a read transaction that then writes fails at once ("database is locked", no
    # busy wait) when another process committed since it began, which other `run-due` processes do all the time
    begin_write(session)
    run = session.get(DueRun, run.id, populate_existing=True)
    run.finished_at = now()
    for name in ("charged", "succeeded", "failed", "pending", "skipped", "notices", "settled"):
        setattr(run, name, getattr(report, name))
    run.problems = "\n".join(report.problems)[:20_000]
    session.add_all(DueRunSkip(run_id=run.id, invoice_id=invoice_id, reason=str(reason)[:40])
                    for invoice_id, reason in report.skips)
    session.commit()


def take_lease(session: Session, name: str, holder: str, minutes: int) -> bool:
    """True when this node may run the step now (no other node holds an unexpired lease on it)."""
    return leases.take(session, name, holder, minutes * 60)
