"""A checkout: what the client may pay now, the payment request that stores what it chose, and the quote (the
surcharge, if any) for the payment method it entered."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import ColumnElement, Exists, Select, bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.domain.ledger import OpenItem
from portal.gateways.payments import GatewayRequestError, GatewayUnavailable, MethodPreview, PaymentGateway
from portal.models import ChargeAttempt, Client, Contact, Invoice, InvoiceLink, PaymentRequest, PaymentRequestItem

from .. import ledger
from ..keysets import one_of
from ..locking import begin_write
from ..settings import get_settings
from .locks import end_reads
from .settings import payment_settings

NOT_ANSWERING = "The payment service is not answering. Nothing was charged; please try again."


class SurchargeConsentNeeded(DomainError):
    """The method carries a surcharge the client has not yet agreed to: show it and ask again."""

    def __init__(self, quote: Quote):
        super().__init__("Please review the card surcharge before paying.")
        self.quote = quote


class PaymentUnavailable(DomainError):
    """The request cannot be paid (already paid, a payment in progress, withdrawn, or the amounts no longer fit)."""


WITHDRAWN_WORDS = ("This payment is no longer asked for: what it was for was paid another way or canceled. "
                   "Nothing was charged. Your invoices show what you owe now.")


# --- what can be paid ---------------------------------------------------------------------------------------------

# Money on its way: an attempt that may still turn into money, or money that arrived but is not on the books yet
# (the gateway's answer is recorded before it is booked); a paid request is booked, so the balances count it.
_MAY_MOVE_MONEY = one_of(ChargeAttempt.status, rules.IN_FLIGHT | {rules.SUCCEEDED})
_NOT_BOOKED = PaymentRequest.status != rules.PaymentRequestStatus.PAID

def in_flight_by_invoice(session: Session, client_id: int, *, besides: int | None = None) -> dict[int, int]:
    """Cents per invoice already on their way: attempts that may still turn into money, and money that arrived but
    is not on the books yet (the gateway's answer is recorded before it is booked, in a transaction of its own)
    (``besides``: leave out that payment request's own attempts)."""
    rows = session.execute(_in_flight_statement(besides is not None), {"client_id": client_id, "besides": besides})
    return {invoice_id: int(cents) for invoice_id, cents in rows}


@cache
def _in_flight_statement(besides: bool) -> Select:
    """Built once each (paying, the plan banner and the plan pages read it)."""
    # each request counted once, however many of its attempts are busy
    busy = select(ChargeAttempt.request_id).where(_MAY_MOVE_MONEY)
    query = (
        select(PaymentRequestItem.invoice_id, func.sum(PaymentRequestItem.amount_cents))
        .join(PaymentRequest, PaymentRequest.id == PaymentRequestItem.request_id)
        .where(PaymentRequest.client_id == bindparam("client_id"), PaymentRequest.id.in_(busy), _NOT_BOOKED)
        .group_by(PaymentRequestItem.invoice_id)
    )
    return query.where(PaymentRequest.id != bindparam("besides")) if besides else query


@dataclass(frozen=True)
class PaymentInFlight:
    """Money on its way to one invoice: what the client and staff see on the invoice until it is booked."""

    invoice_id: int
    cents: int
    since: datetime  # when the client paid it
    method_type: str  # card | us_bank_account

    @property
    def is_bank_transfer(self) -> bool:
        return self.method_type == "us_bank_account"


def payments_in_flight(session: Session, client_id: int, invoice_ids: Iterable[int] | None = None
                       ) -> dict[int, list[PaymentInFlight]]:
    """The same money in_flight_by_invoice counts, one entry per checkout, by invoice (oldest first)."""
    ids = None if invoice_ids is None else list(invoice_ids)
    if ids == []:
        return {}
    found: dict[int, list[PaymentInFlight]] = {}
    rows = session.execute(_payments_in_flight_statement(ids is not None), {"client_id": client_id, "ids": ids})
    for invoice_id, cents, since, method_type in rows:
        found.setdefault(invoice_id, []).append(PaymentInFlight(invoice_id, int(cents), since, method_type))
    return found


@cache
def _payments_in_flight_statement(some_invoices: bool) -> Select:
    """Built once each (the portal's home and invoice pages read it on every view)."""
    query = (
        _items_in_flight(PaymentRequestItem.invoice_id, PaymentRequestItem.amount_cents,
                         func.min(ChargeAttempt.created_at), func.max(ChargeAttempt.method_type))
        .where(PaymentRequest.client_id == bindparam("client_id"))
        .group_by(PaymentRequestItem.id, PaymentRequestItem.invoice_id, PaymentRequestItem.amount_cents)
        .order_by(func.min(ChargeAttempt.created_at), PaymentRequestItem.id)
    )
    return query.where(PaymentRequestItem.invoice_id.in_(bindparam("ids", expanding=True))) if some_invoices else query


def in_flight_on(invoice_id: ColumnElement[int]) -> Exists:
    """Whether payments_in_flight has anything for this invoice, as a column of a list's query: a page of invoices
    then asks for the details only of those with money on its way (most pages have none)."""
    return _items_in_flight(PaymentRequestItem.id).where(PaymentRequestItem.invoice_id == invoice_id).exists()


def _items_in_flight(*columns) -> Select:
    return (select(*columns)
            .join(PaymentRequest, PaymentRequest.id == PaymentRequestItem.request_id)
            .join(ChargeAttempt, ChargeAttempt.request_id == PaymentRequest.id)
            .where(_MAY_MOVE_MONEY, _NOT_BOOKED))


@dataclass(frozen=True)
class InvoiceAwaited:
    """An invoice a payment is for, before the payment is booked (a bank transfer still clearing)."""

    invoice_id: int
    number: str
    cents: int


def invoices_awaiting(session: Session, client_id: int, payment_ids: Iterable[int]) -> dict[int, list[InvoiceAwaited]]:
    """By payment: the invoices (and amounts) its checkout chose, so a payment still clearing says what it pays."""
    query = (
        select(ChargeAttempt.payment_id, Invoice.id, Invoice.number, PaymentRequestItem.amount_cents)
        .join(PaymentRequest, PaymentRequest.id == ChargeAttempt.request_id)
        .join(PaymentRequestItem, PaymentRequestItem.request_id == PaymentRequest.id)
        .join(Invoice, Invoice.id == PaymentRequestItem.invoice_id)
        .where(ChargeAttempt.payment_id.in_(list(payment_ids)), PaymentRequest.client_id == client_id)
        .order_by(ChargeAttempt.payment_id, PaymentRequestItem.id)
    )
    found: dict[int, list[InvoiceAwaited]] = {}
    for payment_id, invoice_id, number, cents in session.execute(query):
        found.setdefault(payment_id, []).append(InvoiceAwaited(invoice_id, number, int(cents)))
    return found


def payable(session: Session, client_id: int, *, lock: bool = False, besides: int | None = None) -> list[OpenItem]:
    """The client's open invoices and what is left to pay on each once money in flight is counted."""
    items = ledger.open_items(session, client_id, lock=lock)
    return rules.payable_items(items, in_flight_by_invoice(session, client_id, besides=besides))


@dataclass(frozen=True)
class PayableInvoice:
    invoice: Invoice
    payable_cents: int  # what may be paid now
    in_flight_cents: int  # already on its way (a bank payment clearing, a charge not finished)


def payable_invoices(session: Session, client_id: int, *, invoice_id: int | None = None) -> list[PayableInvoice]:
    """Open invoices for the pay page, oldest due first, including those whose balance is all on its way."""
    in_flight = in_flight_by_invoice(session, client_id)
    items = [i for i in ledger.open_items(session, client_id) if invoice_id is None or i.invoice_id == invoice_id]
    invoices = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.id.in_([i.invoice_id for i in items])))}
    return [PayableInvoice(invoices[item.invoice_id], max(0, item.balance_cents - in_flight.get(item.invoice_id, 0)),
                           in_flight.get(item.invoice_id, 0)) for item in items]


def create_request(session: Session, *, client: Client, contact: Contact | None, amounts: Mapping[int, int],
                   link: InvoiceLink | None = None) -> PaymentRequest:
    """Store what the client chose to pay. A magic link pays only its own invoice."""
    if link is not None and set(amounts) - {link.invoice_id}:
        raise DomainError("This link can pay only its own invoice.")
    begin_write(session)  # what is still payable is checked, then the request written
    settings = payment_settings(session)
    items = payable(session, client.id, lock=True)
    currencies = set(session.scalars(select(Invoice.currency).where(Invoice.id.in_(list(amounts)))))
    if len(currencies) > 1:
        raise DomainError("Invoices in different currencies must be paid separately.")
    currency = currencies.pop() if currencies else get_settings(session).currency
    chosen = rules.choose_amounts(amounts, items, partial_minimum_cents=settings.partial_minimum_cents,
                                  currency=currency)
    request = PaymentRequest(
        public_id=secrets.token_urlsafe(24), client_id=client.id, contact_id=contact.id if contact else None,
        link_id=link.id if link else None, currency=currency, amount_cents=sum(chosen.values()),
        status=rules.PaymentRequestStatus.OPEN,
        created_at=now(),
        items=[PaymentRequestItem(invoice_id=invoice_id, amount_cents=cents) for invoice_id, cents in chosen.items()],
    )
    session.add(request)
    session.commit()
    return request


def request_by_public_id(session: Session, public_id: str) -> PaymentRequest | None:
    if not public_id or len(public_id) > 64:
        return None
    return session.scalar(_BY_PUBLIC_ID, {"public_id": public_id})


# A checkout's items with their invoices, for pages that name each (a client paying every open invoice at once pays
# dozens): read with the checkouts, not one by one.
WITH_INVOICES = selectinload(PaymentRequest.items).selectinload(PaymentRequestItem.invoice)
_BY_PUBLIC_ID = (select(PaymentRequest).options(WITH_INVOICES)  # built once
                 .where(PaymentRequest.public_id == bindparam("public_id")))


def attempts_of(session: Session, request: PaymentRequest) -> list[ChargeAttempt]:
    # queried, not read from request.attempts: a loaded collection can be stale within a long-lived session
    return list(session.scalars(select(ChargeAttempt).where(ChargeAttempt.request_id == request.id)
                                .order_by(ChargeAttempt.attempt_number)))


def latest_attempt(session: Session, request: PaymentRequest) -> ChargeAttempt | None:
    attempts = attempts_of(session, request)
    return attempts[-1] if attempts else None


def next_attempt_number(session: Session, request: PaymentRequest) -> int:
    return len(attempts_of(session, request)) + 1


def withdraw(session: Session, request_id: int | None) -> bool:
    """Withdraw an open checkout that nothing is paying (no attempt that paid or may still pay it, a bank's
    authentication step left open included): its link then shows WITHDRAWN_WORDS and charges nothing. Inside the
    caller's write transaction, which holds the client's invoices (the checkout's own attempt is written under that
    lock, so the two cannot cross). False when it is paid, already withdrawn, or money may be on its way through it
    (that payment decides)."""
    request = session.get(PaymentRequest, request_id, populate_existing=True) if request_id else None
    if request is None or request.status != rules.PaymentRequestStatus.OPEN or any(
            a.status in rules.IN_FLIGHT | {rules.SUCCEEDED} for a in attempts_of(session, request)):
        return False
    request.status = rules.PaymentRequestStatus.WITHDRAWN
    return True


def is_withdrawn(request: PaymentRequest) -> bool:
    return request.status == rules.PaymentRequestStatus.WITHDRAWN


def blocking_attempt(session: Session, request: PaymentRequest) -> ChargeAttempt | None:
    """An attempt that paid, or may still pay, this request: no new attempt may start while it exists."""
    for attempt in attempts_of(session, request):
        if attempt.status == rules.SUCCEEDED or (attempt.status in rules.IN_FLIGHT
                                                 and attempt.status != rules.REQUIRES_ACTION):
            return attempt
    return None


# --- quoting ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Quote:
    """What the client will be charged with this method: the invoice money plus any surcharge."""

    preview: MethodPreview
    base_cents: int
    surcharge: rules.SurchargeQuote
    currency: str

    @property
    def total_cents(self) -> int:
        return self.base_cents + self.surcharge.cents


def quote(session: Session, gateway: PaymentGateway, request: PaymentRequest, token: str) -> Quote:
    settings = payment_settings(session)
    region = request.client.region  # loaded before the call: nothing reads the database while the gateway answers
    end_reads(session)
    try:
        preview = gateway.preview_payment_method(token)
    except GatewayRequestError as e:
        raise DomainError("Those payment details could not be used. Please enter them again.") from e
    except GatewayUnavailable as e:
        raise DomainError(NOT_ANSWERING) from e
    surcharge = rules.surcharge_for(
        request.amount_cents, settings.surcharge_percent, method_type=preview.method_type,
        card_funding=preview.card_funding, client_region=region,
        blocked_regions=rules.parse_regions(settings.surcharge_blocked_regions),
    )
    return Quote(preview, request.amount_cents, surcharge, request.currency)
