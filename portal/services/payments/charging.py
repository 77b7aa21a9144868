"""Clients paying invoices online: choose what to pay, charge it once, and book the money when it is confirmed.

The order of things is what keeps it safe:

1. ``create_request`` stores the invoices and amounts the client chose (a checkout).
2. ``pay`` writes a ChargeAttempt row and commits it *before* calling the gateway; the row's id makes the
   idempotency key, and the unique (request, attempt number) pair turns a double-submitted form into a lookup.
3. ``apply_result`` is the one place a gateway answer changes our books, whoever brings it (the browser's request,
   a webhook, reconciliation). It locks the attempt, moves its state only forward, and allocates the money to the
   invoices only once the gateway says it *succeeded*: a bank debit stays "processing" and the invoice stays open.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import clock
from portal.clock import now, today
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.domain.ledger import OpenItem
from portal.gateways.payments import (
    ChargeResult,
    GatewayError,
    GatewayRequestError,
    GatewayUnavailable,
    IdempotencyConflict,
    MethodPreview,
    PaymentGateway,
    gateway_from_config,
)
from portal.models import (
    ChargeAttempt,
    Client,
    Contact,
    GatewayCustomer,
    Invoice,
    InvoiceLink,
    Payment,
    PaymentRequest,
    PaymentRequestItem,
    PaymentSettings,
)

from . import ledger, payment_notices
from . import payments as ledger_payments
from .idempotency import commit_with_key
from .payment_notices import describe_method
from .settings import get_settings

log = logging.getLogger(__name__)

STATUS_PATH = "/pay/{public_id}/status"  # the page the client returns to after a bank's authentication step


class SurchargeConsentNeeded(DomainError):
    """The method carries a surcharge the client has not yet agreed to: show it and ask again."""

    def __init__(self, quote: Quote):
        super().__init__("Please review the card surcharge before paying.")
        self.quote = quote


class PaymentUnavailable(DomainError):
    """The request cannot be paid (already paid, a payment in progress, or the amounts no longer fit)."""


# --- the gateway and the MSP's settings -----------------------------------------------------------------------------

def get_gateway() -> PaymentGateway:
    """The app's gateway: Stripe when keys are configured, otherwise the sandbox. Built once per app."""
    gateway = current_app.extensions.get("payment_gateway")
    if gateway is None:
        gateway = gateway_from_config(current_app.config, now=clock.now)
        current_app.extensions["payment_gateway"] = gateway
    return gateway


def payment_settings(session: Session) -> PaymentSettings:
    row = session.get(PaymentSettings, 1)
    if row is None:
        # unsaved defaults: reading settings never writes (a page view must not take a write lock)
        row = PaymentSettings(id=1, surcharge_percent=Decimal("0"), surcharge_blocked_regions="",
                              partial_minimum_cents=rules.DEFAULT_PARTIAL_MINIMUM_CENTS)
    return row


def update_payment_settings(session: Session, *, surcharge_percent: Decimal, blocked_regions: str,
                            partial_minimum_cents: int) -> PaymentSettings:
    rules.check_surcharge_percent(surcharge_percent)
    if partial_minimum_cents < rules.GATEWAY_MINIMUM_CENTS:
        raise DomainError("The smallest part payment must be at least $0.50 (the card networks' minimum).")
    row = payment_settings(session)
    if row not in session:
        session.add(row)
    row.surcharge_percent = surcharge_percent
    row.surcharge_blocked_regions = ", ".join(sorted(rules.parse_regions(blocked_regions)))
    row.partial_minimum_cents = partial_minimum_cents
    row.updated_at = now()
    session.commit()
    return row


# --- what can be paid ---------------------------------------------------------------------------------------------

def in_flight_by_invoice(session: Session, client_id: int, *, besides: int | None = None) -> dict[int, int]:
    """Cents per invoice already on their way: attempts that may still turn into money (``besides``: leave out
    that payment request's own attempts)."""
    busy = select(ChargeAttempt.request_id).where(ChargeAttempt.status.in_(rules.IN_FLIGHT))
    query = (
        select(PaymentRequestItem.invoice_id, func.sum(PaymentRequestItem.amount_cents))
        .join(PaymentRequest, PaymentRequest.id == PaymentRequestItem.request_id)
        .where(PaymentRequest.client_id == client_id, PaymentRequest.id.in_(busy))
        .group_by(PaymentRequestItem.invoice_id)
    )
    if besides is not None:
        query = query.where(PaymentRequest.id != besides)
    return {invoice_id: int(cents) for invoice_id, cents in session.execute(query)}


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
        link_id=link.id if link else None, currency=currency, amount_cents=sum(chosen.values()), status="open",
        created_at=now(),
        items=[PaymentRequestItem(invoice_id=invoice_id, amount_cents=cents) for invoice_id, cents in chosen.items()],
    )
    session.add(request)
    session.commit()
    return request


def request_by_public_id(session: Session, public_id: str) -> PaymentRequest | None:
    if not public_id or len(public_id) > 64:
        return None
    return session.scalar(select(PaymentRequest).where(PaymentRequest.public_id == public_id))


def attempts_of(session: Session, request: PaymentRequest) -> list[ChargeAttempt]:
    # queried, not read from request.attempts: a loaded collection can be stale within a long-lived session
    return list(session.scalars(select(ChargeAttempt).where(ChargeAttempt.request_id == request.id)
                                .order_by(ChargeAttempt.attempt_number)))


def latest_attempt(session: Session, request: PaymentRequest) -> ChargeAttempt | None:
    attempts = attempts_of(session, request)
    return attempts[-1] if attempts else None


def next_attempt_number(session: Session, request: PaymentRequest) -> int:
    return len(attempts_of(session, request)) + 1


def blocking_attempt(session: Session, request: PaymentRequest) -> ChargeAttempt | None:
    """An attempt that paid, or may still pay, this request: no new attempt may start while it exists."""
    for attempt in attempts_of(session, request):
        if attempt.status == rules.SUCCEEDED or (attempt.status in rules.IN_FLIGHT
                                                 and attempt.status != rules.REQUIRES_ACTION):
            return attempt
    return None


def payment_of(session: Session, attempt: ChargeAttempt) -> Payment | None:
    return session.get(Payment, attempt.payment_id) if attempt.payment_id else None


# --- quoting and paying ---------------------------------------------------------------------------------------------

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


def surcharge_terms(session: Session, client: Client) -> tuple[Decimal, bool]:
    """(rate, blocked) for this client: shown on the pay page before the client picks a method."""
    settings = payment_settings(session)
    blocked = client.region.strip().upper() in rules.parse_regions(settings.surcharge_blocked_regions)
    return min(settings.surcharge_percent, rules.MAX_SURCHARGE_PERCENT), blocked


def quote(session: Session, gateway: PaymentGateway, request: PaymentRequest, token: str) -> Quote:
    try:
        preview = gateway.preview_payment_method(token)
    except GatewayRequestError as e:
        raise DomainError("Those payment details could not be used. Please enter them again.") from e
    except GatewayUnavailable as e:
        raise DomainError("The payment service is not answering. Nothing was charged; please try again.") from e
    settings = payment_settings(session)
    surcharge = rules.surcharge_for(
        request.amount_cents, settings.surcharge_percent, method_type=preview.method_type,
        card_funding=preview.card_funding, client_region=request.client.region,
        blocked_regions=rules.parse_regions(settings.surcharge_blocked_regions),
    )
    return Quote(preview, request.amount_cents, surcharge, request.currency)


def pay(session: Session, gateway: PaymentGateway, request: PaymentRequest, *, token: str, attempt_number: int,
        accepted_surcharge_cents: int | None = None) -> ChargeAttempt:
    """Charge a payment request once. Submitting the same form again returns the attempt it already made."""
    existing = _attempt_numbered(session, request, attempt_number)
    if existing is not None:
        return existing
    blocking = blocking_attempt(session, request)
    if blocking is not None:
        return blocking
    if attempt_number != next_attempt_number(session, request):
        raise PaymentUnavailable("This payment form is out of date. Please check the payment's status below.")
    _cancel_abandoned(session, gateway, request)
    offer = quote(session, gateway, request, token)
    if offer.surcharge.applies and accepted_surcharge_cents != offer.surcharge.cents:
        raise SurchargeConsentNeeded(offer)
    customer_id = ensure_customer(session, gateway, request.client, request.contact)
    attempt, written = _write_attempt(session, gateway, request, attempt_number, offer, token, customer_id)
    if not written:  # another submission of the same form got there first: only its request charges
        return attempt
    return _charge(session, gateway, attempt)


def _attempt_numbered(session: Session, request: PaymentRequest, number: int) -> ChargeAttempt | None:
    return session.scalar(select(ChargeAttempt).where(ChargeAttempt.request_id == request.id,
                                                      ChargeAttempt.attempt_number == number))


def _cancel_abandoned(session: Session, gateway: PaymentGateway, request: PaymentRequest) -> None:
    """An authentication step the client walked away from is canceled before another method is tried, so an old
    browser tab cannot complete it later and charge twice."""
    for attempt in attempts_of(session, request):
        if attempt.status != rules.REQUIRES_ACTION or not attempt.gateway_id:
            continue
        try:
            result = gateway.cancel(attempt.gateway_id)
        except GatewayRequestError:
            result = gateway.retrieve(attempt.gateway_id)  # it moved on meanwhile: learn where to
        except GatewayUnavailable as e:
            raise DomainError("The payment service is not answering. Nothing was charged; please try again.") from e
        apply_result(session, attempt.id, result, source="browser")
        if result.status in ("succeeded", "processing"):
            raise PaymentUnavailable("This payment was completed after all. See its status below.")


def ensure_customer(session: Session, gateway: PaymentGateway, client: Client, contact: Contact | None) -> str:
    """The client's gateway customer, created once and reused (two racing requests end with one row)."""
    row = session.scalar(select(GatewayCustomer).where(GatewayCustomer.client_id == client.id,
                                                       GatewayCustomer.gateway == gateway.name))
    try:
        customer_id = gateway.ensure_customer(client_ref=f"client-{client.id}", name=client.legal_name,
                                              email=contact.email if contact else None,
                                              existing_id=row.customer_id if row else None)
    except GatewayError as e:
        raise DomainError("The payment service is not answering. Nothing was charged; please try again.") from e
    if row is None:
        session.add(GatewayCustomer(client_id=client.id, gateway=gateway.name, customer_id=customer_id,
                                    created_at=now()))
    elif row.customer_id != customer_id:  # the old one was deleted at the gateway
        row.customer_id = customer_id
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # another request stored it first; the gateway gave both the same customer
    return customer_id


def _write_attempt(session: Session, gateway: PaymentGateway, request: PaymentRequest, number: int, offer: Quote,
                   token: str, customer_id: str) -> tuple[ChargeAttempt, bool]:
    """Insert and commit the attempt row before any money moves; (attempt, False) when the same form's other
    submission wrote it first. Amounts are checked again under lock."""
    # this request's own attempts are left out: a twin submission of this form must reach the unique constraint
    items = {item.invoice_id: item.balance_cents
             for item in payable(session, request.client_id, lock=True, besides=request.id)}
    for item in request.items:
        if item.amount_cents > items.get(item.invoice_id, 0):
            session.rollback()
            raise PaymentUnavailable(f"{item.invoice.number} no longer owes that much (another payment arrived or "
                                     "is on its way). Please start again from the invoice.")
    stamp = now()
    attempt = ChargeAttempt(
        request_id=request.id, attempt_number=number, gateway=gateway.name, customer_id=customer_id,
        method_token=token, status=rules.CREATED, method_type=offer.preview.method_type,
        card_funding=offer.preview.card_funding, brand=offer.preview.brand, last4=offer.preview.last4,
        amount_cents=offer.base_cents, surcharge_cents=offer.surcharge.cents,
        surcharge_percent=offer.surcharge.rate, charged_cents=offer.total_cents, currency=offer.currency,
        created_at=stamp, updated_at=stamp,
    )
    return commit_with_key(session, attempt, "portal-charge", lambda: _attempt_numbered(session, request, number))


def _return_url(attempt: ChargeAttempt) -> str:
    # From the configured base URL, not the request: reconciliation must replay the exact same call.
    return current_app.config["BASE_URL"].rstrip("/") + STATUS_PATH.format(public_id=attempt.request.public_id)


def _metadata(attempt: ChargeAttempt) -> dict[str, str]:
    numbers = ", ".join(item.invoice.number for item in attempt.request.items)
    return {"portal_charge_attempt": str(attempt.id), "portal_charge_key": attempt.idempotency_key or "",
            "portal_client": str(attempt.request.client_id), "invoices": numbers[:490]}


def _charge(session: Session, gateway: PaymentGateway, attempt: ChargeAttempt) -> ChargeAttempt:
    try:
        result = gateway.charge(
            idempotency_key=attempt.idempotency_key or "", customer_id=attempt.customer_id,
            amount_cents=attempt.charged_cents, currency=attempt.currency, confirmation_token=attempt.method_token,
            metadata=_metadata(attempt), return_url=_return_url(attempt),
        )
    except GatewayUnavailable:
        log.warning("charge attempt %s: outcome unknown (gateway unavailable)", attempt.id)
        return _mark_unknown(session, attempt)
    except IdempotencyConflict:
        log.error("charge attempt %s: idempotency key reused with other parameters", attempt.id)
        return _mark_unknown(session, attempt)
    except GatewayRequestError as e:
        # refused before anything was charged (expired or reused payment details)
        result = ChargeResult(status="failed", gateway_id=None, failure_code=e.code or "invalid_request",
                              failure_message="Those payment details could not be used. Please enter them again.")
    return apply_result(session, attempt.id, result, source="browser")


def _mark_unknown(session: Session, attempt: ChargeAttempt) -> ChargeAttempt:
    attempt = _locked(session, attempt.id)
    if attempt.status == rules.CREATED:
        attempt.status = rules.UNKNOWN
        attempt.updated_at = now()
    session.commit()
    return attempt


# --- the one place gateway answers change our books ----------------------------------------------------------------

def _locked(session: Session, attempt_id: int) -> ChargeAttempt:
    attempt = session.get(ChargeAttempt, attempt_id, with_for_update=True, populate_existing=True)
    if attempt is None:
        raise LookupError(f"no charge attempt {attempt_id}")
    return attempt


def apply_result(session: Session, attempt_id: int, result: ChargeResult, *, source: str) -> ChargeAttempt:
    """Record what the gateway says about an attempt. Safe to call again, late, or out of order.

    ``source`` is "browser" when the paying client is looking at the outcome right now; failures learned any other
    way (a bank debit returned days later, a webhook, reconciliation) are emailed to the client.
    """
    attempt = _locked(session, attempt_id)
    if result.gateway_id and attempt.gateway_id and result.gateway_id != attempt.gateway_id:
        log.error("charge attempt %s is %s, ignoring a result for %s", attempt.id, attempt.gateway_id,
                  result.gateway_id)
        session.rollback()
        return attempt
    before = attempt.status
    after = rules.advance(before, rules.attempt_status_for(result.status))
    if result.gateway_id and not attempt.gateway_id:
        attempt.gateway_id = result.gateway_id
    if after == before and before in rules.FINAL:
        session.commit()  # keeps a newly learnt gateway id
        return attempt
    _copy_method_details(attempt, result)
    attempt.status = after
    attempt.updated_at = now()
    if after == rules.REQUIRES_ACTION:
        attempt.next_action_url = result.next_action_url
    if after in (rules.FAILED, rules.CANCELED) and before != after:
        attempt.failure_code = result.failure_code or result.decline_code or after
        attempt.failure_message = result.failure_message or (
            "The payment was canceled." if after == rules.CANCELED else "The payment could not be completed.")
    if after in rules.FINAL and before not in rules.FINAL:
        attempt.settled_at = now()
    _sync_payment(session, attempt, arrived=after == rules.SUCCEEDED and before != rules.SUCCEEDED)
    session.commit()
    if after == rules.SUCCEEDED and before != rules.SUCCEEDED:
        payment_notices.send_receipt(session, attempt)
    if after == rules.FAILED and before != rules.FAILED and (before == rules.PROCESSING or source != "browser"):
        payment_notices.send_failure_notice(session, attempt)
    return attempt


def _copy_method_details(attempt: ChargeAttempt, result: ChargeResult) -> None:
    if result.method_type in ("card", "us_bank_account"):
        attempt.method_type = result.method_type
    attempt.card_funding = result.card_funding or attempt.card_funding
    attempt.brand = result.brand or attempt.brand
    attempt.last4 = result.last4 or attempt.last4


def _sync_payment(session: Session, attempt: ChargeAttempt, *, arrived: bool) -> None:
    """Keep the ledger Payment in step with the attempt; allocate it to the invoices when the money arrived."""
    status = rules.payment_status_for(attempt.status)
    if status is None:
        return
    payment = payment_of(session, attempt)
    if payment is None:
        if status in (rules.FAILED, rules.CANCELED):
            return  # a decline on the spot: no money ever moved, so the ledger never hears of it
        payment = Payment(
            client_id=attempt.request.client_id, method="ach" if attempt.method_type == "us_bank_account" else "card",
            status=status, amount_cents=attempt.amount_cents, currency=attempt.currency, received_on=today(),
            reference=(attempt.gateway_id or "")[:100], memo=f"Online payment: {describe_method(attempt)}",
            created_at=now(),
        )
        session.add(payment)
        session.flush()
        attempt.payment_id = payment.id
    payment.status = status
    if payment.reference == "" and attempt.gateway_id:
        payment.reference = attempt.gateway_id[:100]
    if arrived:
        payment.received_on = today()  # a bank debit arrives days after the client paid
        chosen = {item.invoice_id: item.amount_cents for item in attempt.request.items}
        plan = rules.allocation_on_arrival(chosen, ledger.open_items(session, payment.client_id, lock=True))
        ledger_payments.apply_arrived_payment(session, payment, plan)
        attempt.request.status = "paid"


# --- learning what happened -------------------------------------------------------------------------------------------

def refresh_attempt(session: Session, gateway: PaymentGateway, attempt: ChargeAttempt) -> ChargeAttempt:
    """Ask the gateway about an unfinished attempt (the client is looking at its status page)."""
    if attempt.status in rules.FINAL or not attempt.gateway_id or attempt.gateway != gateway.name:
        return attempt
    try:
        result = gateway.retrieve(attempt.gateway_id)
    except GatewayError:
        log.warning("could not refresh charge attempt %s", attempt.id)
        return attempt
    return apply_result(session, attempt.id, result, source="reconcile")


def replay_charge(session: Session, gateway: PaymentGateway, attempt: ChargeAttempt) -> ChargeAttempt:
    """Repeat the exact gateway call of an attempt whose outcome is unknown. Same idempotency key, same arguments:
    the gateway answers with what happened the first time, or runs it now if it never arrived."""
    try:
        result = gateway.charge(
            idempotency_key=attempt.idempotency_key or "", customer_id=attempt.customer_id,
            amount_cents=attempt.charged_cents, currency=attempt.currency, confirmation_token=attempt.method_token,
            metadata=_metadata(attempt), return_url=_return_url(attempt),
        )
    except GatewayRequestError as e:
        result = ChargeResult(status="failed", gateway_id=None, failure_code=e.code or "invalid_request",
                              failure_message="The payment could not be completed. Please try again.")
    return apply_result(session, attempt.id, result, source="reconcile")
