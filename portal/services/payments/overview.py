"""Read side of online payments for staff pages: attempts with their state, refunds and disputes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from math import ceil

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from portal.domain import payments as rules
from portal.models import ChargeAttempt, Client, Dispute, PaymentRequest, PaymentRequestItem, Refund

from ..keysets import among
from ..reports import Page
from .checkout import WITH_INVOICES

STATE_FILTERS = ("all", "succeeded", "processing", "failed", "attention", "disputed", "refunded")
ATTENTION = (rules.CREATED, rules.UNKNOWN)  # the outcome is not known yet: reconcile, or look at the gateway


@dataclass
class AttemptRow:
    attempt: ChargeAttempt
    client_name: str
    invoice_numbers: list[str] = field(default_factory=list)
    refunded_cents: int = 0
    disputes: list[Dispute] = field(default_factory=list)

    @property
    def open_dispute(self) -> Dispute | None:
        return next((d for d in self.disputes if rules.is_open_dispute(d.status)), None)

    @property
    def state(self) -> str:
        if self.attempt.status in ATTENTION:
            return "unknown"
        return rules.display_state(
            self.attempt.status, amount_cents=self.attempt.amount_cents, refunded_cents=self.refunded_cents,
            open_dispute=self.open_dispute is not None,
            lost_dispute=any(d.status == rules.DisputeStatus.LOST for d in self.disputes))


def _base() -> Select:
    return (select(ChargeAttempt, Client.legal_name)
            .join(PaymentRequest, PaymentRequest.id == ChargeAttempt.request_id)
            .join(Client, Client.id == PaymentRequest.client_id))


def _disputed_ids() -> Select:
    return select(Dispute.attempt_id)


def _refunded_ids() -> Select:
    return select(ChargeAttempt.id).join(Refund, Refund.payment_id == ChargeAttempt.payment_id)


def attempt_page(session: Session, *, state: str = "all", client_id: int | None = None, invoice_id: int | None = None,
                 page: int = 1, per_page: int = 25) -> Page:
    known = state if state in STATE_FILTERS else "all"  # as before (no filter), and the cache stays bounded
    count, rows = _attempt_list(known, client_id is not None, invoice_id is not None)
    values = {"client_id": client_id, "invoice_id": invoice_id}
    total = session.scalar(count, values) or 0
    if not total:  # most clients never paid online: their payments tab asks no more
        return Page([], 1, per_page, 0)
    page = min(max(1, page), max(1, ceil(total / per_page)))
    found = session.execute(rows, {**values, "limit": per_page, "offset": (page - 1) * per_page})
    return Page(rows_for(session, list(found)), page, per_page, total)


@cache
def _attempt_list(state: str, by_client: bool, by_invoice: bool) -> tuple[Select, Select]:
    """The attempt list's count and page statements for one kind of request, built once (building one cost about
    as much as running it); bound by name: client_id, invoice_id, limit, offset."""
    query = _base()
    if state == "attention":
        query = query.where(ChargeAttempt.status.in_(ATTENTION))
    elif state == "processing":
        query = query.where(ChargeAttempt.status.in_((rules.PROCESSING, rules.PENDING, rules.REQUIRES_ACTION)))
    elif state == "failed":
        query = query.where(ChargeAttempt.status.in_((rules.FAILED, rules.CANCELED)))
    elif state == "succeeded":
        query = query.where(ChargeAttempt.status == rules.SUCCEEDED)
    elif state == "disputed":
        query = query.where(ChargeAttempt.id.in_(_disputed_ids()))
    elif state == "refunded":
        query = query.where(ChargeAttempt.id.in_(_refunded_ids()))
    query = _of(query, by_client, by_invoice)
    return (select(func.count()).select_from(query.subquery()),
            query.order_by(ChargeAttempt.id.desc()).limit(bindparam("limit")).offset(bindparam("offset")))


def _of(query: Select, by_client: bool, by_invoice: bool) -> Select:
    """``query`` (joined to the payment request) narrowed to the bound client and/or invoice."""
    if by_client:
        query = query.where(PaymentRequest.client_id == bindparam("client_id"))
    if by_invoice:
        query = query.where(PaymentRequest.id.in_(
            select(PaymentRequestItem.request_id).where(PaymentRequestItem.invoice_id == bindparam("invoice_id"))))
    return query


def attempt_row(session: Session, attempt: ChargeAttempt) -> AttemptRow:
    return rows_for(session, [(attempt, attempt.request.client.legal_name)])[0]


def rows_for(session: Session, pairs: list) -> list[AttemptRow]:
    rows = [AttemptRow(attempt, name) for attempt, name in pairs]
    # the attempts' checkouts with their items and invoices: three statements for the page, not three a row
    checkouts = {c.id: c for c in session.scalars(select(PaymentRequest).options(WITH_INVOICES).where(
        among(session, PaymentRequest.id, {r.attempt.request_id for r in rows})))} if rows else {}
    for row in rows:
        checkout = checkouts[row.attempt.request_id]
        set_committed_value(row.attempt, "request", checkout)  # as loaded (the list links to its client): no change
        row.invoice_numbers = [item.invoice.number for item in checkout.items]
    disputes: dict[int, list[Dispute]] = {}
    ids = [r.attempt.id for r in rows]
    if ids:
        for dispute in session.scalars(select(Dispute).where(Dispute.attempt_id.in_(ids)).order_by(Dispute.id)):
            disputes.setdefault(dispute.attempt_id, []).append(dispute)
    for row in rows:
        row.disputes = disputes.get(row.attempt.id, [])
    payment_ids = [r.attempt.payment_id for r in rows if r.attempt.payment_id]
    if payment_ids:
        refunded = dict(session.execute(
            select(Refund.payment_id, func.sum(Refund.amount_cents))
            .where(Refund.payment_id.in_(payment_ids), Refund.status != rules.RefundStatus.FAILED)
            .group_by(Refund.payment_id)).all())
        for row in rows:
            row.refunded_cents = int(refunded.get(row.attempt.payment_id, 0))
    return rows


def disputes_for(session: Session, *, client_id: int | None = None, invoice_id: int | None = None) -> list[Dispute]:
    """Disputes on a client's payments, or on payments that paid an invoice; newest first."""
    statement = _disputes(client_id is not None, invoice_id is not None)
    return list(session.scalars(statement, {"client_id": client_id, "invoice_id": invoice_id}))


@cache
def _disputes(by_client: bool, by_invoice: bool) -> Select:
    query = (select(Dispute).join(ChargeAttempt, ChargeAttempt.id == Dispute.attempt_id)
             .join(PaymentRequest, PaymentRequest.id == ChargeAttempt.request_id))
    return _of(query, by_client, by_invoice).order_by(Dispute.id.desc())


def attempt_for_payment(session: Session, payment_id: int) -> ChargeAttempt | None:
    return session.scalar(select(ChargeAttempt).where(ChargeAttempt.payment_id == payment_id))
