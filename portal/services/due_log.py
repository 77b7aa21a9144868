"""The admin's log of `portal run-due` runs: each run's counts (charged, succeeded, failed, skipped, emails, settled),
its problems, and for one run the invoices it did not charge and why. Read-only, but for pruning quiet runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portal.domain import autopay as policy
from portal.models import Client, DueRun, DueRunSkip, Invoice

from .locking import begin_write
from .payments.autopay_charging import LOCKED_ELSEWHERE
from .reports import Page, paginate

#: What each skip reason means, in the admin's words.
SKIP_WORDS: dict[str, str] = {
    policy.Skip.NOTHING_OWED: "Nothing owed",
    policy.Skip.PAYMENT_IN_FLIGHT: "A payment is already on its way",
    policy.Skip.DISPUTED: "Disputed",
    policy.Skip.ON_PAYMENT_PLAN: "On a payment plan (its installments are charged instead)",
    policy.Skip.HELD_AS_DUPLICATE: "Held as a likely duplicate bill until the admin confirms it",
    policy.Skip.OVER_CAP: "Over the autopay cap: approve it or leave it to the client",
    policy.Skip.BELOW_GATEWAY_MINIMUM: "Below the card processor's minimum charge",
    policy.Skip.NOT_DUE_YET: "Not due yet",
    policy.Skip.NOTICE_PENDING: "Waiting for the pre-charge notice period",
    policy.Skip.RETRY_SCHEDULED: "Declined; a retry is scheduled",
    policy.Skip.AWAITING_CLIENT: "The bank wants the client to approve it (emailed a link)",
    policy.Skip.GAVE_UP: "Declined; retries used up, the client was told",
    policy.Skip.NO_USABLE_METHOD: "No usable payment method (expired, blocked or unverified)",
    LOCKED_ELSEWHERE: "Being charged by another run at that moment",
}


def skip_words(reason: str) -> str:
    return SKIP_WORDS.get(reason, reason.replace("_", " ").capitalize())


def runs_page(session: Session, *, page: int, per_page: int) -> Page:
    query = select(DueRun).order_by(DueRun.started_at.desc(), DueRun.id.desc())
    found = paginate(session, query, page, per_page)
    return found.with_items([row for (row,) in found.items])


@dataclass(frozen=True)
class SkipLine:
    invoice_id: int
    invoice_number: str
    client_name: str
    reason: str
    words: str


@dataclass(frozen=True)
class RunDetail:
    run: DueRun
    skips: list[SkipLine]
    reasons: Counter[str]  # reason -> invoices

    @property
    def problems(self) -> list[str]:
        return [line for line in self.run.problems.splitlines() if line.strip()]


def run_detail(session: Session, run_id: int) -> RunDetail | None:
    run = session.get(DueRun, run_id)
    if run is None:
        return None
    lines = [SkipLine(invoice_id, number, client, reason, skip_words(reason)) for invoice_id, number, client, reason
             in session.execute(select(DueRunSkip.invoice_id, Invoice.number, Client.legal_name, DueRunSkip.reason)
                                .join(Invoice, Invoice.id == DueRunSkip.invoice_id)
                                .join(Client, Client.id == Invoice.client_id)
                                .where(DueRunSkip.run_id == run_id).order_by(DueRunSkip.id))]
    return RunDetail(run, lines, Counter(line.reason for line in lines))


#: Runs that did nothing (no charge, settlement, email or problem) are kept this long: enough to see that cron runs
#: and what the recent runs skipped. Cron runs `run-due` every few minutes, each run writing a skip row per invoice
#: that waits (over the cap, given up, disputed...): kept for ever, that is ~100,000 runs and millions of identical
#: skip rows a year. A run that did something is kept.
QUIET_RUNS_KEPT = timedelta(days=7)
_PRUNE_BATCH = 500


def prune_quiet_runs(session: Session, *, before: datetime) -> int:
    """Delete finished runs started before ``before`` that did nothing, with their skips, a batch per transaction
    (the first prune of an old installation deletes many). Safe beside another node pruning the same runs."""
    quiet = (select(DueRun.id)
             .where(DueRun.started_at < before, DueRun.finished_at.is_not(None), DueRun.charged == 0,
                    DueRun.settled == 0, DueRun.notices == 0, DueRun.problems == "")
             .order_by(DueRun.id).limit(_PRUNE_BATCH))
    pruned = 0
    while True:
        begin_write(session)
        ids = session.scalars(quiet).all()
        if ids:
            session.execute(delete(DueRunSkip).where(DueRunSkip.run_id.in_(ids)))
            pruned += session.execute(delete(DueRun).where(DueRun.id.in_(ids))).rowcount
        session.commit()
        if len(ids) < _PRUNE_BATCH:
            return pruned
