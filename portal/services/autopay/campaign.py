"""The conversion campaign: staff pick clients not on autopay and send each billing contact the offer (with the
incentive and what it would save them); the offer's link records that it was opened, and enrolling records that
too (enrollment.authorize marks the client's open offers)."""

from __future__ import annotations

import hashlib
import secrets
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain.errors import DomainError
from portal.models import AutopayEnrollment, AutopayOffer, Client, StaffUser

from .. import mail, reports
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from . import incentives
from .rules import autopay_settings, incentive

MAX_PER_SEND = 500


PAGE_SIZE = 100  # clients a page of the campaign shows to pick from


class Candidate(NamedTuple):
    id: int
    legal_name: str


def candidate_page(session: Session, page: int) -> reports.Page:
    """A page of the clients not on autopay, by name, to pick from (all 10,000 of an MSP's clients drawn as
    checkboxes took ~0.3 s, and the offer goes to at most MAX_PER_SEND at a time anyway)."""
    found = reports.paginate(session, _CANDIDATES, page, PAGE_SIZE)
    return found.with_items([Candidate._make(row) for row in found.items])


_ENROLLED = select(AutopayEnrollment.client_id).where(AutopayEnrollment.enrolled.is_(True))
_CANDIDATES = (select(Client.id, Client.legal_name).where(Client.id.not_in(_ENROLLED))
               .order_by(Client.legal_name, Client.id))


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
    allowed = {c.id: c for c in session.scalars(select(Client).options(selectinload(Client.contacts))
                                                .where(Client.id.in_(client_ids), Client.id.not_in(_ENROLLED)))}
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
