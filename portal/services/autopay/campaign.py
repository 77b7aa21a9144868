"""The conversion campaign: staff pick clients not on autopay and send each billing contact the offer (with the
incentive and what it would save them); the offer's link records that it was opened, and enrolling records that
too (enrollment.authorize marks the client's open offers)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.errors import DomainError
from portal.models import AutopayEnrollment, AutopayOffer, Client, StaffUser

from .. import mail
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from . import incentives
from .rules import autopay_settings, incentive

MAX_PER_SEND = 500


def candidates(session: Session) -> list[Client]:
    """Clients not on autopay, by name."""
    enrolled = select(AutopayEnrollment.client_id).where(AutopayEnrollment.enrolled.is_(True))
    return list(session.scalars(select(Client).where(Client.id.not_in(enrolled)).order_by(Client.legal_name)))


def send_offers(session: Session, rt: Runtime, client_ids: list[int], *, staff: StaffUser | None,
                campaign: str = "") -> int:
    """One offer email per chosen client (to its billing contact). Clients already on autopay or without a billing
    contact are skipped; the count sent is returned."""
    if not client_ids:
        raise DomainError("Choose at least one client.")
    if len(client_ids) > MAX_PER_SEND:
        raise DomainError(f"Send at most {MAX_PER_SEND} offers at a time.")
    offer = incentive(autopay_settings(session))
    msp = get_settings(session)
    allowed = {c.id: c for c in candidates(session)}
    sent = 0
    for client_id in dict.fromkeys(client_ids):
        client = allowed.get(client_id)
        contact = next((c for c in client.contacts if c.is_billing and c.portal_access), None) if client else None
        if contact is None:
            continue
        token = secrets.token_urlsafe(32)
        savings = incentives.yearly_savings(session, client.id)
        begin_write(session)
        session.add(AutopayOffer(client_id=client.id, contact_id=contact.id, campaign=campaign[:100],
                                 token_hash=hashlib.sha256(token.encode()).hexdigest(),
                                 sent_by_staff_id=staff.id if staff else None, sent_at=now()))
        session.commit()
        mail.send(session, rt, to=[contact.email], subject=f"Pay {msp.name} automatically",
                  template="autopay_offer",
                  context={"client": client, "contact": contact, "msp": msp, "incentive": offer,
                           "savings": savings, "url": rt.url("autopay.offer", token=token)})
        sent += 1
    return sent


def open_offer(session: Session, token: str) -> AutopayOffer | None:
    """Record that an offer's link was opened (first time only); None for an unknown token."""
    if not token or len(token) > 100:
        return None
    begin_write(session)
    offer = session.scalar(select(AutopayOffer).where(
        AutopayOffer.token_hash == hashlib.sha256(token.encode()).hexdigest()))
    if offer is not None and offer.opened_at is None:
        offer.opened_at = now()
    session.commit()
    return offer


def offers(session: Session) -> list[tuple[AutopayOffer, str]]:
    return [(o, name) for o, name in session.execute(
        select(AutopayOffer, Client.legal_name).join(Client, Client.id == AutopayOffer.client_id)
        .order_by(AutopayOffer.sent_at.desc(), AutopayOffer.id.desc()).limit(500))]
