"""One-off charge authorizations before urgent service: the MSP sends one ("charge $X now for the overdue
balance"), the client signs it in the portal (the rendered-agreement machinery, kind ``charge_authorization``) and
it is charged at once: off-session on the card on file, or through the normal checkout with a new card.

No double charge: signing, the payment request and (for a card on file) the ChargeAttempt with its idempotency key
are written in one transaction, under the client's invoices' lock and the authorization's row lock, and committed
before the gateway call (``payments.charging.send_call``); a second submission finds the authorization signed and
is refused with nothing charged. As soon as the charge succeeds the payment is booked (``payments.results``), so
the standing the help desk reads, computed live from the ledger, lifts at once.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import autopay as A
from portal.domain import charge_authorizations as C
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.domain.ledger import allocate_oldest_first
from portal.domain.money import format_money
from portal.models import (
    ChargeAttempt,
    ChargeAuthorization,
    Client,
    Contact,
    PaymentRequest,
    PaymentRequestItem,
    SavedPaymentMethod,
    StaffUser,
)

from .. import mail
from .. import terms as terms_service
from ..agreements import rendered
from ..agreements.chain import Meta
from ..autopay import methods
from ..autopay.enrollment import SignedBy
from ..errors import NotFound
from ..locking import begin_write
from ..payments import charging, checkout
from ..payments.autopay_mail import billing_emails
from ..runtime import Runtime
from ..settings import get_settings
from . import notices

log = logging.getLogger(__name__)

S = C.ChargeAuthorizationStatus
NEW_CARD = "a new card entered at checkout"
BALANCE_CHANGED = ("The balance changed since this authorization was sent (a payment arrived or is on its way). "
                   "Nothing was charged; ask your provider for a new authorization.")


def open_cents(session: Session, client_id: int) -> int:
    """What the client may still be charged: open balances less money already on its way."""
    return sum(item.balance_cents for item in checkout.payable(session, client_id))


def send(session: Session, rt: Runtime, client: Client, *, amount_cents: int | None, reason: str,
         valid_days: int = C.DEFAULT_VALID_DAYS, staff: StaffUser | None) -> ChargeAuthorization:
    """Write the authorization and email the client's billing contacts the link to sign it."""
    reason = " ".join((reason or "").split())
    if len(reason) > 500:
        raise DomainError("The reason is limited to 500 characters.")
    amount = C.check_amount(amount_cents, open_cents(session, client.id), rules.GATEWAY_MINIMUM_CENTS)
    if not billing_emails(client):
        raise DomainError("This client has no billing contact with an email address to send the authorization to.")
    at = now()
    row = ChargeAuthorization(public_id=secrets.token_urlsafe(18), client_id=client.id, amount_cents=amount,
                              currency=get_settings(session).currency, reason=reason, status=S.SENT,
                              created_by_id=staff.id if staff else None, created_at=at,
                              expires_at=C.expires_at(at, valid_days))
    session.add(row)
    session.commit()
    context = {"msp": get_settings(session), "client": client, "authorization": row,
               "sign_url": sign_url(rt, row)}
    delivery = mail.send(session, rt, to=billing_emails(client),
                         subject=f"Please authorize a payment of {format_money(amount, row.currency)}",
                         template="charge_authorization_request", context=context)
    if not delivery.ok:
        log.error("charge authorization %s: email not delivered: %s", row.id, delivery.error)
    return row


def sign_url(rt: Runtime, row: ChargeAuthorization) -> str:
    return rt.url("enforcement.charge_authorization", public_id=row.public_id)


def cancel(session: Session, client: Client, authorization_id: int, *, staff: StaffUser) -> ChargeAuthorization:
    """The MSP withdraws an authorization: one waiting for a signature, or one signed whose charge never went
    through (signed without a card on file and never paid at the checkout, or declined). Its checkout is withdrawn;
    the signed agreement stays. Refused while a charge through it succeeded or may still succeed."""
    begin_write(session)
    try:
        checkout.payable(session, client.id, lock=True)  # the lock order: the client's invoices, then the row
        row = session.get(ChargeAuthorization, authorization_id, with_for_update=True, populate_existing=True)
        if row is None or row.client_id != client.id:
            raise NotFound()
        if row.status not in C.CANCELABLE:
            raise DomainError(f"This authorization is {C.LABELS[row.status].lower()}; it cannot be canceled.")
        if row.request_id is not None and not checkout.withdraw(session, row.request_id):
            raise DomainError("A payment through this authorization went through or is on its way; it cannot be "
                              "canceled (refund it from its payment instead).")
        row.status = S.CANCELED
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return row


def of_client(session: Session, client_id: int) -> list[ChargeAuthorization]:
    return list(session.scalars(_OF_CLIENT, {"client_id": client_id}))


_OF_CLIENT = (select(ChargeAuthorization).where(ChargeAuthorization.client_id == bindparam("client_id"))
              .order_by(ChargeAuthorization.id.desc()))


def for_contact(session: Session, contact: Contact, public_id: str) -> ChargeAuthorization:
    """The contact's own client's authorization; another client's (or an unknown) id is NotFound."""
    if not public_id or len(public_id) > 40:
        raise NotFound()
    row = session.scalar(select(ChargeAuthorization).where(ChargeAuthorization.public_id == public_id,
                                                           ChargeAuthorization.client_id == contact.client_id))
    if row is None:
        raise NotFound()
    return row


def shown_status(row: ChargeAuthorization) -> str:
    """An unsigned authorization past its date reads as expired (nothing needs to run for that)."""
    if row.status == S.SENT and now() >= row.expires_at:
        return S.EXPIRED
    return row.status


def card_on_file(session: Session, rt: Runtime, client_id: int) -> SavedPaymentMethod | None:
    """The client's usable saved card on this gateway, the default first."""
    cards = [m for m in methods.methods_of(session, client_id)
             if m.status == methods.ACTIVE and m.method_type == "card" and m.gateway == rt.gateway.name
             and methods.expiry(m, today()) is not A.Expiry.EXPIRED]
    cards.sort(key=lambda m: (not m.is_default, not m.is_fallback, m.id))
    return cards[0] if cards and methods.customer_of(session, client_id, rt.gateway.name) else None


def _allocation(session: Session, client_id: int, amount_cents: int, *, lock: bool) -> dict[int, int]:
    items = checkout.payable(session, client_id, lock=lock)
    chosen = allocate_oldest_first(amount_cents, items)
    if sum(chosen.values()) < amount_cents:
        raise DomainError(BALANCE_CHANGED)
    return chosen


def ensure_published(session: Session) -> None:
    """A fresh install publishes the shipped authorization text and E-SIGN disclosure on first use."""
    terms_service.published(session, C.CHARGE_AUTHORIZATION, "Default text")
    terms_service.ensure_disclosure(session)


def document(session: Session, rt: Runtime, row: ChargeAuthorization, card: SavedPaymentMethod | None
             ) -> rendered.Document:
    """The authorization as the client is shown it and signs it: the amount, the card, the invoices it pays."""
    msp = get_settings(session)
    client = row.client
    try:
        chosen = _allocation(session, row.client_id, row.amount_cents, lock=False)
    except DomainError:
        chosen = {}
    numbers = {i.invoice_id: i.label for i in checkout.payable(session, row.client_id)}
    invoices = ", ".join(f"{numbers.get(i, i)} ({format_money(c, row.currency)})" for i, c in chosen.items())
    variables = C.merge_variables(
        msp_legal_name=msp.legal_name or msp.name, msp_email=msp.reply_to or msp.email,
        client_legal_name=client.legal_name, amount=format_money(row.amount_cents, row.currency),
        method=methods.label(card) if card else NEW_CARD, invoices=invoices, reason=row.reason,
        effective_date=today())
    return rendered.render(rendered.current_version(session, C.CHARGE_AUTHORIZATION), variables)


@dataclass(frozen=True)
class Outcome:
    authorization: ChargeAuthorization
    request: PaymentRequest
    attempt: ChargeAttempt | None  # None: no card on file, the client pays at the checkout

    @property
    def charged(self) -> bool:
        return self.attempt is not None and self.attempt.status == rules.SUCCEEDED


def sign(session: Session, rt: Runtime, contact: Contact, public_id: str, signed: SignedBy, *,
         meta: Meta) -> Outcome:
    """Sign and charge at once. Refused, with nothing signed or charged: another client's authorization
    (NotFound), an expired, canceled or already signed one, a balance that no longer covers the amount."""
    row = for_contact(session, contact, public_id)
    C.check_signable(row.status, row.expires_at, now())
    ensure_published(session)
    card = card_on_file(session, rt, contact.client_id)
    customer = methods.customer_of(session, contact.client_id, rt.gateway.name) if card else None
    call = None
    begin_write(session)
    try:
        # the lock order: the client's invoices first, then the authorization; its state is checked before the
        # balance, so a twin submission hears "already signed", not "the balance changed"
        items = checkout.payable(session, contact.client_id, lock=True)
        row = session.get(ChargeAuthorization, row.id, with_for_update=True, populate_existing=True)
        assert row is not None
        C.check_signable(row.status, row.expires_at, now())
        chosen = allocate_oldest_first(row.amount_cents, items)
        if sum(chosen.values()) < row.amount_cents:
            raise DomainError(BALANCE_CHANGED)
        client = session.get(Client, row.client_id)
        doc = document(session, rt, row, card)
        agreement = rendered.sign_rendered(
            session, rt, client, contact, doc, shown_sha256=signed.shown_sha256, full_name=signed.full_name,
            title=signed.title, authority_confirmed=signed.authority_confirmed,
            consent_confirmed=signed.consent_confirmed, signature=signed.signature, meta=meta,
            data={"charge_authorization": row.public_id, "amount_cents": row.amount_cents, "currency": row.currency,
                  "method": methods.label(card) if card else NEW_CARD})
        at = now()
        request = PaymentRequest(
            public_id=secrets.token_urlsafe(24), client_id=row.client_id, contact_id=contact.id, link_id=None,
            currency=row.currency, amount_cents=row.amount_cents, status=rules.PaymentRequestStatus.OPEN,
            created_at=at, items=[PaymentRequestItem(invoice_id=i, amount_cents=c) for i, c in chosen.items()])
        session.add(request)
        session.flush()
        row.status, row.agreement_id, row.request_id, row.signed_at = S.SIGNED, agreement.id, request.id, at
        attempt = None
        if card is not None and customer is not None:
            attempt = ChargeAttempt(
                request_id=request.id, attempt_number=1, gateway=rt.gateway.name, customer_id=customer,
                method_token=card.method_id, origin=rules.AttemptOrigin.AUTOPAY, status=rules.CREATED,
                method_type=card.method_type, card_funding=card.card_funding, brand=card.brand, last4=card.last4,
                amount_cents=row.amount_cents, surcharge_cents=0, charged_cents=row.amount_cents,
                currency=row.currency, created_at=at, updated_at=at)
            session.add(attempt)
            session.flush()
            attempt.idempotency_key = f"portal-chargeauth-{attempt.id}-{secrets.token_hex(6)}"
            session.flush()
            call = charging.call_for(session, rt, attempt)  # read now: nothing may read between commit and call
        session.commit()
    except BaseException:
        session.rollback()
        raise
    rendered.deliver_copy(session, rt, agreement, contact, meta)
    if attempt is not None:
        attempt = charging.send_call(session, rt, attempt.id, call, source="browser")
    row = sync(session, rt, row.id)
    return Outcome(row, request, attempt)


def sync(session: Session, rt: Runtime, authorization_id: int) -> ChargeAuthorization:
    """A signed authorization follows its payment request: charged once a charge succeeded, failed after a
    decline (the client may still pay it at the checkout). A charge lifts a notice whose grounds are gone."""
    row = session.get(ChargeAuthorization, authorization_id, populate_existing=True)
    assert row is not None
    if row.status not in (S.SIGNED, S.FAILED) or row.request_id is None:
        return row
    statuses = set(session.scalars(select(ChargeAttempt.status).where(ChargeAttempt.request_id == row.request_id)))
    if rules.SUCCEEDED in statuses:
        new = S.CHARGED
    elif statuses and statuses <= (rules.FINAL - {rules.SUCCEEDED}):
        new = S.FAILED
    else:
        new = S.SIGNED
    if new != row.status:
        begin_write(session)
        row = session.get(ChargeAuthorization, authorization_id, with_for_update=True, populate_existing=True)
        assert row is not None
        if row.status in (S.SIGNED, S.FAILED):
            row.status = new
        session.commit()
        if new == S.CHARGED:
            notices.withdraw_paid(session, rt, client_id=row.client_id)
    return row


def latest_attempt(session: Session, row: ChargeAuthorization) -> ChargeAttempt | None:
    if row.request_id is None:
        return None
    return session.scalar(select(ChargeAttempt).where(ChargeAttempt.request_id == row.request_id)
                          .order_by(ChargeAttempt.attempt_number.desc()).limit(1))
