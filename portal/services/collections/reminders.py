"""Reminders (dunning), sent by `portal run-due`: each invoice gets the schedule's current step once.

Claim, then send: the ``ReminderSend`` row (unique invoice + step) is inserted and committed under the write lock
before the email leaves. Of two runs that both decide to send, one insert fails and that run sends nothing. The
row gets ``sent_at`` only when every recipient's message was accepted; a refused message leaves its error on the
row and the next run sends it again. A row claimed by a run that died is taken over after a lease
(``dunning.SEND_LEASE``). The emails travel the invoice-email path (services/delivery), so each recipient gets
their live magic link, and each send appears on the invoice's timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from functools import cache

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain import dunning
from portal.domain.errors import DomainError
from portal.domain.invoices import OPEN
from portal.domain.links import DeliveryStatus
from portal.models import ClientCollection, Contact, DunningStep, DuplicateFlag, Invoice, PlanInvoice, ReminderSend

from .. import delivery, ledger
from ..delivery.sending import ReminderContent
from ..keysets import among, plain_rows
from ..locking import begin_write
from ..payments.autopay_charging import plan_client
from ..payments.autopay_setup import enrolled_clients
from ..payments.checkout import in_flight_by_invoice
from ..runtime import Runtime
from ..settings import get_settings
from . import promises, schedule

log = logging.getLogger(__name__)

TEMPLATE = "dunning_reminder"


@dataclass
class ReminderReport:
    sent: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# --- who is not chased -----------------------------------------------------------------------------------------------

def on_current_plan(session: Session, invoice_ids: list[int]) -> set[int]:
    """Invoices a current installment plan collects (plans mark them with ``current_key``)."""
    if not invoice_ids:
        return set()
    return set(session.scalars(select(PlanInvoice.current_key).where(
        among(session, PlanInvoice.current_key, invoice_ids))))


def autopay_will_charge(session: Session, rt: Runtime, client_ids: list[int], today: date) -> set[int]:
    """Invoices autopay is going to charge (scheduled, waiting for its notice, or a retry planned), as the charging
    engine itself decides them (``plan_client``): these get no overdue reminder."""
    found: set[int] = set()
    for setup in enrolled_clients(session, rt.gateway.name, client_ids=client_ids):
        for plan in plan_client(session, setup, today):
            if plan.decision.autopay_will_charge and plan.method is not None:
                found.add(plan.invoice_id)
    return found


def duplicates_held(session: Session, invoice_ids: list[int]) -> set[int]:
    """Likely duplicate bills the admin has not decided yet: a client is never chased twice for the same work."""
    if not invoice_ids:
        return set()
    return set(session.scalars(select(DuplicateFlag.invoice_id).where(
        among(session, DuplicateFlag.invoice_id, invoice_ids), DuplicateFlag.decided_at.is_(None))))


def client_facts(session: Session, client_ids: list[int]) -> dict[int, dunning.ClientFacts]:
    reachable = set(session.scalars(select(Contact.client_id).where(
        among(session, Contact.client_id, client_ids), Contact.is_billing.is_(True), Contact.portal_access.is_(True))))
    paused = {r.client_id: r for r in session.scalars(
        select(ClientCollection).where(among(session, ClientCollection.client_id, client_ids)))}
    return {client_id: dunning.ClientFacts(paused[client_id].paused if client_id in paused else False,
                                           paused[client_id].paused_until if client_id in paused else None,
                                           has_recipient=client_id in reachable) for client_id in client_ids}


# --- the run-due step ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Due:
    invoice_id: int
    step_id: int


# what planning reads of a candidate invoice
_CANDIDATE = (Invoice.id, Invoice.client_id, Invoice.issue_date, Invoice.due_date, Invoice.total_cents)


def plan(session: Session, rt: Runtime, today: date) -> tuple[list[_Due], dict[str, int]]:
    """What to send today: (invoice, step) pairs, and the number of invoices skipped by reason."""
    steps = [s for s in schedule.steps(session) if s.active and s.id is not None]
    if not steps:
        return [], {}
    refs = [dunning.StepRef(s.id, s.offset_days) for s in steps]
    earliest = min(s.offset_days for s in steps)
    last = max(steps, key=lambda s: s.offset_days)
    # an invoice is a candidate once the earliest step's day has come, until the schedule's last step went to it
    last_sent = select(ReminderSend.id).where(ReminderSend.invoice_id == Invoice.id, ReminderSend.step_id == last.id,
                                              ReminderSend.sent_at.is_not(None)).exists()
    # plain rows, not Invoices: at a million invoices a first run has 134,329 candidates, and loading them as
    # Invoices was ~2 s of the 5-6 s the planning took (bench/reminders.py)
    invoices = plain_rows(session, select(*_CANDIDATE).where(
        Invoice.status == OPEN, Invoice.due_date <= dunning.step_day(today, -earliest), ~last_sent)
        .order_by(Invoice.id)).all()
    if not invoices:
        return [], {}
    ids = [i.id for i in invoices]
    client_ids = sorted({i.client_id for i in invoices})
    paid = ledger.paid_cents(session, ids)
    plans = on_current_plan(session, ids)
    autopay = autopay_will_charge(session, rt, client_ids, today)
    held = duplicates_held(session, ids)
    clients = client_facts(session, client_ids)
    promised = promises.open_until(session, invoices)
    offsets = {s.id: s.offset_days for s in steps}
    sent: dict[int, list[int]] = {}
    for invoice_id, step_id in session.execute(select(ReminderSend.invoice_id, ReminderSend.step_id).where(
            among(session, ReminderSend.invoice_id, ids), ReminderSend.sent_at.is_not(None))):
        if step_id in offsets:
            sent.setdefault(invoice_id, []).append(offsets[step_id])
    due, skipped = [], {}
    for invoice_id, client_id, issue_date, due_date, total_cents in invoices:  # _CANDIDATE's columns
        step = dunning.due_step(refs, issue_date=issue_date, due_date=due_date, today=today,
                                sent_offsets=sent.get(invoice_id, []))
        if step is None:
            continue
        facts = dunning.InvoiceFacts(open=True, balance_cents=total_cents - paid[invoice_id],
                                     on_current_plan=invoice_id in plans, autopay_will_charge=invoice_id in autopay,
                                     duplicate_held=invoice_id in held)
        reason = dunning.skip_reason(facts, clients[client_id], promised.get(invoice_id), today)
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        due.append(_Due(invoice_id, step.step_id))
    return due, skipped


def send_due(session: Session, rt: Runtime, today: date) -> ReminderReport:
    """The `run-due` step: send every reminder due today, each once."""
    schedule.ensure_saved(session)
    due, skipped = plan(session, rt, today)
    report = ReminderReport(skipped=skipped)
    session.rollback()  # end the planning reads; each claim starts its own write transaction
    for item in due:
        try:
            row_id = claim(session, item, today)
            if row_id is None:
                continue
            if send_claimed(session, rt, row_id, today):
                report.sent += 1
            else:
                report.failed += 1
        except Exception as e:  # one bad invoice must not stop the others' reminders
            session.rollback()
            log.exception("reminder for invoice %s failed", item.invoice_id)
            report.problems.append(f"reminder for invoice {item.invoice_id}: {type(e).__name__}: {e}")
    return report


def claim(session: Session, item: _Due, today: date) -> int | None:
    """The ReminderSend row this run may send, committed; None when another run has it or sent it, or the invoice
    no longer owes anything."""
    begin_write(session)
    invoice = session.scalar(select(Invoice).where(Invoice.id == item.invoice_id).with_for_update())
    # nothing owed any more, or a payment on its way covers it (an autopay charge another run just made, a bank
    # debit clearing): no reminder
    if invoice is None or invoice.status != OPEN or ledger.balance_of(session, invoice) - in_flight_by_invoice(
            session, invoice.client_id).get(invoice.id, 0) <= 0:
        session.rollback()
        return None
    step = session.get(DunningStep, item.step_id)
    at = now()
    existing = session.scalar(select(ReminderSend).where(ReminderSend.invoice_id == item.invoice_id,
                                                         ReminderSend.step_id == item.step_id))
    if existing is not None:
        if not dunning.may_retry(sent_at=existing.sent_at, last_error=existing.last_error,
                                 claimed_at=existing.claimed_at, now=at):
            session.rollback()
            return None
        # compare-and-set on the attempt count: of two runs retrying the same row, only one updates it
        taken = session.execute(
            update(ReminderSend)
            .where(ReminderSend.id == existing.id, ReminderSend.attempts == existing.attempts,
                   ReminderSend.sent_at.is_(None))
            .values(attempts=existing.attempts + 1, claimed_at=at, last_error="",
                    pay_by=dunning.pay_by(today, invoice.due_date, step.pay_within_days))
            .execution_options(synchronize_session=False))
        session.commit()
        return existing.id if taken.rowcount == 1 else None
    row = ReminderSend(invoice_id=invoice.id, client_id=invoice.client_id, step_id=step.id, to_email="",
                       pay_by=dunning.pay_by(today, invoice.due_date, step.pay_within_days), attempts=1,
                       last_error="", claimed_at=at)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # another run claimed this step of this invoice first (PostgreSQL)
        session.rollback()
        return None
    return row.id


def send_claimed(session: Session, rt: Runtime, row_id: int, today: date) -> bool:
    """Send a claimed reminder and record the outcome on its row. True when every recipient's server accepted it."""
    row = session.get(ReminderSend, row_id, populate_existing=True)
    step, invoice = row.step, row.invoice
    error, to = "", ""
    try:
        deliveries = delivery.send_reminder(session, rt, invoice, content=content_for(session, rt, step, row.pay_by,
                                                                                      today))
        to = ", ".join(d.to_email for d in deliveries)
        failed = [d for d in deliveries if d.status != DeliveryStatus.ACCEPTED]
        error = "; ".join(f"{d.to_email}: {d.error or 'refused'}" for d in failed)
    except DomainError as e:  # no billing contact to write to: recorded, tried again next run
        session.rollback()
        error = str(e)
    begin_write(session)
    row = session.get(ReminderSend, row_id, populate_existing=True)
    row.to_email = to[:320]
    if error:
        row.last_error = error[:2000]
    else:
        row.sent_at, row.last_error = now(), ""
    session.commit()
    return not error


def content_for(session: Session, rt: Runtime, step: DunningStep, pay_by: date,
                today: date) -> ReminderContent:
    msp = get_settings(session).name

    def build(context: dict) -> tuple[str, dict]:
        invoice = context["invoice"]
        values = dunning.placeholder_values(
            contact_name=context.get("contact_name") or "", client=invoice.client.legal_name,
            invoice_number=invoice.number, total_cents=invoice.total_cents, balance_cents=context["balance_cents"],
            currency=invoice.currency, due_date=invoice.due_date, pay_by_date=pay_by,
            pay_link=context["link_url"], msp=msp, today=today)
        link = context["link_url"]
        return dunning.render(step.subject, values), {
            "step": step, "body_text": dunning.render(step.body, values), "pay_by": pay_by,
            "attached": step.attach_invoice, "promise_url": f"{link}/promise" if link else "",
        }

    return ReminderContent(label=f"Reminder ({step.name})", template=TEMPLATE,
                                    attach_invoice=step.attach_invoice, build=build)


# --- reading ---------------------------------------------------------------------------------------------------------

def sends_for(session: Session, *, client_id: int | None = None, invoice_id: int | None = None,
              limit: int = 50) -> list[ReminderSend]:
    statement = _sends(client_id is not None, invoice_id is not None)
    return list(session.scalars(statement, {"client_id": client_id, "invoice_id": invoice_id, "limit": limit}))


@cache
def _sends(by_client: bool, by_invoice: bool) -> Select:
    """``sends_for``'s statement for one kind of request, built once (building one cost about as much as running
    it); bound by name: client_id, invoice_id, limit."""
    query = (select(ReminderSend).options(selectinload(ReminderSend.step), selectinload(ReminderSend.invoice))  # shown
             .order_by(ReminderSend.claimed_at.desc(), ReminderSend.id.desc()))
    if by_client:
        query = query.where(ReminderSend.client_id == bindparam("client_id"))
    if by_invoice:
        query = query.where(ReminderSend.invoice_id == bindparam("invoice_id"))
    return query.limit(bindparam("limit"))
