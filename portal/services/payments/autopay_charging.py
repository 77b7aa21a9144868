"""Autopay charging: what is due today is charged once, on the client's saved method, with the client away.

Each charge is a checkout like a client's own (a PaymentRequest for the one invoice and a ChargeAttempt), so booking,
receipts, webhooks and reconciliation handle it unchanged. What autopay adds:

- ``plan_client`` asks the domain (``charge_decision``) about each open invoice of a client on autopay: charge it
  now, or why not (the run log shows the reason).
- ``claim`` writes the request, the attempt (with its idempotency key) and an ``AutopayCharge`` numbered per
  invoice, in one transaction that first locks the client's invoices. On PostgreSQL the lock is taken with
  SKIP LOCKED: a client another `run-due` is charging is left to it, never waited for. The unique (invoice, charge
  number) pair is the last word: of two processes that both decided to charge, one insert fails and that process
  charges nothing. On SQLite ``begin_write`` serialises the claims.
- the gateway call happens after that commit (``charging.send_call``); a process killed before the answer was
  recorded leaves the attempt ``created`` or ``unknown``, which reconciliation replays with the same key, never a new
  charge.
- the outcome is handled at once (``autopay_declines.handle``): a hard decline moves on to the fallback method in the
  same run.

Charges run on several threads (each with its own database session) under the gateway's rate limit; the threads
take turns for their database work and wait for the gateway and the mail relay side by side (``DATABASE_TURNS``).
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import autopay as policy
from portal.domain import declines
from portal.domain import payments as rules
from portal.domain.payments import GATEWAY_MINIMUM_CENTS, AttemptOrigin, PaymentRequestStatus
from portal.models import (
    AutopayCharge,
    AutopayNotice,
    ChargeAttempt,
    Client,
    Invoice,
    PaymentRequest,
    PaymentRequestItem,
    PlanInvoice,
    SavedPaymentMethod,
)

from .. import leases, ledger
from ..autopay import cap_approvals, incentives
from ..collections import duplicates
from ..locking import begin_write
from ..runtime import Runtime
from . import autopay_declines, charging
from .autopay_setup import ClientAutopay, MethodOnFile, enrolled_clients
from .checkout import in_flight_by_invoice
from .locks import end_reads
from .rate_limit import TokenBucket, Turns, run_all, threads_for

log = logging.getLogger(__name__)

OpenSession = Callable[[], AbstractContextManager[Session]]
#: Not a domain Skip: another `run-due` (or the client at checkout) holds this client's invoices right now.
LOCKED_ELSEWHERE = "locked_elsewhere"
PRE_CHARGE = "pre_charge"
#: Skips not worth a line in the run log on every run (most invoices are simply not due yet).
_QUIET = frozenset({policy.Skip.NOT_DUE_YET, policy.Skip.NOTHING_OWED, policy.Skip.ON_PAYMENT_PLAN})


@dataclass(frozen=True)
class InvoicePlan:
    invoice_id: int
    decision: policy.ChargeDecision
    method: MethodOnFile | None
    charge_number: int
    #: its charge date (by the client's schedule) has come: only then is not charging it a skip worth logging; an
    #: invoice over the cap due in three weeks was not skipped by today's run (cron runs every few minutes)
    charge_date_reached: bool

    @property
    def reason(self) -> str | None:
        if self.decision.charge_now and self.method is None:
            return policy.Skip.NO_USABLE_METHOD
        return None if self.decision.charge_now else self.decision.skip


@dataclass
class ChargeReport:
    """What the charging step did, summed over clients (the run log's counts)."""

    charged: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # attempt status -> count
    skips: list[tuple[int, str]] = field(default_factory=list)  # (invoice id, reason)
    problems: list[str] = field(default_factory=list)

    def add(self, other: ChargeReport) -> None:
        self.charged += other.charged
        self.outcomes.update(other.outcomes)
        self.skips.extend(other.skips)
        self.problems.extend(other.problems)


# --- deciding --------------------------------------------------------------------------------------------------------

def plan_client(session: Session, setup: ClientAutopay, today: date, *, lock: bool = False) -> list[InvoicePlan]:
    """Each open invoice of the client and what autopay does with it today."""
    items = ledger.open_items(session, setup.client_id, lock=lock)
    if not items:
        return []
    ids = [item.invoice_id for item in items]
    in_flight = in_flight_by_invoice(session, setup.client_id)
    charges: dict[int, list[tuple[AutopayCharge, str]]] = {}
    for row, status in session.execute(
            select(AutopayCharge, ChargeAttempt.status)
            .join(ChargeAttempt, ChargeAttempt.id == AutopayCharge.attempt_id)
            .where(AutopayCharge.invoice_id.in_(ids)).order_by(AutopayCharge.charge_number)):
        charges.setdefault(row.invoice_id, []).append((row, status))
    noticed = {subject: on for subject, on in session.execute(select(AutopayNotice.subject, AutopayNotice.sent_on)
               .where(AutopayNotice.kind == PRE_CHARGE, AutopayNotice.subject.in_([notice_subject(i) for i in ids])))}
    usable = policy.usable_methods([m.saved for m in setup.methods], setup.rules, today)
    method = setup.method(usable[0].method_id) if usable else None
    # on a current plan (PlanInvoice.current_key): its installments are charged instead (plans.charging), whatever
    # the client's autopay scope; charging the invoice in full would break the plan the client signed
    on_plan = set(session.scalars(select(PlanInvoice.current_key).where(PlanInvoice.current_key.in_(ids))))
    # a client is never charged for the same work twice: a likely duplicate waits for the admin's decision
    held = duplicates.held_ids(session, ids)
    approved_over_cap = cap_approvals.approved_ids(session, ids)
    plans = []
    for item in items:
        reached = setup.rules.schedule.charge_date(item.due_date) <= today
        history = charges.get(item.invoice_id, [])
        number = (history[-1][0].charge_number + 1) if history else 1
        if item.invoice_id in on_plan:
            plans.append(InvoicePlan(item.invoice_id, policy.ChargeDecision(policy.Skip.ON_PAYMENT_PLAN), method,
                                     number, reached))
            continue
        if item.invoice_id in held:
            plans.append(InvoicePlan(item.invoice_id, policy.ChargeDecision(policy.Skip.HELD_AS_DUPLICATE), method,
                                     number, reached))
            continue
        if any(row.handled_at is None and status in rules.FINAL - {rules.SUCCEEDED} for row, status in history):
            # a failure whose consequences have not run yet (a bank return learnt a moment ago): next run
            plans.append(InvoicePlan(item.invoice_id, policy.ChargeDecision(policy.Skip.PAYMENT_IN_FLIGHT), method,
                                     number, reached))
            continue
        if any(status in rules.IN_FLIGHT for _, status in history):
            # its discount is booked only when the money arrives, so the balance alone would show it as payable
            plans.append(InvoicePlan(item.invoice_id, policy.ChargeDecision(policy.Skip.PAYMENT_IN_FLIGHT), method,
                                     number, reached))
            continue
        retry = _retry(history, method, setup.rules.retry_days)
        due_item = policy.DueItem(due_date=item.due_date, balance_cents=item.balance_cents,
                                  in_flight_cents=in_flight.get(item.invoice_id, 0),
                                  approved_over_cap=item.invoice_id in approved_over_cap,
                                  notice_sent_on=noticed.get(notice_subject(item.invoice_id)))
        decision = policy.charge_decision(due_item, setup.rules, today, retry=retry)
        plans.append(InvoicePlan(item.invoice_id, decision, method, number, reached))
    return plans


def _retry(history: list[tuple[AutopayCharge, str]], method: MethodOnFile | None,
           schedule: tuple[int, ...]) -> declines.RetryStep | None:
    """The retry schedule on the method autopay would use now; None when it has not failed on it (a first charge,
    or a fallback taking over after the default was declined for good)."""
    if method is None:
        return None
    failed = [declines.FailedAttempt(row.charged_on, declines.DeclineClass(row.decline_class))
              for row, status in history
              if row.method_id == method.saved.method_id and status in rules.FINAL - {rules.SUCCEEDED}
              and row.decline_class]
    if not failed:
        return None
    return declines.next_retry(failed, schedule, method_type=method.saved.method_type)


def notice_subject(invoice_id: int) -> str:
    return f"invoice:{invoice_id}"


# --- claiming: the rows that make one charge, committed before the gateway is called --------------------------------

@dataclass(frozen=True)
class Claim:
    charge_id: int
    attempt_id: int
    call: charging.ChargeCall
    # the attempt and its request (with its items) as written: held until the answer is booked, so the session's
    # (weak) identity map keeps them and booking reads none of them back (when it did, run-due's speed hung on when
    # Python happened to collect them). The request is held by itself: booking re-reads the attempt's row under its
    # lock (``lock_attempt``), which resets the attempt's link to it
    attempt: ChargeAttempt
    request: PaymentRequest


def claim(session: Session, rt: Runtime, setup: ClientAutopay, invoice_ids: list[int], today: date
          ) -> dict[int, Claim | str] | str:
    """Write the charges of these invoices of one client in one transaction: one lock of the client's invoices, one
    plan under it, every row inserted, one commit. Per invoice its Claim or why not (a Skip reason); LOCKED_ELSEWHERE
    for all of them when another transaction holds the client's invoices or numbered one of the charges first."""
    begin_write(session)
    if not lock_client_invoices_now(session, setup.client_id):
        session.rollback()
        return LOCKED_ELSEWHERE
    plans = {p.invoice_id: p for p in plan_client(session, setup, today)}
    # one query for all of them (the plan keeps no Invoice objects, and the session's identity map holds none)
    invoices = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.id.in_(
        [i for i in invoice_ids if i in plans and plans[i].reason is None])))}
    outcomes: dict[int, Claim | str] = {}
    written: list[tuple[Invoice, PaymentRequest, ChargeAttempt, AutopayCharge]] = []
    client: Client | None = None
    stamp = now()
    for invoice_id in invoice_ids:
        plan = plans.get(invoice_id)
        if plan is None:
            outcomes[invoice_id] = policy.Skip.NOTHING_OWED
            continue
        if plan.reason is not None or plan.method is None or setup.customer_id is None:
            outcomes[invoice_id] = plan.reason or policy.Skip.NO_USABLE_METHOD
            continue
        invoice = invoices.get(invoice_id)
        client = client or session.get(Client, setup.client_id)
        assert invoice is not None and client is not None
        discount = _discount(session, setup, client, invoice, plan.decision.charge_cents)
        amount = plan.decision.charge_cents - discount
        if amount < GATEWAY_MINIMUM_CENTS:
            outcomes[invoice_id] = policy.Skip.BELOW_GATEWAY_MINIMUM
            continue
        method_row = session.get(SavedPaymentMethod, plan.method.row_id)
        assert method_row is not None
        request = PaymentRequest(
            public_id=secrets.token_urlsafe(24), client_id=client.id, contact_id=None, currency=invoice.currency,
            amount_cents=amount, status=PaymentRequestStatus.OPEN, created_at=stamp,
            items=[PaymentRequestItem(invoice_id=invoice.id, amount_cents=amount)],
        )
        attempt = ChargeAttempt(
            request=request, attempt_number=1, gateway=rt.gateway.name, customer_id=setup.customer_id,
            method_token=method_row.method_id, origin=AttemptOrigin.AUTOPAY, status=rules.CREATED,
            method_type=method_row.method_type, card_funding=method_row.card_funding, brand=method_row.brand,
            last4=method_row.last4, amount_cents=amount, surcharge_cents=0, charged_cents=amount,
            currency=invoice.currency, created_at=stamp, updated_at=stamp,
        )
        row = AutopayCharge(
            invoice_id=invoice.id, client_id=client.id, charge_number=plan.charge_number,
            method_id=method_row.method_id, method_type=method_row.method_type, charged_on=today,
            amount_cents=amount, discount_cents=discount, created_at=stamp,
        )
        session.add(attempt)
        written.append((invoice, request, attempt, row))
    if not written:
        session.rollback()
        return outcomes
    try:
        session.flush()  # the requests, their items and the attempts: the attempts' ids make their keys
        for _invoice, request, attempt, row in written:
            attempt.idempotency_key = f"portal-autopay-{attempt.id}-{secrets.token_hex(6)}"
            row.request_id, row.attempt_id = request.id, attempt.id
            session.add(row)
        session.flush()
        calls = [(row, attempt, charging.call_for_invoice(rt, attempt, request, invoice))
                 for invoice, request, attempt, row in written]
        session.commit()
    except IntegrityError:
        session.rollback()  # another process numbered one of these charges first: it charges, we do not
        return LOCKED_ELSEWHERE
    for row, attempt, call in calls:
        outcomes[row.invoice_id] = Claim(row.id, attempt.id, call, attempt, attempt.request)
    return outcomes


def lock_client_invoices_now(session: Session, client_id: int) -> bool:
    """Step 1 of the lock order, without waiting: False when another transaction holds any of them (PostgreSQL).
    On SQLite ``begin_write`` already holds the database's write lock. Also the claim of a plan's installment."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    wanted = session.scalar(select(func.count()).select_from(Invoice).where(Invoice.client_id == client_id))
    got = session.execute(select(Invoice.id).where(Invoice.client_id == client_id)
                          .order_by(Invoice.due_date, Invoice.id).with_for_update(skip_locked=True)).all()
    return len(got) == wanted


def _discount(session: Session, setup: ClientAutopay, client: Client, invoice: Invoice, balance_cents: int) -> int:
    if setup.incentive is None or setup.incentive.kind is not policy.IncentiveKind.DISCOUNT:
        return 0
    return incentives.discount_for(session, client, invoice, balance_cents)


# --- charging ------------------------------------------------------------------------------------------------------

def charge_client(open_session: OpenSession, rt: Runtime, client_id: int, today: date,
                  bucket: TokenBucket, turns: Turns, *, holder: str = "",
                  lease_seconds: float = 0) -> ChargeReport:
    """Everything due for one client, in one thread with its own session. A hard decline on the default method
    retires it, so the next round charges the fallback the same day.

    With ``lease_seconds``, the client is charged by one process at a time: a process that finds another one's
    lease leaves the client to it (whose rounds charge everything due), instead of both skipping invoices the other
    holds locked at that instant. A process killed mid-client lets go when the lease expires (the same grace after
    which its unanswered charges are replayed).

    ``turns``: the thread does its database work only while it holds one (``DATABASE_TURNS``), and gives it back
    while it waits for the rate limit, the gateway and the mail relay."""
    report = ChargeReport()
    lease = f"autopay-client:{client_id}"
    with turns.held(), open_session() as session:
        try:
            if lease_seconds > 0 and not leases.take(session, lease, holder, lease_seconds):
                return report
            try:
                _charge_rounds(session, rt, client_id, today, bucket, report)
            finally:
                if lease_seconds > 0:
                    session.rollback()
                    leases.release(session, lease, holder)
        except Exception as e:  # one client's failure must not stop the others; the run log says what happened
            session.rollback()
            log.exception("autopay: client %s", client_id)
            report.problems.append(f"client {client_id}: {type(e).__name__}: {e}")
    return report


def _charge_rounds(session: Session, rt: Runtime, client_id: int, today: date, bucket: TokenBucket,
                   report: ChargeReport) -> None:
    charged_numbers: set[tuple[int, int]] = set()
    for round_ in range(3):  # default, fallback, and one spare for a method changed meanwhile
        setups = enrolled_clients(session, rt.gateway.name, client_ids=[client_id])
        if not setups:
            return
        setup = setups[0]
        plans = plan_client(session, setup, today)
        end_reads(session)
        due = [p for p in plans if p.reason is None and (p.invoice_id, p.charge_number) not in charged_numbers]
        if round_ == 0:
            report.skips.extend((p.invoice_id, p.reason) for p in plans
                                if p.reason and p.reason not in _QUIET and p.charge_date_reached)
        if not due:
            return
        charged_numbers.update((plan.invoice_id, plan.charge_number) for plan in due)
        outcomes = _claim_patiently(session, rt, setup, [plan.invoice_id for plan in due], today)
        declined = False
        for plan in due:
            outcome = outcomes if isinstance(outcomes, str) else outcomes[plan.invoice_id]
            if isinstance(outcome, str):
                if outcome not in _QUIET:
                    report.skips.append((plan.invoice_id, outcome))
                continue
            end_reads(session)  # nothing open while another thread takes this turn: no lock is held while waiting
            with Turns.given_back():
                bucket.take()
                answer = charging.ask_gateway(rt, outcome.attempt_id, outcome.call)
            attempt = charging.apply_answer(session, rt, outcome.attempt_id, answer, source="autopay")
            report.charged += 1
            report.outcomes[attempt.status] += 1
            if attempt.status == rules.UNKNOWN:
                report.problems.append(f"charge attempt {attempt.id}: no answer from the gateway; "
                                       "the next run replays it with the same key")
            if attempt.status != rules.SUCCEEDED:  # a paid one was marked handled when it was booked
                handled = autopay_declines.handle(session, rt, outcome.charge_id)
                declined = declined or (handled is not None and handled.decline is not None)
        if not declined:
            return  # every charge paid or is still on its way: another round would find nothing new to charge


#: A claim holds the client's invoices for milliseconds. Two processes claiming different invoices of one client can
#: each find the other's lock and both give up, leaving the invoice to the next cron run; a few short waits make that
#: unlikely. A client another process is still charging is left to it afterwards (its own rounds cover the rest).
CLAIM_TRIES = 4
CLAIM_WAIT_SECONDS = (0.02, 0.15)


def _claim_patiently(session: Session, rt: Runtime, setup: ClientAutopay, invoice_ids: list[int], today: date
                     ) -> dict[int, Claim | str] | str:
    for attempt in range(CLAIM_TRIES):
        outcome = claim(session, rt, setup, invoice_ids, today)
        if outcome != LOCKED_ELSEWHERE or attempt == CLAIM_TRIES - 1:
            return outcome
        time.sleep(random.uniform(*CLAIM_WAIT_SECONDS))
    return LOCKED_ELSEWHERE


#: How many of a run-due process's charging threads do database work (and the Python around it) at once, unless
#: configured (RUN_DUE_DATABASE_THREADS). The threads are there to keep enough gateway calls in the air for the rate
#: (``threads_for``); when all of them worked at once, a process spent more CPU per charge (a dozen runnable threads
#: handing the GIL around; the database's backends too) and charged slower (bench/README.md). Two: one thread's
#: Python runs while the other waits for the database.
DATABASE_TURNS = 2


def charge_due(session: Session, rt: Runtime, today: date, *, open_session: OpenSession, rate: float,
               node: str = "", lease_seconds: float = 0, database_threads: int = DATABASE_TURNS,
               on_progress: Callable[[int, int], None] | None = None) -> ChargeReport:
    """Charge everything due today for every client on autopay, under ``rate`` gateway requests per second."""
    client_ids = [setup.client_id for setup in enrolled_clients(session, rt.gateway.name)]
    end_reads(session)
    if client_ids:  # each node starts at a different client, so several nodes spread out instead of queueing
        start = random.randrange(len(client_ids))
        client_ids = client_ids[start:] + client_ids[:start]
    bucket = TokenBucket(rate)
    turns = Turns(database_turns(session, database_threads))
    total = ChargeReport()
    done = iter(range(1, len(client_ids) + 1))

    def finished(_client_id: int, part: ChargeReport) -> None:
        total.add(part)
        if on_progress:
            on_progress(next(done), len(client_ids))

    run_all(lambda client_id: charge_client(open_session, rt, client_id, today, bucket, turns, holder=node,
                                            lease_seconds=lease_seconds), client_ids,
            threads=threads_for(rate), on_done=finished)
    return total


def database_turns(session: Session, wanted: int) -> int:
    """``wanted`` turns, but no more than the pool has connections besides the run's own session: only a thread in
    its turn holds one (the others wait for the gateway with no transaction open), so however many threads the rate
    wants, none waits out the pool's timeout. (Before the turns, the 100/s limit's 50 threads over 20 connections
    did: their clients' charges failed as a problem of the run. On SQLite, the turns also keep the threads from
    queueing for its one writer's lock, whose busy handler is not first come, first served.)"""
    return max(1, min(wanted, session.get_bind().pool.size() - 1))
