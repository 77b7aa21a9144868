"""What the client's portal home says about plans: an offer waiting for the client, or, for an overdue client whose
overdue invoices are not all on a current plan, the way to set one up (self-service when the policy allows it,
otherwise a proposal to the MSP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.plan_offers import Proposer
from portal.domain.plans import OfferStatus
from portal.models import PlanOffer

from . import offers
from .policy import get_policy


@dataclass(frozen=True)
class Banner:
    overdue_cents: int
    currency: str
    self_service: bool
    waiting: PlanOffer | None  # an offer the client has not answered or signed yet


def for_client(session: Session, client_id: int, today: date) -> Banner | None:
    waiting = session.scalar(select(PlanOffer).where(PlanOffer.client_id == client_id,
                                                     PlanOffer.status == OfferStatus.OPEN,
                                                     PlanOffer.proposed_by.in_((Proposer.MSP, Proposer.POLICY)))
                             .order_by(PlanOffer.id.desc()).limit(1))
    overdue = [c for c in offers.plannable(session, client_id) if c.invoice.due_date < today]
    if waiting is None and not overdue:
        return None
    currency = overdue[0].invoice.currency if overdue else waiting.currency if waiting else "USD"
    return Banner(sum(c.balance_cents for c in overdue), currency, get_policy(session).self_service, waiting)
