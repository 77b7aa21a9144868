"""Going on and off autopay: the client signs an authorization for a saved method (an agreement rendered from the
published authorization template plus the method and the client's rules); switching autopay off or removing the
method is a ``revoked`` event on that agreement, which stays readable and verifiable.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import authorizations as AUTH
from portal.domain import autopay as A
from portal.domain.errors import DomainError
from portal.domain.money import format_money
from portal.models import Agreement, AutopayOffer, Client, Contact, SavedPaymentMethod

from ..agreements import rendered
from ..agreements.chain import Meta
from ..errors import NotFound
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from . import incentives, methods, onboarding
from .methods import ACTIVE, PENDING, REMOVED
from .rules import enrollment, enrollment_for_update, rules_for

PENDING_REFUSED = ("This bank account is not verified yet. Enter the two microdeposit amounts first; it cannot be "
                   "used for autopay until then.")


def document(session: Session, rt: Runtime, client: Client, method: SavedPaymentMethod) -> rendered.Document:
    """The authorization the client is shown for this method under its current rules."""
    rules = rules_for(session, client.id)
    msp = get_settings(session)
    version = rendered.current_version(session, AUTH.kind_for(method.method_type))
    cap = format_money(rules.cap_cents, msp.currency) if rules.cap_cents is not None else None
    variables = AUTH.merge_variables(
        msp_legal_name=msp.legal_name or msp.name, msp_email=msp.reply_to or msp.email,
        client_legal_name=client.legal_name, method=methods.label(method), schedule=rules.schedule.describe(),
        cap=cap, notice_days=rules.notice_days, portal_url=rt.url("autopay.methods"), effective_date=today())
    return rendered.render(version, variables)


def _check_usable(session: Session, client_id: int, method: SavedPaymentMethod) -> None:
    if method.status == PENDING:
        raise DomainError(PENDING_REFUSED)
    if method.status != ACTIVE:
        raise DomainError("That payment method can no longer be used. Please add it again.")
    rules = rules_for(session, client_id)
    if method.method_type not in rules.method_types:
        kinds = " or ".join("cards" if t == "card" else "bank accounts" for t in sorted(rules.method_types))
        raise DomainError(f"Autopay accepts {kinds} only.")
    if methods.expiry(method, today()) is A.Expiry.EXPIRED:
        raise DomainError("This card has expired. Please add a current card.")


SignedBy = rendered.SignedBy  # what the signer gave, one shape for every rendered document


def authorize(session: Session, rt: Runtime, contact: Contact, method_row_id: int, signed: SignedBy, *,
              meta: Meta, role: str = A.DEFAULT) -> Agreement:
    """Sign the autopay authorization for one of the client's methods and switch autopay on. The method becomes
    the default (or the fallback); the incentive starts; onboarding and campaign offers record it."""
    client_id = contact.client_id
    method = methods.method_of(session, client_id, method_row_id)  # NotFound for another client's method
    _check_usable(session, client_id, method)
    if role not in (A.DEFAULT, A.FALLBACK):
        raise DomainError("Choose whether this is your main autopay method or the fallback.")
    rendered.current_version(session, AUTH.kind_for(method.method_type))  # publishes v1 outside the lock
    begin_write(session)
    try:
        method = methods.method_of(session, client_id, method_row_id, lock=True)
        _check_usable(session, client_id, method)
        client = session.get(Client, client_id)
        row = enrollment_for_update(session, client_id)
        if role == A.FALLBACK and not row.enrolled:
            raise DomainError("Authorize your main autopay method first; the fallback comes second.")
        doc = document(session, rt, client, method)
        agreement = rendered.sign_rendered(
            session, rt, client, contact, doc, shown_sha256=signed.shown_sha256, full_name=signed.full_name,
            title=signed.title, authority_confirmed=signed.authority_confirmed,
            consent_confirmed=signed.consent_confirmed, signature=signed.signature, meta=meta,
            data={"method": methods.label(method), "method_type": method.method_type, "role": role})
        if method.authorization_id is not None:  # re-authorized (new rules): the old authorization is replaced
            old = session.get(Agreement, method.authorization_id)
            if old is not None:
                rendered.record_event(session, rt, old, "revoked", meta, {"reason": "replaced",
                                                                           "by": agreement.reference})
        method.authorization_id = agreement.id
        _give_role(session, client_id, method, role)
        at = now()
        if not row.enrolled:
            row.enrolled, row.enrolled_at, row.left_at, row.left_reason = True, at, None, ""
            incentives.start(session, row)
        row.updated_at = at
        _mark_enrolled_elsewhere(session, client_id, at)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    rendered.deliver_copy(session, rt, agreement, contact, meta)
    return agreement


def _give_role(session: Session, client_id: int, method: SavedPaymentMethod, role: str) -> None:
    for other in methods.methods_of(session, client_id):
        if other.id == method.id:
            continue
        if role == A.DEFAULT:
            other.is_default = False
        else:
            other.is_fallback = False
    method.is_default, method.is_fallback = role == A.DEFAULT, role == A.FALLBACK


def _mark_enrolled_elsewhere(session: Session, client_id: int, at) -> None:
    for offer in session.scalars(select(AutopayOffer).where(AutopayOffer.client_id == client_id,
                                                            AutopayOffer.enrolled_at.is_(None))):
        offer.enrolled_at = at
    onboarding.record_autopay_on(session, client_id, at)

def _revoke(session: Session, rt: Runtime, method: SavedPaymentMethod, reason: str, meta: Meta) -> None:
    if method.authorization_id is None:
        return
    agreement = session.get(Agreement, method.authorization_id)
    if agreement is not None:
        rendered.record_event(session, rt, agreement, "revoked", meta, {"reason": reason,
                                                                         "method": methods.label(method)})
    method.authorization_id = None  # never charged under it again; the agreement stays in the client's records


def turn_off(session: Session, rt: Runtime, client_id: int, *, meta: Meta, by_staff: bool = False,
             reason: str = "") -> None:
    """Leave autopay. A client cannot while the MSP has locked it; staff can. Every authorization gets a
    ``revoked`` event; the incentive stops and the client is told."""
    begin_write(session)
    try:
        row = enrollment(session, client_id)
        if row is None or not row.enrolled:
            raise DomainError("Autopay is not on for this account.")
        if not by_staff:
            A.check_can_turn_off(rules_for(session, client_id), get_settings(session).name)
        row = enrollment_for_update(session, client_id)
        _leave(session, rt, row, reason or ("switched off by staff" if by_staff else "switched off by the client"),
               meta)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    incentives.send_stop_notices(session, rt)


def _leave(session: Session, rt: Runtime, row, reason: str, meta: Meta) -> None:
    at = now()
    row.enrolled, row.left_at, row.left_reason, row.updated_at = False, at, reason[:500], at
    for method in methods.methods_of(session, row.client_id):
        _revoke(session, rt, method, reason, meta)
    incentives.stop(session, row.client_id, A.IncentiveStop.LEFT_AUTOPAY)


def remove(session: Session, rt: Runtime, client_id: int, method_row_id: int, *, meta: Meta,
           by_staff: bool = False) -> None:
    """Remove a saved method: detached on the gateway, kept here as removed. Removing the last authorized method
    leaves autopay (refused for a client while autopay is locked)."""
    method = methods.method_of(session, client_id, method_row_id)
    if method.status == REMOVED:
        raise DomainError("That payment method was already removed.")
    authorized_left = [m for m in methods.methods_of(session, client_id)
                       if m.authorization_id is not None and m.id != method.id and m.status == ACTIVE]
    row = enrollment(session, client_id)
    leaves = bool(row and row.enrolled and method.authorization_id is not None and not authorized_left)
    if leaves and not by_staff:
        A.check_can_turn_off(rules_for(session, client_id), get_settings(session).name)
    session.rollback()
    methods.detach(rt, method)  # outside any transaction
    begin_write(session)
    try:
        method = methods.method_of(session, client_id, method_row_id, lock=True)
        was_default = method.is_default
        _revoke(session, rt, method, "payment method removed", meta)
        method.status, method.removed_at = REMOVED, now()
        method.is_default = method.is_fallback = False
        if was_default:  # the fallback, if any, becomes the main method
            fallback = next((m for m in methods.methods_of(session, client_id) if m.is_fallback), None)
            if fallback is not None:
                fallback.is_fallback, fallback.is_default = False, True
        if leaves:
            _leave(session, rt, enrollment_for_update(session, client_id), "payment method removed", meta)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    incentives.send_stop_notices(session, rt)


def authorization_of(session: Session, client_id: int, method: SavedPaymentMethod) -> Agreement | None:
    if method.client_id != client_id:
        raise NotFound()
    return session.get(Agreement, method.authorization_id) if method.authorization_id else None

