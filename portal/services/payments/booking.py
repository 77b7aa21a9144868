"""The ledger side of payments: money received (offline, or an online payment that arrived) applied to invoices,
client credit, and refunds. Every change is a new row.

Each public function that checks what is owed (or what is left to refund) and then writes starts with
``begin_write`` and takes the client's invoices before the payment rows (the order in ``portal.services.locking``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain.errors import AllocationError, DomainError, InvalidAmount
from portal.domain.ledger import OpenItem, allocate_oldest_first, check_allocation, reversal_plan
from portal.domain.payments import PaymentStatus, RefundStatus
from portal.models import Allocation, ChargeAttempt, Client, Invoice, Payment, Refund, StaffUser

from .. import ledger
from ..billing import refresh_status
from ..locking import begin_write
from ..settings import get_settings
from .locks import lock_client_invoices, lock_payment

OFFLINE_METHODS = ("check", "wire", "cash", "ach", "card", "other")


def record_payment(
    session: Session,
    client: Client,
    *,
    amount_cents: int,
    method: str,
    received_on: date | None = None,
    reference: str = "",
    memo: str = "",
    allocations: Mapping[int, int] | None = None,
    recorded_by: StaffUser | None = None,
) -> Payment:
    """A payment received outside the portal (check, wire, cash). ``allocations`` None: oldest due first.

    Whatever is not allocated becomes the client's credit; over-allocation is refused and nothing is saved.
    """
    if amount_cents <= 0:
        raise InvalidAmount("A payment must be more than zero.")
    if method not in OFFLINE_METHODS:
        raise DomainError("Unknown payment method.")
    received_on = received_on or today()
    if received_on > today():
        raise DomainError("A payment cannot be received in the future.")
    begin_write(session)
    items = ledger.open_items(session, client.id, lock=True)
    plan = allocate_oldest_first(amount_cents, items) if allocations is None else _clean(allocations)
    check_allocation(amount_cents, plan, items)
    payment = Payment(
        client_id=client.id, method=method, status=PaymentStatus.SUCCEEDED, amount_cents=amount_cents,
        currency=get_settings(session).currency, received_on=received_on, reference=reference.strip(),
        memo=memo.strip(), recorded_by_id=recorded_by.id if recorded_by else None, created_at=now(),
    )
    session.add(payment)
    _apply(session, payment, plan, items)
    session.commit()
    return payment


def apply_arrived_payment(session: Session, payment: Payment, allocations: Mapping[int, int], *,
                          items: list[OpenItem] | None = None) -> None:
    """Apply a payment whose money has just been confirmed (online payments allocate on arrival, not when the client
    clicks pay). Checked like any allocation; what is not allocated stays as credit. The caller commits.
    ``items``: the client's open items, when the caller has just read them locked in this transaction."""
    if items is None:
        items = ledger.open_items(session, payment.client_id, lock=True)
    plan = _clean(allocations)
    check_allocation(payment.amount_cents, plan, items)
    _apply(session, payment, plan, items)


def apply_credit(session: Session, client: Client, allocations: Mapping[int, int] | None = None) -> int:
    """Apply the client's unallocated money to open invoices; returns the cents applied."""
    begin_write(session)
    items = ledger.open_items(session, client.id, lock=True)  # lock first: concurrent callers queue here
    sources = ledger.unallocated_by_payment(session, client.id)
    available = sum(cents for _, cents in sources)
    plan = allocate_oldest_first(available, items) if allocations is None else _clean(allocations)
    check_allocation(available, plan, items)
    # draw on the oldest credit first, so each allocation row names the payment the money came from
    applied = 0
    for invoice_id, cents in plan.items():
        while cents:
            payment, free = sources[0]
            take = min(cents, free)
            session.add(Allocation(payment_id=payment.id, invoice_id=invoice_id, amount_cents=take,
                                   created_at=now(), note="credit applied"))
            cents -= take
            applied += take
            sources[0] = (payment, free - take)
            if sources[0][1] == 0:
                sources.pop(0)
    session.flush()
    _refresh(session, plan)
    session.commit()
    return applied


def unapply_invoice(session: Session, invoice: Invoice, note: str = "unapplied") -> int:
    """Move every payment applied to an invoice back to the client's credit (e.g. before voiding it)."""
    begin_write(session)
    lock_client_invoices(session, invoice.client_id)  # two unapplies at once must not both reverse the same money
    per_payment = session.execute(
        select(Allocation.payment_id, func.sum(Allocation.amount_cents))
        .where(Allocation.invoice_id == invoice.id)
        .group_by(Allocation.payment_id)
    ).all()
    moved = 0
    for payment_id, cents in per_payment:
        if cents > 0:
            session.add(Allocation(payment_id=payment_id, invoice_id=invoice.id, amount_cents=-int(cents),
                                   created_at=now(), note=note))
            moved += int(cents)
    session.flush()
    refresh_status(session, invoice)
    session.commit()
    return moved


def refund_payment(
    session: Session, payment: Payment, *, amount_cents: int, reason: str, refunded_on: date | None = None,
    status: RefundStatus = RefundStatus.SUCCEEDED, gateway_ref: str = "", commit: bool = True,
) -> Refund:
    """Return money to the client: first from the payment's unapplied part, then by reversing its newest
    allocations (those invoices reopen). ``commit=False``: part of the caller's transaction, which has already
    taken the write lock and the client's invoices."""
    if commit:
        begin_write(session)
        lock_client_invoices(session, payment.client_id)
    # row lock: two refunds of one payment at once (two admins, two nodes) must not both see the same free money
    lock_payment(session, payment)
    if payment.status != PaymentStatus.SUCCEEDED:
        raise DomainError("Only a completed payment can be refunded.")
    if amount_cents <= 0:
        raise InvalidAmount("A refund must be more than zero.")
    applied = _applied_by_invoice(session, payment)
    refunded = _refunded_cents(session, payment)
    free = payment.amount_cents - refunded - sum(cents for _, cents in applied)
    if amount_cents > payment.amount_cents - refunded:
        raise InvalidAmount("That is more than is left to refund on this payment.")
    to_reverse = reversal_plan(amount_cents - free, applied) if amount_cents > free else {}
    for invoice_id, cents in to_reverse.items():
        session.add(Allocation(payment_id=payment.id, invoice_id=invoice_id, amount_cents=-cents,
                               created_at=now(), note="refunded"))
    refund = Refund(payment_id=payment.id, amount_cents=amount_cents, refunded_on=refunded_on or today(),
                    reason=reason.strip(), status=status, gateway_ref=gateway_ref, created_at=now())
    session.add(refund)
    session.flush()
    _refresh(session, to_reverse)
    if commit:
        session.commit()
    return refund


def refund_offline(
    session: Session, payment: Payment, *, amount_cents: int, reason: str, refunded_on: date | None = None,
) -> Refund:
    """A refund the MSP paid back outside the portal (a check, a wire). A payment taken online must be refunded
    through the gateway instead, or the books would show money returned that never left."""
    if session.scalar(select(ChargeAttempt.id).where(ChargeAttempt.payment_id == payment.id)):
        raise DomainError("This payment was made online. Refund it from its online payment page so the money "
                          "goes back to the card or bank account.")
    return refund_payment(session, payment, amount_cents=amount_cents, reason=reason, refunded_on=refunded_on)


def payment_unapplied_cents(session: Session, payment: Payment) -> int:
    refunded = _refunded_cents(session, payment)
    return payment.amount_cents - refunded - sum(c for _, c in _applied_by_invoice(session, payment))


def _refunded_cents(session: Session, payment: Payment) -> int:
    # queried, not read from payment.refunds: a loaded collection can be stale within a long-lived session
    return int(session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0))
        .where(Refund.payment_id == payment.id, Refund.status != RefundStatus.FAILED)
    ))


def _applied_by_invoice(session: Session, payment: Payment) -> list[tuple[int, int]]:
    """Net cents of this payment on each invoice, in the order first applied."""
    rows = session.execute(
        select(Allocation.invoice_id, func.sum(Allocation.amount_cents), func.min(Allocation.id))
        .where(Allocation.payment_id == payment.id)
        .group_by(Allocation.invoice_id)
        .order_by(func.min(Allocation.id))
    ).all()
    return [(invoice_id, int(cents)) for invoice_id, cents, _ in rows if cents > 0]


def _clean(allocations: Mapping[int, int]) -> dict[int, int]:
    return {int(k): int(v) for k, v in allocations.items() if int(v) != 0}


def _apply(session: Session, payment: Payment, plan: Mapping[int, int], items: list[OpenItem]) -> None:
    """Allocate a payment by a plan checked against ``items`` (read in this transaction, the invoices locked): what
    each invoice had paid is known, so its status follows without reading the allocations back (nor flushing)."""
    if not plan:
        return  # all of it is the client's credit
    owed = {item.invoice_id: item.balance_cents for item in items}
    invoices = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.id.in_(list(plan))))}
    for invoice_id, cents in plan.items():
        invoice = invoices[invoice_id]  # check_allocation: every invoice of the plan is an open item
        refresh_status(session, invoice, paid_cents=invoice.total_cents - owed[invoice_id] + cents)
        session.add(Allocation(payment=payment, invoice_id=invoice_id, amount_cents=cents, created_at=now()))


def _refresh(session: Session, invoice_ids) -> None:
    for invoice_id in invoice_ids:
        invoice = session.get(Invoice, invoice_id)
        if invoice is None:
            raise AllocationError("Unknown invoice.")
        refresh_status(session, invoice)
