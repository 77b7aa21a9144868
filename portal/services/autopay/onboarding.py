"""Onboarding, "checkless from day one": one action by staff sends the billing contact one email; its link signs
the contact in and opens a short guided flow: sign the current payment terms, save a method and sign the autopay
authorization, done.

Status per client: invited -> terms_signed / autopay_on -> complete. Complete needs the terms signed and either
autopay on, or (only when the MSP does not require autopay for new clients) the client choosing to skip it.
The link is a random token whose SHA-256 is stored; a resend replaces it, so an older email's link stops working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain.autopay import OnboardingStatus
from portal.domain.errors import DomainError
from portal.models import AutopayEnrollment, Client, Contact, OnboardingInvitation, StaffUser

from .. import mail
from ..agreements import needs_terms
from ..agreements.invitations import terms_to_sign_expr
from ..errors import NotFound
from ..keysets import among
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from .rules import autopay_settings, is_enrolled

_S = OnboardingStatus
INVITED, TERMS_SIGNED, AUTOPAY_ON, COMPLETE = _S.INVITED, _S.TERMS_SIGNED, _S.AUTOPAY_ON, _S.COMPLETE
STATUS_LABELS = {INVITED: "Invited", TERMS_SIGNED: "Terms signed", AUTOPAY_ON: "Autopay on", COMPLETE: "Complete"}
LINK_DAYS = 30
INVALID = "This onboarding link is not valid any more. Ask your provider to send a new one."


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def latest(session: Session, client_id: int) -> OnboardingInvitation | None:
    return session.scalar(select(OnboardingInvitation).where(OnboardingInvitation.client_id == client_id)
                          .order_by(OnboardingInvitation.id.desc()).limit(1))


def _status(terms_done: bool, autopay_on: bool, required: bool, skipped: bool) -> str:
    if terms_done and (autopay_on or (skipped and not required)):
        return COMPLETE
    if terms_done:
        return TERMS_SIGNED
    if autopay_on:
        return AUTOPAY_ON
    return INVITED


@dataclass(frozen=True)
class Progress:
    invitation: OnboardingInvitation
    terms_done: bool
    autopay_on: bool
    status: str

    @property
    def next_step(self) -> str:
        if self.status == COMPLETE:
            return "done"
        return "terms" if not self.terms_done else "autopay"


def progress(session: Session, invitation: OnboardingInvitation) -> Progress:
    """Where the client stands, from the records themselves (the terms agreement, the enrollment)."""
    return _progress(invitation, not needs_terms(session, invitation.client_id),
                     is_enrolled(session, invitation.client_id))


def _progress(invitation: OnboardingInvitation, terms_done: bool, autopay_on: bool) -> Progress:
    skipped = invitation.completed_at is not None and invitation.autopay_on_at is None
    status = _status(terms_done, autopay_on, invitation.autopay_required, skipped)
    if invitation.status == COMPLETE:  # once complete, it stays complete (leaving autopay later is not undone)
        status = COMPLETE
    return Progress(invitation, terms_done, autopay_on, status)


def _send(session: Session, rt: Runtime, invitation: OnboardingInvitation, token: str) -> None:
    msp = get_settings(session)
    mail.send(session, rt, to=[invitation.contact.email], subject=f"Welcome to {msp.name}: set up your billing",
              template="autopay_onboarding",
              context={"contact": invitation.contact, "client": invitation.client, "msp": msp,
                       "url": rt.url("autopay.welcome", token=token), "required": invitation.autopay_required,
                       "days": LINK_DAYS})


def onboard(session: Session, rt: Runtime, client: Client, contact: Contact | None, *,
            staff: StaffUser | None) -> OnboardingInvitation:
    """Invite the billing contact (or ``contact``) to onboard: one row, one email."""
    contact = contact or next((c for c in client.contacts if c.is_billing and c.portal_access), None)
    if contact is None:
        raise DomainError(f"{client.legal_name} has no billing contact with portal access to invite.")
    if contact.client_id != client.id:
        raise DomainError("That contact belongs to another client.")
    if not contact.portal_access:
        raise DomainError(f"{contact.name} has no portal access, so cannot sign in.")
    token = secrets.token_urlsafe(32)
    begin_write(session)
    existing = latest(session, client.id)
    if existing is not None and existing.status != COMPLETE:
        session.rollback()
        raise DomainError(f"{client.legal_name} was already invited on {existing.sent_at:%B %-d}. Use Resend.")
    at = now()
    invitation = OnboardingInvitation(
        client_id=client.id, contact_id=contact.id, token_hash=_hash(token), status=INVITED,
        autopay_required=autopay_settings(session).required_for_new_clients,
        invited_by_staff_id=staff.id if staff else None, sent_at=at, resend_count=0, created_at=at)
    session.add(invitation)
    session.commit()
    _send(session, rt, invitation, token)
    return invitation


def resend(session: Session, rt: Runtime, client_id: int, *, staff: StaffUser | None) -> OnboardingInvitation:
    token = secrets.token_urlsafe(32)
    begin_write(session)
    invitation = session.scalar(select(OnboardingInvitation).where(OnboardingInvitation.client_id == client_id)
                                .order_by(OnboardingInvitation.id.desc()).limit(1).with_for_update())
    if invitation is None:
        session.rollback()
        raise NotFound()
    if progress(session, invitation).status == COMPLETE:
        session.rollback()
        raise DomainError("Onboarding is already complete for this client.")
    invitation.token_hash, invitation.sent_at = _hash(token), now()
    invitation.resend_count += 1
    session.commit()
    _send(session, rt, invitation, token)
    return invitation


def by_token(session: Session, token: str) -> OnboardingInvitation:
    """The invitation a link names, if the token is genuine and not expired; anything else is one refusal."""
    if not token or len(token) > 100:
        raise DomainError(INVALID)
    invitation = session.scalar(select(OnboardingInvitation).where(OnboardingInvitation.token_hash == _hash(token)))
    if invitation is None or not hmac.compare_digest(invitation.token_hash, _hash(token)):
        raise DomainError(INVALID)
    if invitation.sent_at + timedelta(days=LINK_DAYS) < now() or not invitation.contact.portal_access:
        raise DomainError(INVALID)
    return invitation


def open_link(session: Session, token: str) -> Contact:
    """The contact to sign in (the POST after the landing page); records the first opening."""
    begin_write(session)
    invitation = by_token(session, token)
    if invitation.opened_at is None:
        invitation.opened_at = now()
    contact = invitation.contact
    contact.last_sign_in_at = now()
    session.commit()
    return contact


def for_client(session: Session, client_id: int) -> OnboardingInvitation | None:
    return latest(session, client_id)


def refresh(session: Session, client_id: int) -> Progress | None:
    """Store what the records say (terms signed since, autopay on) so the admin list is one query."""
    invitation = latest(session, client_id)
    if invitation is None:
        return None
    state = progress(session, invitation)
    if state.status != invitation.status:
        begin_write(session)
        invitation = latest(session, client_id)
        _apply(invitation, state, now())
        session.commit()
        state = progress(session, invitation)
    return state


def _apply(invitation: OnboardingInvitation, state: Progress, at: datetime) -> None:
    if state.terms_done and invitation.terms_signed_at is None:
        invitation.terms_signed_at = at
    if state.autopay_on and invitation.autopay_on_at is None:
        invitation.autopay_on_at = at
    if state.status == COMPLETE and invitation.completed_at is None:
        invitation.completed_at = at
    invitation.status = state.status


def record_autopay_on(session: Session, client_id: int, at: datetime) -> None:
    """Autopay was authorized (inside the enrollment's transaction)."""
    invitation = latest(session, client_id)
    if invitation is None or invitation.status == COMPLETE:
        return
    invitation.autopay_on_at = invitation.autopay_on_at or at
    terms_done = not needs_terms(session, client_id)
    if terms_done:
        invitation.terms_signed_at = invitation.terms_signed_at or at
    invitation.status = _status(terms_done, True, invitation.autopay_required, False)
    if invitation.status == COMPLETE:
        invitation.completed_at = at


def skip_autopay(session: Session, client_id: int) -> Progress:
    """The client finishes without autopay: allowed only when the MSP does not require it."""
    begin_write(session)
    invitation = latest(session, client_id)
    if invitation is None:
        session.rollback()
        raise NotFound()
    if invitation.autopay_required:
        session.rollback()
        raise DomainError("Your provider asks every new client to set up autopay. Please add a payment method.")
    if needs_terms(session, client_id):
        session.rollback()
        raise DomainError("Please sign the payment terms first.")
    if invitation.completed_at is None:
        invitation.completed_at = now()
    invitation.terms_signed_at = invitation.terms_signed_at or now()
    invitation.status = COMPLETE
    session.commit()
    return progress(session, invitation)


def statuses(session: Session) -> list[tuple[OnboardingInvitation, str]]:
    """Each client's latest invitation with its status, newest first (admin page): ``progress`` of every invited
    client in four statements (the invitations with their clients and contacts, the terms still to sign, the
    enrollments), not four for each client (an autopay campaign invites hundreds at a time)."""
    newest = select(func.max(OnboardingInvitation.id)).group_by(OnboardingInvitation.client_id)
    invitations = list(session.scalars(
        select(OnboardingInvitation)
        .options(selectinload(OnboardingInvitation.client), selectinload(OnboardingInvitation.contact))
        .where(OnboardingInvitation.id.in_(newest)).order_by(OnboardingInvitation.id.desc())))
    if not invitations:
        return []
    ids = [i.client_id for i in invitations]
    unsigned = set(session.scalars(select(Client.id).where(among(session, Client.id, ids),
                                                          terms_to_sign_expr(Client.id).is_not(None))))
    enrolled = set(session.scalars(select(AutopayEnrollment.client_id).where(
        among(session, AutopayEnrollment.client_id, ids), AutopayEnrollment.enrolled.is_(True))))
    return [(i, _progress(i, i.client_id not in unsigned, i.client_id in enrolled).status) for i in invitations]
