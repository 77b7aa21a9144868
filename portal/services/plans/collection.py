"""Paying a plan: what an amount pays, as the items of an ordinary payment request (or a check's allocations).

An amount fills the schedule's rows in order after what is already paid or on its way. For each row it reaches, the
row's interest is paid first, through that installment's own small "interest" invoice (raised once, the first time
a payment reaches the row, numbered and issued like any invoice, and linked to the plan with role "interest"); the
rest goes to the covered invoices oldest first (``domain.plans.allocate``, never more than an invoice owes). A
payoff pays every covered invoice and the interest to the payoff date only (``domain.schedules.payoff``), billed as
one interest invoice with no installment number.

The request is then paid through the existing checkout (``payments.checkout`` / the pay page) or, for run-due,
charged off-session (``plans.charging``); a check goes through ``payments.booking.record_payment`` with these
allocations. Whoever pays, the ledger decides what is paid; nothing here stores progress.

Every function that decides what is owed and then writes holds the lock order of ``services/locking.py``: the
client's invoices first (``payments.payable(lock=True)``), then the plan's rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import payments as payment_rules
from portal.domain import plans as rules
from portal.domain import schedules
from portal.domain.errors import DomainError, InvalidAmount
from portal.domain.invoices import LineInput
from portal.domain.ledger import OpenItem, invoice_balance
from portal.domain.money import format_money
from portal.domain.plans import PlanStatus
from portal.models import (
    Contact,
    Invoice,
    Payment,
    PaymentPlan,
    PaymentRequest,
    PaymentRequestItem,
    PlanEvent,
    PlanInvoice,
    StaffUser,
)

from .. import adjustments, billing, ledger
from ..locking import begin_write
from ..payments import booking, checkout
from ..runtime import Runtime
from .progress import COVERED, INTEREST, PlanProgress, paid_toward, pending_toward, plan_invoice_ids, progress_of

NOT_CURRENT = "This plan is no longer current: its invoices are paid the usual way."


@dataclass(frozen=True)
class Split:
    """What an amount pays: invoice id → cents, interest invoices first, then the covered invoices."""

    items: dict[int, int]

    @property
    def total_cents(self) -> int:
        return sum(self.items.values())


def remaining_cents(session: Session, plan: PaymentPlan) -> int:
    """What the schedule still asks for, less what is paid or on its way."""
    scheduled = sum(i.amount_cents for i in plan.installments)
    return max(0, scheduled - paid_toward(session, plan) - pending_toward(session, plan))


def next_installment_cents(session: Session, plan: PaymentPlan) -> int:
    """The "Pay next installment" amount: what run-due's next charge would take (``domain.plans.next_charge``), less
    what is on its way."""
    covered = paid_toward(session, plan) + pending_toward(session, plan)
    charge = rules.next_charge([row.amount_cents for row in plan.installments], covered)
    return charge.cents if charge else 0


def split(session: Session, plan: PaymentPlan, amount_cents: int, on: date, payable: list[OpenItem]) -> Split:
    """What ``amount_cents`` pays, raising the interest invoices it reaches (inside the caller's write transaction,
    after it locked the client's invoices and read ``payable`` under that lock)."""
    if amount_cents <= 0:
        raise InvalidAmount("Enter an amount above zero.")
    left = remaining_cents(session, plan)
    if amount_cents > left:
        raise InvalidAmount(f"That is more than the plan still owes ({format_money(left, plan.currency)}). "
                            "To settle the plan, use “Pay off now”.")
    by_id = {item.invoice_id: item.balance_cents for item in payable}
    baseline = paid_toward(session, plan) + pending_toward(session, plan)
    items: dict[int, int] = {}
    rest = amount_cents
    start = 0
    for row in plan.installments:
        end = start + row.amount_cents
        reached = min(end, baseline + amount_cents) - max(start, baseline)  # how much of this row the amount pays
        start = end
        if reached <= 0 or row.interest_cents <= 0:
            continue
        invoice, raised = _interest_invoice(session, plan, row.number, row.interest_cents, row.due_on, on)
        owed = invoice.total_cents if raised else by_id.get(invoice.id, 0)  # 0: paid, or its payment on its way
        take = min(rest, owed, reached)
        if take > 0:
            items[invoice.id] = take
            rest -= take
    if rest > 0:
        for invoice_id, cents in _covered_allocation(session, plan, rest, by_id).items():
            items[invoice_id] = items.get(invoice_id, 0) + cents
    return Split(items)


def _covered_allocation(session: Session, plan: PaymentPlan, cents: int, by_id: dict[int, int]) -> dict[int, int]:
    rows = session.execute(select(Invoice.id, Invoice.due_date).join(PlanInvoice, PlanInvoice.invoice_id == Invoice.id)
                           .where(PlanInvoice.plan_id == plan.id, PlanInvoice.role == COVERED)
                           .order_by(Invoice.due_date, Invoice.id)).all()
    owed = [rules.Owed(invoice_id, due, by_id.get(invoice_id, 0)) for invoice_id, due in rows
            if by_id.get(invoice_id, 0) > 0]
    if cents > sum(o.balance_cents for o in owed):
        raise InvalidAmount("That is more than the plan's invoices still owe (a payment may be on its way).")
    return dict(rules.allocate(cents, owed))



def interest_invoice(session: Session, plan: PaymentPlan, number: int | None, cents: int, due_on: date,
                     on: date) -> Invoice:
    """The interest invoice of one installment (``number`` None: of a payoff), raised once. The caller holds the
    client's invoices locked, so two payments cannot both raise it (and the unique plan/invoice pair backs that)."""
    return _interest_invoice(session, plan, number, cents, due_on, on)[0]


def _interest_invoice(session: Session, plan: PaymentPlan, number: int | None, cents: int, due_on: date,
                      on: date, *, reuse: bool = True) -> tuple[Invoice, bool]:
    query = select(PlanInvoice).where(PlanInvoice.plan_id == plan.id, PlanInvoice.role == INTEREST)
    query = query.where(PlanInvoice.installment_number.is_(None) if number is None
                        else PlanInvoice.installment_number == number)
    existing = session.scalar(query.order_by(PlanInvoice.id)) if reuse else None
    if existing is not None:
        return existing.invoice, False
    what = f"installment {number}" if number is not None else f"payoff on {on.isoformat()}"
    invoice = billing.create_invoice(
        session, plan.client, lines=[LineInput(f"Interest, payment plan {plan.reference}, {what}", Decimal(1), cents,
                                               taxable=False)],
        issue_date=min(on, due_on), due_date=due_on, currency=plan.currency, issue=True, source="plan", commit=False,
        memo=f"Interest at {plan.apr_percent}% APR on payment plan {plan.reference}.")
    session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, role=INTEREST, installment_number=number,
                            current_key=invoice.id if plan.status == PlanStatus.CURRENT else None))
    session.flush()
    return invoice, True


def _lock_plan(session: Session, plan_id: int) -> PaymentPlan:
    """After the client's invoices (the lock order): the plan row, reloaded as committed now."""
    plan = session.get(PaymentPlan, plan_id, with_for_update=True, populate_existing=True)
    if plan is None:
        raise DomainError("Unknown plan.")
    session.expire(plan, ["installments", "invoices"])
    return plan


@contextmanager
def _current_plan_locked(session: Session, plan: PaymentPlan) -> Iterator[tuple[PaymentPlan, list[OpenItem]]]:
    """The lock order (the client's invoices, then the plan reloaded), the plan still current, then the block's
    writes: committed together at the end, or rolled back on any error."""
    begin_write(session)
    payable = _payable(session, plan.client_id)
    plan = _lock_plan(session, plan.id)
    try:
        if plan.status != PlanStatus.CURRENT:
            raise DomainError(NOT_CURRENT)
        yield plan, payable
    except Exception:
        session.rollback()
        raise
    session.commit()


def _payable(session: Session, client_id: int, *, besides: int | None = None) -> list[OpenItem]:
    return checkout.payable(session, client_id, lock=True, besides=besides)


def request_for(session: Session, plan: PaymentPlan, contact: Contact | None, chosen: dict[int, int],
                payable: list[OpenItem]) -> PaymentRequest:
    """The payment request for ``chosen`` (from ``split`` or ``payoff_items``), inside the caller's write transaction;
    ``payable`` as read under the lock before any interest invoice was raised."""
    # the checkout's own checks (only payable invoices, never more than owed, the card networks' minimum); a plan's
    # part payments are what the client signed, so the MSP's minimum part payment does not apply to them
    payable = payable_with_raised_interest(session, plan, payable)
    chosen = payment_rules.choose_amounts(chosen, payable, partial_minimum_cents=0, currency=plan.currency)
    request = PaymentRequest(
        public_id=secrets.token_urlsafe(24), client_id=plan.client_id, contact_id=contact.id if contact else None,
        currency=plan.currency, amount_cents=sum(chosen.values()), status=payment_rules.PaymentRequestStatus.OPEN,
        created_at=now(),
        items=[PaymentRequestItem(invoice_id=invoice_id, amount_cents=cents) for invoice_id, cents in chosen.items()])
    session.add(request)
    session.flush()
    return request


def payment_for_plan(session: Session, rt: Runtime, plan: PaymentPlan, amount_cents: int, on: date, *,
                     contact: Contact | None = None) -> PaymentRequest:
    """A payment request for ``amount_cents`` toward the plan (the next installment, or more: pay ahead), paid at
    the existing checkout. Refused, with nothing written, when the plan is not current or the amount is more than
    the plan still owes."""
    with _current_plan_locked(session, plan) as (plan, payable):
        found = split(session, plan, amount_cents, on, payable)
        request = request_for(session, plan, contact, found.items, payable)
    return request


def payable_with_raised_interest(session: Session, plan: PaymentPlan, payable: list[OpenItem]) -> list[OpenItem]:
    """``payable`` plus the interest invoices raised in this transaction (they owe their whole total)."""
    known = {item.invoice_id for item in payable}
    fresh = session.scalars(select(Invoice).join(PlanInvoice, PlanInvoice.invoice_id == Invoice.id)
                            .where(PlanInvoice.plan_id == plan.id, PlanInvoice.role == INTEREST)).all()
    paid = ledger.paid_cents(session, [i.id for i in fresh if i.id not in known])
    extra = [OpenItem(i.id, i.total_cents - paid[i.id], i.number) for i in fresh
             if i.id not in known and i.total_cents - paid[i.id] > 0]
    return [*payable, *extra]


@dataclass(frozen=True)
class PayoffQuote:
    principal_cents: int  # what the covered invoices still owe (an unpaid down payment included)
    interest_cents: int  # interest to the payoff date not yet paid
    total_cents: int


def payoff_quote(session: Session, plan: PaymentPlan, on: date) -> PayoffQuote:
    """What settles the plan on ``on``: the covered invoices' balances and the domain's payoff interest (only to
    ``on``). An installment already started has its interest invoice billed in full; that stays due, so the interest
    is never less than what the open interest invoices bill."""
    # the domain's payoff counts payments toward the installments; the down payment comes first in the waterfall
    paid = max(0, paid_toward(session, plan) - plan.down_payment_cents)
    owed = schedules.payoff(schedule_of(plan), paid_cents=paid, on=on, start_on=start_of(plan))
    covered_open, interest_open = _open_by_role(session, plan)
    interest = max(owed.interest_cents, interest_open)
    return PayoffQuote(covered_open, interest, covered_open + interest)


def _open_by_role(session: Session, plan: PaymentPlan) -> tuple[int, int]:
    """What the plan's covered invoices, and its interest invoices, still owe in the ledger."""
    links = session.execute(select(PlanInvoice.role, Invoice).join(Invoice, Invoice.id == PlanInvoice.invoice_id)
                            .where(PlanInvoice.plan_id == plan.id)).all()
    paid = ledger.paid_cents(session, [invoice.id for _, invoice in links])
    totals = {COVERED: 0, INTEREST: 0}
    for role, invoice in links:
        totals[role] += max(0, invoice_balance(invoice.status, invoice.total_cents, paid[invoice.id]))
    return totals[COVERED], totals[INTEREST]


def payoff_request(session: Session, rt: Runtime, plan: PaymentPlan, on: date, *,
                   contact: Contact | None = None) -> PaymentRequest:
    """Everything the plan's invoices still owe, with interest only to ``on``: one request at the checkout."""
    with _current_plan_locked(session, plan) as (plan, payable):
        if pending_toward(session, plan):
            raise DomainError("A payment toward this plan is still on its way; once it has arrived, pay off the rest.")
        items = payoff_items(session, plan, on, payable)
        request = request_for(session, plan, contact, items, payable)
    return request


def payoff_items(session: Session, plan: PaymentPlan, on: date, payable: list[OpenItem]) -> dict[int, int]:
    """Every open plan invoice in full; interest to date beyond what the open interest invoices already bill goes on
    the payoff's interest invoice."""
    by_id = {item.invoice_id: item.balance_cents for item in payable}
    quote = payoff_quote(session, plan, on)
    links = session.scalars(select(PlanInvoice).where(PlanInvoice.plan_id == plan.id).order_by(PlanInvoice.id)).all()
    interest_open = sum(by_id.get(link.invoice_id, 0) for link in links if link.role == INTEREST)
    items = {link.invoice_id: by_id[link.invoice_id] for link in links
             if link.role == INTEREST and by_id.get(link.invoice_id, 0) > 0}
    extra = quote.interest_cents - interest_open
    if extra > 0:  # a new payoff interest invoice each time one is needed (an abandoned one is counted above)
        invoice = _interest_invoice(session, plan, None, extra, on, on, reuse=False)[0]
        items[invoice.id] = extra
    for link in links:
        if link.role == COVERED and by_id.get(link.invoice_id, 0) > 0:
            items[link.invoice_id] = by_id[link.invoice_id]
    if not items:
        raise DomainError("Nothing is left to pay on this plan.")
    return items


def schedule_of(plan: PaymentPlan) -> schedules.Schedule:
    """The signed schedule as the domain's value, read from the installment rows (what the client signed, not a
    recomputation that a later change of the arithmetic could alter)."""
    rows = tuple(schedules.ScheduleRow(number=i.number, due_on=i.due_on, amount_cents=i.amount_cents,
                                       principal_cents=i.principal_cents, interest_cents=i.interest_cents,
                                       balance_after_cents=i.balance_after_cents)
                 for i in plan.installments if i.number > 0)
    dates = tuple(row.due_on for row in rows)
    terms = schedules.PlanTerms(
        balance_cents=plan.balance_cents, down_payment_cents=plan.down_payment_cents, installments=len(rows),
        frequency=schedules.Frequency(plan.frequency), first_due_on=dates[0] if dates else start_of(plan),
        apr_percent=plan.apr_percent, custom_dates=dates if plan.frequency == schedules.Frequency.CUSTOM else ())
    return schedules.Schedule(terms=terms, rows=rows)


def start_of(plan: PaymentPlan) -> date:
    """Interest runs from acceptance (the day the principal was lent)."""
    return plan.accepted_at.date()


# --- a check or wire recorded by the admin ------------------------------------------------------------------------

def record_check(session: Session, plan: PaymentPlan, *, amount_cents: int, method: str, received_on: date,
                 reference: str = "", memo: str = "", staff: StaffUser | None = None) -> Payment:
    """An offline payment toward the plan, allocated exactly as an online plan payment of the same amount would be.
    Two transactions: the interest invoices it reaches are raised first (idempotent), then the payment is booked
    by ``booking.record_payment``, which checks the allocations again under its own lock."""
    if method not in booking.OFFLINE_METHODS:
        raise DomainError("Unknown payment method.")
    if received_on > today():  # booking refuses it too, but only after the interest invoices were committed
        raise DomainError("A payment cannot be received in the future.")
    with _current_plan_locked(session, plan) as (plan, payable):
        items = split(session, plan, amount_cents, received_on, payable).items
    payment = booking.record_payment(session, plan.client, amount_cents=amount_cents, method=method,
                                     received_on=received_on, reference=reference,
                                     memo=memo or f"Payment plan {plan.reference}", allocations=items,
                                     recorded_by=staff)
    begin_write(session)
    _payable(session, plan.client_id)  # the lock order: a checkout's attempt is written under the same locks
    if plan.down_payment_request_id and not progress_of(session, plan, today()).progress.down_payment_owing:
        checkout.withdraw(session, plan.down_payment_request_id)  # its link must not take the down payment again
    session.add(PlanEvent(client_id=plan.client_id, plan_id=plan.id, thread_id=plan.offer.thread_id or plan.offer_id,
                          kind="payment_recorded", staff_id=staff.id if staff else None, created_at=now(),
                          detail=f"{method.capitalize()} of {format_money(amount_cents, plan.currency)} recorded"
                                 + (f" (ref. {reference.strip()})" if reference.strip() else "")))
    session.commit()
    return payment


def small_remainder_cents(found: PlanProgress) -> int:
    """What is left on a current plan when it is less than a card can be charged (a last check a little short), with
    nothing on its way: the MSP may write it off (``write_off_remainder``). 0 otherwise."""
    if found.plan.status != PlanStatus.CURRENT or found.settled or found.pending_cents:
        return 0  # nothing owed (run-due completes it), or money on its way
    small = max(found.open_cents, found.progress.remaining_cents) < payment_rules.GATEWAY_MINIMUM_CENTS
    return found.open_cents if small else 0  # what the invoices owe: what is written off


def write_off_remainder(session: Session, plan: PaymentPlan, *, staff: StaffUser | None) -> int:
    """Take the plan's small remainder off its invoices as a ledger adjustment each (never an edit of a total; the
    invoice pages and statements show it as its own line) so the plan can complete. Refused unless what is left is
    less than a card can be charged: anything a card can take is collected, or the plan renegotiated. Returns the
    cents written off; the caller completes the plan (``lifecycle.complete_if_done``)."""
    with _current_plan_locked(session, plan) as (plan, payable):
        cents = small_remainder_cents(progress_of(session, plan, today()))
        if not cents:
            minimum = format_money(payment_rules.GATEWAY_MINIMUM_CENTS, plan.currency)
            raise DomainError(f"Only a remainder below {minimum} (less than a card can be charged) can be written off, "
                              "once nothing is on its way.")
        ids = set(plan_invoice_ids(session, plan.id))
        owing = [item for item in payable if item.invoice_id in ids]
        written = sum(item.balance_cents for item in owing)
        for item in owing:
            adjustments.write_off(session, item, plan.client_id, f"Small balance written off (plan {plan.reference})")
        session.add(PlanEvent(client_id=plan.client_id, plan_id=plan.id,
                              thread_id=plan.offer.thread_id or plan.offer_id, kind="written_off", created_at=now(),
                              staff_id=staff.id if staff else None,
                              detail=f"{format_money(written, plan.currency)} left on the plan written off"))
    return written
