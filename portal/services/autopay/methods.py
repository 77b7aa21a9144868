"""Saved payment methods: a client contact saves a card or US bank account on the client's gateway customer
(a SetupIntent confirmed with a ConfirmationToken), passes 3-D Secure if the card's bank asks for it, verifies
microdeposits, names a default and a fallback, and removes one (detached on the gateway; the row and its signed
authorization stay).

3-D Secure: ``save`` answers :class:`NeedsAuthentication` and saves nothing; the browser runs the bank's challenge
(Stripe.js, or the sandbox's stand-in page), then hands back the setup id (posted, or in the gateway's return URL)
to ``complete_setup``. That id is only a claim: the setup is read back from the gateway, must belong to this
client's gateway customer and must have succeeded; its unique ``setup_id`` makes a replay return the saved row.

No transaction is held across a gateway call: the customer is ensured (its own commit), the gateway answers, then
``begin_write`` and the answer is stored. The setup's idempotency key comes from the form's one-time nonce, so a
double-submitted or replayed form gets the gateway's first answer back and the unique ``setup_id`` stops a second
row; a setup of another gateway customer (a forged confirmation) is refused and nothing is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import autopay as A
from portal.domain.authorizations import method_description
from portal.domain.errors import DomainError
from portal.domain.payments import REQUIRES_ACTION
from portal.gateways.payments import (
    GatewayError,
    GatewayRequestError,
    MandateAcceptance,
    SandboxGateway,
    SetupResult,
)
from portal.models import Client, Contact, GatewayCustomer, SavedPaymentMethod

from ..errors import NotFound
from ..locking import begin_write
from ..payments import ensure_customer
from ..runtime import Runtime

_S = A.SavedMethodStatus
PENDING, ACTIVE, REMOVED, BLOCKED = _S.PENDING_VERIFICATION, _S.ACTIVE, _S.REMOVED, _S.BLOCKED
SHOWN = (PENDING, ACTIVE, BLOCKED)
NOT_YOURS = "That payment method does not belong to your account."
NOT_ANSWERING = "The payment processor is not answering. Nothing was saved; please try again in a few minutes."
NOT_CONFIRMED = ("Your bank has not confirmed this card yet, so nothing was saved. Please add the card again and "
                 "complete your bank's check, or use another card.")
AUTHENTICATION_FAILED = "setup_intent_authentication_failure"  # Stripe's code; the sandbox uses it too
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def label(method: SavedPaymentMethod) -> str:
    return method_description(method.method_type, brand=method.brand, last4=method.last4, bank_name=method.bank_name)


def expiry(method: SavedPaymentMethod, today: date) -> A.Expiry | None:
    """Expired, expiring within 30 days, valid; None for a bank account."""
    if method.method_type != "card" or method.exp_month is None or method.exp_year is None:
        return None
    return A.card_expiry(method.exp_month, method.exp_year, today)


def methods_of(session: Session, client_id: int, *, include_removed: bool = False) -> list[SavedPaymentMethod]:
    query = select(SavedPaymentMethod).where(SavedPaymentMethod.client_id == client_id)
    if not include_removed:
        query = query.where(SavedPaymentMethod.status.in_(SHOWN))
    return list(session.scalars(query.order_by(SavedPaymentMethod.is_default.desc(),
                                               SavedPaymentMethod.is_fallback.desc(), SavedPaymentMethod.id)))


def method_of(session: Session, client_id: int, method_row_id: int, *, lock: bool = False) -> SavedPaymentMethod:
    """One of this client's saved methods by our row id; another client's (or an unknown) id is NotFound."""
    query = select(SavedPaymentMethod).where(SavedPaymentMethod.id == method_row_id,
                                             SavedPaymentMethod.client_id == client_id)
    if lock:
        query = query.with_for_update()
    method = session.scalar(query)
    if method is None:
        raise NotFound()
    return method


def domain_methods(methods: list[SavedPaymentMethod]) -> list[A.SavedMethod]:
    """The rows as portal.domain.autopay sees them (usable_methods decides what is charged, and in what order)."""
    return [A.SavedMethod(
        method_id=m.method_id, method_type=m.method_type,
        role=A.DEFAULT if m.is_default else A.FALLBACK if m.is_fallback else A.OTHER,
        verified=m.status != PENDING, authorized=m.authorization_id is not None,
        exp_month=m.exp_month, exp_year=m.exp_year, retired=m.status in (REMOVED, BLOCKED),
    ) for m in methods]


@dataclass(frozen=True)
class NewMethod:
    token: str  # the ConfirmationToken id (Stripe) or the sandbox token
    nonce: str  # the form's one-time id: the setup's idempotency key
    bank_verification: str = "automatic"


@dataclass(frozen=True)
class NeedsAuthentication:
    """The card's bank asks for 3-D Secure before the card is saved: nothing is stored until the client passes the
    challenge and ``complete_setup`` reads the setup back."""

    setup_id: str
    client_secret: str | None  # Stripe.js runs the challenge with it (handleNextAction); None in the sandbox


def save(session: Session, rt: Runtime, contact: Contact, new: NewMethod, acceptance: MandateAcceptance
         ) -> SavedPaymentMethod | NeedsAuthentication:
    """Save a method on the client's gateway customer. A card is active at once (after 3-D Secure, if its bank
    asks: see NeedsAuthentication); a bank account waiting for microdeposits is stored as pending (shown, never
    charged)."""
    if not _NONCE.fullmatch(new.nonce or ""):
        raise DomainError("This form is incomplete. Please reload the page.")
    token = (new.token or "").strip()
    if not token or len(token) > 255:
        raise DomainError("Enter the card or bank account details.")
    client = session.get(Client, contact.client_id)
    if client is None:
        raise NotFound()
    customer_id = ensure_customer(session, rt.gateway, client, contact)
    try:
        result = rt.gateway.save_method(
            idempotency_key=f"portal-setup-{client.id}-{new.nonce}", customer_id=customer_id,
            confirmation_token=token, mandate=acceptance, bank_verification=new.bank_verification,
            metadata={"client_id": str(client.id), "purpose": "autopay"},
            return_url=rt.url("autopay.setup_return"),
        )
    except GatewayRequestError as e:
        raise DomainError("Those payment details could not be used (the confirmation was not valid). "
                          "Nothing was saved; please enter them again.") from e
    except GatewayError as e:
        raise DomainError(NOT_ANSWERING) from e
    except ValueError as e:
        raise DomainError("Those payment details could not be used. Please enter them again.") from e
    if _awaits_authentication(result) and result.setup_id is not None and result.customer_id in (None, customer_id):
        return NeedsAuthentication(setup_id=result.setup_id, client_secret=result.client_secret)
    return _store(session, client, contact, customer_id, result, rt.gateway.name)


def complete_setup(session: Session, rt: Runtime, contact: Contact, setup_id: str) -> SavedPaymentMethod:
    """The client is back from the bank's 3-D Secure challenge (or a gateway redirect) with a setup id, posted by
    the page or in the return URL. Anyone can post or edit that: an unknown id or a setup of another gateway
    customer is refused, a setup that did not succeed saves nothing, and a replayed one returns the saved row."""
    client, customer_id, result = _own_setup(session, rt, contact, setup_id)
    return _store(session, client, contact, customer_id, result, rt.gateway.name)


def awaiting_sandbox_authentication(session: Session, rt: Runtime, contact: Contact, setup_id: str) -> SetupResult:
    """SANDBOX: the setup its 3-D Secure stand-in page is about; only this client's setups that still wait."""
    if not isinstance(rt.gateway, SandboxGateway):
        raise NotFound()
    _, _, result = _own_setup(session, rt, contact, setup_id)
    if not _awaits_authentication(result):
        raise DomainError("This card is not waiting for your bank's confirmation.")
    return result


def sandbox_authenticate(session: Session, rt: Runtime, contact: Contact, setup_id: str, *, passed: bool) -> str:
    """SANDBOX: the client passes or fails the stand-in for the bank's challenge. Returns the setup's new id (the
    stateless sandbox records the answer in it), which ``complete_setup`` then reads back like Stripe's."""
    gateway = rt.gateway
    if not isinstance(gateway, SandboxGateway):
        raise NotFound()
    awaiting_sandbox_authentication(session, rt, contact, setup_id)
    try:
        result = gateway.authenticate_setup(setup_id.strip(), passed=passed)
    except GatewayRequestError as e:
        raise DomainError("This card is not waiting for your bank's confirmation.") from e
    if result.setup_id is None:
        raise DomainError(NOT_CONFIRMED)
    return result.setup_id


def _own_setup(session: Session, rt: Runtime, contact: Contact, setup_id: str
               ) -> tuple[Client, str, SetupResult]:
    """The setup as the gateway tells it, provided it is on this client's gateway customer."""
    setup_id = (setup_id or "").strip()
    if not setup_id or len(setup_id) > 255:
        raise DomainError(NOT_YOURS)
    client = session.get(Client, contact.client_id)
    customer_id = customer_of(session, contact.client_id, rt.gateway.name) if client else None
    session.rollback()  # no transaction across the gateway call
    if client is None or customer_id is None:
        raise DomainError(NOT_YOURS)
    try:
        result = rt.gateway.retrieve_setup(setup_id)
    except GatewayRequestError as e:
        raise DomainError(NOT_YOURS) from e
    except GatewayError as e:
        raise DomainError(NOT_ANSWERING) from e
    if result.customer_id != customer_id:
        raise DomainError(NOT_YOURS)
    return client, customer_id, result


def _awaits_authentication(result: SetupResult) -> bool:
    """3-D Secure on the card being saved: waiting on the client, as opposed to a bank account's microdeposits."""
    return result.status == REQUIRES_ACTION and not result.awaiting_microdeposits


def _store(session: Session, client: Client, contact: Contact, customer_id: str, result: SetupResult,
           gateway: str) -> SavedPaymentMethod:
    if not (result.saved or result.awaiting_microdeposits):
        if _awaits_authentication(result):  # the challenge was never finished
            raise DomainError(NOT_CONFIRMED)
        if result.failure_code == AUTHENTICATION_FAILED:
            raise DomainError(f"{result.failure_message or 'Your bank did not confirm this card.'} Nothing was "
                              "saved; you can add the card again or use another one.")
        raise DomainError(result.failure_message or "That payment method was declined. Nothing was saved.")
    method = result.method
    if method is None or result.payment_method_id is None or result.setup_id is None:
        raise DomainError("The payment processor did not confirm the saved method. Nothing was saved.")
    if method.customer_id not in (None, customer_id):
        raise DomainError(NOT_YOURS)
    begin_write(session)
    try:
        existing = session.scalar(select(SavedPaymentMethod).where(SavedPaymentMethod.setup_id == result.setup_id))
        if existing is not None:  # the same form posted twice: the gateway answered the same setup
            if existing.client_id != client.id:
                raise DomainError(NOT_YOURS)
            session.commit()
            return existing
        has_default = session.scalar(select(SavedPaymentMethod.id).where(
            SavedPaymentMethod.client_id == client.id, SavedPaymentMethod.is_default.is_(True),
            SavedPaymentMethod.status.in_((ACTIVE, PENDING))).limit(1)) is not None
        row = SavedPaymentMethod(
            client_id=client.id, gateway=gateway, customer_id=customer_id, method_id=result.payment_method_id,
            setup_id=result.setup_id, mandate_id=result.mandate_id, method_type=method.method_type,
            brand=method.brand, card_funding=method.card_funding, last4=method.last4, exp_month=method.exp_month,
            exp_year=method.exp_year, bank_name=method.bank_name,
            status=ACTIVE if result.saved else PENDING, microdeposit_type=result.microdeposit_type,
            microdeposits_arrive=result.microdeposits_arrive, is_default=not has_default, is_fallback=False,
            saved_by_contact_id=contact.id, created_at=now(), verified_at=now() if result.saved else None,
        )
        session.add(row)
        session.commit()
        return row
    except IntegrityError:  # the twin request stored the same setup a moment ago
        session.rollback()
        existing = session.scalar(select(SavedPaymentMethod).where(SavedPaymentMethod.setup_id == result.setup_id))
        if existing is None or existing.client_id != client.id:
            raise
        return existing
    except BaseException:
        session.rollback()
        raise


def verify(session: Session, rt: Runtime, client_id: int, method_row_id: int, *,
           amounts: tuple[int, int] | None = None, descriptor_code: str | None = None) -> SavedPaymentMethod:
    """The client reads back the microdeposits; the bank account becomes active (chargeable once authorized)."""
    method = method_of(session, client_id, method_row_id)
    if method.status != PENDING or method.setup_id is None:
        raise DomainError("This payment method does not need verifying.")
    setup_id, row_id = method.setup_id, method.id
    session.rollback()  # no transaction across the gateway call
    try:
        result = rt.gateway.verify_microdeposits(setup_id, amounts=amounts, descriptor_code=descriptor_code)
    except ValueError as e:
        raise DomainError("Enter the two deposit amounts in cents (1 to 99) or the 6-character code.") from e
    except GatewayRequestError as e:
        raise DomainError("Those amounts do not match the deposits. Check your bank statement and try again "
                          "(after three wrong tries the account must be added again).") from e
    except GatewayError as e:
        raise DomainError(NOT_ANSWERING) from e
    if not result.saved or result.method is None or result.payment_method_id is None:
        raise DomainError(result.failure_message or "The bank account could not be verified.")
    begin_write(session)
    method = method_of(session, client_id, row_id, lock=True)
    if method.status == PENDING:
        # The stateless sandbox records the verification in new ids; Stripe keeps the same ones.
        method.method_id, method.setup_id = result.payment_method_id, result.setup_id or method.setup_id
        method.status, method.verified_at = ACTIVE, now()
        method.bank_name = result.method.bank_name or method.bank_name
    session.commit()
    return method


def set_role(session: Session, client_id: int, method_row_id: int, role: str) -> SavedPaymentMethod:
    """Make a method the default or the fallback (or neither). One default and at most one fallback per client."""
    if role not in (A.DEFAULT, A.FALLBACK, A.OTHER):
        raise DomainError("Choose default, fallback or neither.")
    begin_write(session)
    method = method_of(session, client_id, method_row_id, lock=True)
    if method.status not in (ACTIVE, PENDING):
        session.rollback()
        raise DomainError("That payment method can no longer be used.")
    others = [m for m in methods_of(session, client_id) if m.id != method.id]
    if role == A.DEFAULT:
        for other in others:
            other.is_default = False
        if method.is_fallback:
            method.is_fallback = False
        method.is_default = True
    elif role == A.FALLBACK:
        if method.is_default:
            session.rollback()
            raise DomainError("Make another method the default before using this one as the fallback.")
        for other in others:
            other.is_fallback = False
        method.is_fallback = True
    else:
        method.is_default = method.is_fallback = False
    session.commit()
    return method


def customer_of(session: Session, client_id: int, gateway: str) -> str | None:
    return session.scalar(select(GatewayCustomer.customer_id).where(GatewayCustomer.client_id == client_id,
                                                                    GatewayCustomer.gateway == gateway))


def detach(rt: Runtime, method: SavedPaymentMethod) -> None:
    """Detach on the gateway (outside any transaction). A method of the other gateway (sandbox vs Stripe) cannot
    be reached from here and is only marked removed."""
    if method.gateway != rt.gateway.name:
        return
    try:
        rt.gateway.detach_method(method.method_id, customer_id=method.customer_id)
    except GatewayRequestError:
        pass  # already gone at the gateway: removing it here is all that is left to do
    except GatewayError as e:
        raise DomainError(NOT_ANSWERING) from e
