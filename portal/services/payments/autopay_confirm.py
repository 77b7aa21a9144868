"""The client approves, on-session, an autopay charge their bank would not take unattended (authentication_required).

The decline email links to ``payments.confirm`` with a signed token naming the payment request. The token is
deterministic (no timestamp) so the same URL can be the gateway's return address in a replayed call; the link's
age is checked against the day autopay tried the charge instead (``LINK_DAYS``).

Approving writes a new attempt on the same payment request (origin ``confirm``: the saved method, client present),
committed before the gateway call like every charge, then sends it; the bank's authentication page, if it asks for
one, sends the client back to the same confirm page, which shows where the payment stands. The unique (request,
attempt number) pair makes a double-clicked "Approve" one charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import declines
from portal.domain import payments as rules
from portal.domain.autopay import SavedMethodStatus
from portal.domain.errors import DomainError
from portal.models import AutopayCharge, ChargeAttempt, Invoice, PaymentRequest, SavedPaymentMethod

from ..idempotency import commit_with_key
from ..locking import begin_write
from ..runtime import Runtime
from . import charging
from .checkout import attempts_of, blocking_attempt, next_attempt_number, payable
from .locks import end_reads

#: How long the emailed "approve this payment" link works, counted from the day autopay tried the charge.
LINK_DAYS = 30
INVALID = "This approval link is not valid. Open the latest email about this payment, or sign in to pay the invoice."
EXPIRED = "This approval link has expired. Please sign in to pay the invoice."


def _serializer(rt: Runtime) -> URLSafeSerializer:
    return URLSafeSerializer(rt.secret_key, salt="autopay-confirm")


def link_token(rt: Runtime, public_id: str) -> str:
    return _serializer(rt).dumps(public_id)


def confirm_url(rt: Runtime, public_id: str) -> str:
    return rt.url("payments.confirm", public_id=public_id, t=link_token(rt, public_id))


@dataclass(frozen=True)
class Approval:
    """What the confirm page shows: the payment, its invoice and where it stands."""

    request: PaymentRequest
    charge: AutopayCharge
    invoice: Invoice
    attempt: ChargeAttempt  # the latest attempt on the request
    method_label: str
    discount_cents: int

    @property
    def paid(self) -> bool:
        return self.attempt.status == rules.SUCCEEDED

    @property
    def in_progress(self) -> bool:
        return self.attempt.status in rules.IN_FLIGHT and self.attempt.status != rules.REQUIRES_ACTION

    @property
    def needs_approval(self) -> bool:
        return not self.paid and not self.in_progress


def open_link(session: Session, rt: Runtime, public_id: str, token: str, today: date) -> Approval:
    """The approval behind a link, or DomainError (a forged, another payment's or an expired link)."""
    try:
        valid = _serializer(rt).loads(token or "") == public_id
    except BadSignature:
        valid = False
    request = session.scalar(select(PaymentRequest).where(PaymentRequest.public_id == public_id)) if valid else None
    charge = session.scalar(select(AutopayCharge).where(AutopayCharge.request_id == request.id)) if request else None
    if charge is None or charge.decline_class != declines.AUTHENTICATION_REQUIRED:
        raise DomainError(INVALID)
    attempt = attempts_of(session, request)[-1]
    if attempt.status != rules.SUCCEEDED and today > charge.charged_on + timedelta(days=LINK_DAYS):
        raise DomainError(EXPIRED)
    invoice = session.get(Invoice, charge.invoice_id)
    assert invoice is not None
    label = f"{(attempt.brand or 'Card').title()} ending {attempt.last4}" if attempt.last4 else "your saved method"
    return Approval(request, charge, invoice, attempt, label, charge.discount_cents)


def approve(session: Session, rt: Runtime, public_id: str, token: str, today: date) -> ChargeAttempt:
    """Charge the saved method with the client present. A payment already paid or on its way is returned as is."""
    approval = open_link(session, rt, public_id, token, today)
    request, charge = approval.request, approval.charge
    existing = blocking_attempt(session, request)
    if existing is not None:
        return existing
    if approval.attempt.status == rules.REQUIRES_ACTION and approval.attempt.origin == charging.CONFIRM:
        return approval.attempt  # approved already; the bank's page is waiting for the client
    number = next_attempt_number(session, request)
    begin_write(session)
    # the lock order: the client's invoices first; then check the invoice still owes what this payment settles
    owed = {item.invoice_id: item.balance_cents
            for item in payable(session, request.client_id, lock=True, besides=request.id)}
    if owed.get(charge.invoice_id, 0) < request.amount_cents + charge.discount_cents:
        session.rollback()
        raise DomainError(f"Invoice {approval.invoice.number} no longer owes that amount (another payment arrived "
                          "or is on its way). Please sign in to see what is left to pay.")
    method = session.scalar(select(SavedPaymentMethod).where(
        SavedPaymentMethod.client_id == request.client_id, SavedPaymentMethod.method_id == charge.method_id))
    if method is None or method.status == SavedMethodStatus.REMOVED:
        session.rollback()
        raise DomainError("The payment method autopay tried was removed. Please sign in to pay the invoice.")
    last = approval.attempt
    stamp = now()
    attempt = ChargeAttempt(
        request_id=request.id, attempt_number=number, gateway=last.gateway, customer_id=last.customer_id,
        method_token=charge.method_id, origin=charging.CONFIRM, status=rules.CREATED, method_type=last.method_type,
        card_funding=last.card_funding, brand=last.brand, last4=last.last4, amount_cents=request.amount_cents,
        surcharge_cents=0, charged_cents=request.amount_cents, currency=request.currency, created_at=stamp,
        updated_at=stamp,
    )
    row, written = commit_with_key(session, attempt, "portal-confirm", lambda: session.scalar(
        select(ChargeAttempt).where(ChargeAttempt.request_id == request.id, ChargeAttempt.attempt_number == number)))
    if not written:  # the same button pressed twice: the first press charges
        return row
    call = charging.call_for(session, rt, row)
    end_reads(session)  # no transaction open while the gateway answers
    return charging.send_call(session, rt, row.id, call, source="browser")
