"""Charging a checkout: one ChargeAttempt row per try, committed *before* the gateway is called.

The row's id makes the idempotency key, and the unique (request, attempt number) pair turns a double-submitted form
into a lookup: the second submission finds the first one's attempt and shows its status. The amount check and the
insert happen in one write-locked transaction (``begin_write``; on PostgreSQL the client's invoices are locked), so
two tabs paying the same invoice at once cannot both charge. No transaction is open while the gateway answers: what
the call needs is loaded before the attempt is committed. The answer goes through ``results.apply_result``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.gateways.payments import (
    ChargeResult,
    GatewayError,
    GatewayRequestError,
    GatewayUnavailable,
    IdempotencyConflict,
    PaymentGateway,
)
from portal.models import ChargeAttempt, Client, Contact, GatewayCustomer, Invoice, PaymentRequest, PaymentRequestItem

from ..idempotency import commit_with_key
from ..locking import begin_write
from ..runtime import Runtime
from .checkout import (
    NOT_ANSWERING,
    WITHDRAWN_WORDS,
    PaymentUnavailable,
    Quote,
    SurchargeConsentNeeded,
    attempts_of,
    blocking_attempt,
    is_withdrawn,
    next_attempt_number,
    payable,
    quote,
)
from .locks import end_reads, lock_attempt
from .results import apply_result, book_safely, finish_notices, needs_booking

log = logging.getLogger(__name__)

CHECKOUT, AUTOPAY, CONFIRM = rules.AttemptOrigin.CHECKOUT, rules.AttemptOrigin.AUTOPAY, rules.AttemptOrigin.CONFIRM


def pay(session: Session, rt: Runtime, request: PaymentRequest, *, token: str, attempt_number: int,
        accepted_surcharge_cents: int | None = None) -> ChargeAttempt:
    """Charge a payment request once. Submitting the same form again returns the attempt it already made."""
    existing = _attempt_numbered(session, request, attempt_number) or blocking_attempt(session, request)
    if existing is not None:
        return existing
    if is_withdrawn(request):
        raise PaymentUnavailable(WITHDRAWN_WORDS)
    if attempt_number != next_attempt_number(session, request):
        twin = _attempt_numbered(session, request, attempt_number)  # written by a twin submission meanwhile
        if twin is not None:
            return twin
        raise PaymentUnavailable("This payment form is out of date. Please check the payment's status below.")
    gateway = rt.gateway
    _cancel_abandoned(session, rt, request)
    offer = quote(session, gateway, request, token)
    if offer.surcharge.applies and accepted_surcharge_cents != offer.surcharge.cents:
        raise SurchargeConsentNeeded(offer)
    customer_id = ensure_customer(session, gateway, request.client, request.contact)
    attempt, call, written = _write_attempt(session, rt, request, attempt_number, offer, token, customer_id)
    if not written:  # another submission of the same form got there first: only its request charges
        return attempt
    return send_call(session, rt, attempt.id, call)


def _attempt_numbered(session: Session, request: PaymentRequest, number: int) -> ChargeAttempt | None:
    return session.scalar(select(ChargeAttempt).where(ChargeAttempt.request_id == request.id,
                                                      ChargeAttempt.attempt_number == number))


def _cancel_abandoned(session: Session, rt: Runtime, request: PaymentRequest) -> None:
    """An authentication step the client walked away from is canceled before another method is tried, so an old
    browser tab cannot complete it later and charge twice."""
    waiting = [(a.id, a.gateway_id) for a in attempts_of(session, request)
               if a.status == rules.REQUIRES_ACTION and a.gateway_id]
    for attempt_id, gateway_id in waiting:
        end_reads(session)
        try:
            result = rt.gateway.cancel(gateway_id)
        except GatewayRequestError:
            result = rt.gateway.retrieve(gateway_id)  # it moved on meanwhile: learn where to
        except GatewayUnavailable as e:
            raise DomainError(NOT_ANSWERING) from e
        apply_result(session, rt, attempt_id, result, source="browser")
        if rules.attempt_status_for(result.status) in (rules.SUCCEEDED, rules.PROCESSING):
            raise PaymentUnavailable("This payment was completed after all. See its status below.")


def ensure_customer(session: Session, gateway: PaymentGateway, client: Client, contact: Contact | None) -> str:
    """The client's gateway customer, created once and reused (two racing requests end with one row)."""
    row = session.scalar(select(GatewayCustomer).where(GatewayCustomer.client_id == client.id,
                                                       GatewayCustomer.gateway == gateway.name))
    client_id, name, email = client.id, client.legal_name, contact.email if contact else None
    existing_id = row.customer_id if row else None
    end_reads(session)
    try:
        customer_id = gateway.ensure_customer(client_ref=f"client-{client_id}", name=name, email=email,
                                              existing_id=existing_id)
    except GatewayError as e:
        raise DomainError(NOT_ANSWERING) from e
    if row is None:
        session.add(GatewayCustomer(client_id=client_id, gateway=gateway.name, customer_id=customer_id,
                                    created_at=now()))
    elif row.customer_id != customer_id:  # the old one was deleted at the gateway
        row.customer_id = customer_id
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # another request stored it first; the gateway gave both the same customer
    return customer_id


@dataclass(frozen=True)
class ChargeCall:
    """Everything one gateway charge call sends, read from the database before the call (and again, identical,
    when reconciliation replays it)."""

    idempotency_key: str
    customer_id: str
    amount_cents: int
    currency: str
    confirmation_token: str  # or, for autopay and its on-session confirmation, the saved method's id
    metadata: dict[str, str]
    return_url: str
    origin: str = CHECKOUT

    def send(self, gateway: PaymentGateway) -> ChargeResult:
        if self.origin == AUTOPAY:
            return gateway.charge_saved_method(idempotency_key=self.idempotency_key, customer_id=self.customer_id,
                                               payment_method=self.confirmation_token, amount_cents=self.amount_cents,
                                               currency=self.currency, metadata=self.metadata)
        if self.origin == CONFIRM:
            return gateway.charge(idempotency_key=self.idempotency_key, customer_id=self.customer_id,
                                  amount_cents=self.amount_cents, currency=self.currency,
                                  payment_method=self.confirmation_token, metadata=self.metadata,
                                  return_url=self.return_url)
        return gateway.charge(idempotency_key=self.idempotency_key, customer_id=self.customer_id,
                              amount_cents=self.amount_cents, currency=self.currency,
                              confirmation_token=self.confirmation_token, metadata=self.metadata,
                              return_url=self.return_url)


@dataclass(frozen=True)
class _RequestFacts:
    public_id: str
    client_id: int
    invoice_numbers: str
    invoice_id: int | None  # the one invoice it pays, when it pays one


def _facts(session: Session, request_id: int) -> _RequestFacts:
    request = session.get(PaymentRequest, request_id)
    assert request is not None
    rows = session.execute(select(Invoice.id, Invoice.number)
                           .join(PaymentRequestItem, PaymentRequestItem.invoice_id == Invoice.id)
                           .where(PaymentRequestItem.request_id == request_id).order_by(PaymentRequestItem.id)).all()
    only = rows[0][0] if len(rows) == 1 else None
    return _RequestFacts(request.public_id, request.client_id, ", ".join(number for _, number in rows), only)


def _call(rt: Runtime, attempt: ChargeAttempt, facts: _RequestFacts) -> ChargeCall:
    metadata = {"portal_charge_attempt": str(attempt.id), "portal_charge_key": attempt.idempotency_key or "",
                "portal_client": str(facts.client_id), "invoices": facts.invoice_numbers[:490]}
    if attempt.origin != CHECKOUT and facts.invoice_id is not None:
        metadata["invoice_id"] = str(facts.invoice_id)  # autopay charges one invoice per request
    return ChargeCall(
        idempotency_key=attempt.idempotency_key or "", customer_id=attempt.customer_id,
        amount_cents=attempt.charged_cents, currency=attempt.currency, confirmation_token=attempt.method_token,
        metadata=metadata,
        # from the configured base URL, not the request: reconciliation must replay the exact same call
        return_url=_return_url(rt, attempt, facts), origin=attempt.origin,
    )


def _return_url(rt: Runtime, attempt: ChargeAttempt, facts: _RequestFacts) -> str:
    """Where the bank's authentication page sends the client back. An autopay payment has no signed-in client or
    invoice link behind it: its client approves it through the emailed confirm link, and comes back there."""
    if attempt.origin == CONFIRM:
        from .autopay_confirm import confirm_url

        return confirm_url(rt, facts.public_id)
    return rt.url("payments.status", public_id=facts.public_id)


def _write_attempt(session: Session, rt: Runtime, request: PaymentRequest, number: int, offer: Quote, token: str,
                   customer_id: str) -> tuple[ChargeAttempt, ChargeCall | None, bool]:
    """Insert and commit the attempt row before any money moves; (attempt, None, False) when the same form's other
    submission wrote it first. Amounts are checked again under the write lock."""
    begin_write(session)
    # this request's own attempts are left out: a twin submission of this form must reach the unique constraint
    items = {item.invoice_id: item.balance_cents
             for item in payable(session, request.client_id, lock=True, besides=request.id)}
    # withdrawn meanwhile (the admin recorded a check for it): the withdrawal holds the same invoice locks
    if session.scalar(select(PaymentRequest.status).where(PaymentRequest.id == request.id)) \
            == rules.PaymentRequestStatus.WITHDRAWN:
        session.rollback()
        raise PaymentUnavailable(WITHDRAWN_WORDS)
    for item in request.items:
        if item.amount_cents > items.get(item.invoice_id, 0):
            session.rollback()
            twin = _attempt_numbered(session, request, number)
            if twin is not None:  # the twin submission's charge is what used up the balance: show it
                return twin, None, False
            raise PaymentUnavailable(f"{item.invoice.number} no longer owes that much (another payment arrived or "
                                     "is on its way). Please start again from the invoice.")
    facts = _facts(session, request.id)  # read now: nothing may open a transaction between the commit and the call
    stamp = now()
    attempt = ChargeAttempt(
        request_id=request.id, attempt_number=number, gateway=rt.gateway.name, customer_id=customer_id,
        method_token=token, status=rules.CREATED, method_type=offer.preview.method_type,
        card_funding=offer.preview.card_funding, brand=offer.preview.brand, last4=offer.preview.last4,
        amount_cents=offer.base_cents, surcharge_cents=offer.surcharge.cents,
        surcharge_percent=offer.surcharge.rate, charged_cents=offer.total_cents, currency=offer.currency,
        created_at=stamp, updated_at=stamp,
    )
    row, written = commit_with_key(session, attempt, "portal-charge", lambda: _attempt_numbered(session, request,
                                                                                                number))
    return row, _call(rt, row, facts) if written else None, written


def call_for(session: Session, rt: Runtime, attempt: ChargeAttempt) -> ChargeCall:
    """The exact gateway call of a written attempt, read from the database before the call (replays send it again)."""
    return _call(rt, attempt, _facts(session, attempt.request_id))


def call_for_invoice(rt: Runtime, attempt: ChargeAttempt, request: PaymentRequest, invoice: Invoice) -> ChargeCall:
    """The call of an attempt just written for a request paying one invoice: what ``call_for`` reads back from the
    database, built from the rows in hand (autopay writes many at once and must not read each one again)."""
    return _call(rt, attempt, _RequestFacts(request.public_id, request.client_id, invoice.number, invoice.id))


def send_call(session: Session, rt: Runtime, attempt_id: int, call: ChargeCall | None, *,
              source: str = "browser") -> ChargeAttempt:
    """Make the call of a committed attempt and apply the answer; no answer leaves the attempt ``unknown`` for
    reconciliation to replay with the same key."""
    assert call is not None
    return apply_answer(session, rt, attempt_id, ask_gateway(rt, attempt_id, call), source=source)


def ask_gateway(rt: Runtime, attempt_id: int, call: ChargeCall) -> ChargeResult | None:
    """The gateway call alone, no database work; None when its outcome is unknown."""
    try:
        return call.send(rt.gateway)
    except GatewayUnavailable:
        log.warning("charge attempt %s: outcome unknown (gateway unavailable)", attempt_id)
        return None
    except IdempotencyConflict:
        log.error("charge attempt %s: idempotency key reused with other parameters", attempt_id)
        return None
    except GatewayRequestError as e:
        # refused before anything was charged (expired or reused payment details)
        return ChargeResult(status="failed", gateway_id=None, failure_code=e.code or "invalid_request",
                            failure_message="Those payment details could not be used. Please enter them again.")


def apply_answer(session: Session, rt: Runtime, attempt_id: int, result: ChargeResult | None, *,
                 source: str) -> ChargeAttempt:
    """``ask_gateway``'s answer on our books; None (no answer) leaves the attempt ``unknown``."""
    if result is None:
        return _mark_unknown(session, attempt_id)
    return apply_result(session, rt, attempt_id, result, source=source)


def _mark_unknown(session: Session, attempt_id: int) -> ChargeAttempt:
    begin_write(session)
    attempt = lock_attempt(session, attempt_id)
    if attempt.status == rules.CREATED:
        attempt.status = rules.UNKNOWN
        attempt.updated_at = now()
    session.commit()
    return attempt


# --- learning what happened -------------------------------------------------------------------------------------------

def refresh_attempt(session: Session, rt: Runtime, attempt: ChargeAttempt) -> ChargeAttempt:
    """Ask the gateway about an unfinished attempt (the client is looking at its status page), and finish booking
    one whose answer is recorded but not yet on the books."""
    if attempt.status in rules.FINAL or not attempt.gateway_id or attempt.gateway != rt.gateway.name:
        if needs_booking(session, attempt) and book_safely(session, attempt.id):
            finish_notices(session, rt, attempt.id)
        return attempt
    attempt_id, gateway_id = attempt.id, attempt.gateway_id
    end_reads(session)
    try:
        result = rt.gateway.retrieve(gateway_id)
    except GatewayError:
        log.warning("could not refresh charge attempt %s", attempt_id)
        return attempt
    return apply_result(session, rt, attempt_id, result, source="reconcile")


def replay_charge(session: Session, rt: Runtime, attempt: ChargeAttempt) -> ChargeAttempt:
    """Repeat the exact gateway call of an attempt whose outcome is unknown. Same idempotency key, same arguments:
    the gateway answers with what happened the first time, or runs it now if it never arrived."""
    call = call_for(session, rt, attempt)
    attempt_id = attempt.id
    end_reads(session)
    try:
        result = call.send(rt.gateway)
    except GatewayRequestError as e:
        result = ChargeResult(status="failed", gateway_id=None, failure_code=e.code or "invalid_request",
                              failure_message="The payment could not be completed. Please try again.")
    return apply_result(session, rt, attempt_id, result, source="reconcile")
