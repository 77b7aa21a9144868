"""What the client's portal home says about plans: an offer waiting for the client, or, for an overdue client whose
overdue invoices are not all on a current plan, the way to set one up (self-service when the policy allows it,
otherwise a proposal to the MSP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.domain.plan_offers import Proposer
from portal.domain.plans import OfferStatus
from portal.models import PlanOffer

from ..keysets import one_of
from . import offers
from .policy import get_policy


@dataclass(frozen=True)
class Banner:
    overdue_cents: int  # 0 while an offer is waiting: the banner then shows the offer, not an amount
    currency: str
    self_service: bool  # the client may set a plan up itself (shown with an overdue amount)
    waiting: PlanOffer | None  # an offer the client has not answered or signed yet


def for_client(session: Session, client_id: int, today: date, *, overdue_cents: int) -> Banner | None:
    """``overdue_cents``: what the client owes past due by the kept sums (the home's own summary,
    ``ledger.client_summary``)."""
    waiting = session.scalar(_WAITING, {"client_id": client_id})
    if waiting is not None:
        return Banner(0, waiting.currency, False, waiting)
    if overdue_cents <= 0:
        # Most clients: nothing overdue by the kept sums, so nothing plannable is overdue (a figure to show, which
        # ledger.stored_balance may serve); the plannable invoices (balances from the rows, money in flight, plans
        # and offers: five statements) are worked out only for a client who may see an amount.
        return None
    overdue = [c for c in offers.plannable(session, client_id) if c.invoice.due_date < today]
    if not overdue:
        return None
    return Banner(sum(c.balance_cents for c in overdue), overdue[0].invoice.currency, get_policy(session).self_service,
                  None)


# Built once: the portal's home reads them on every view.
_WAITING = (select(PlanOffer).where(PlanOffer.client_id == bindparam("client_id"), PlanOffer.status == OfferStatus.OPEN,
                                    one_of(PlanOffer.proposed_by, (Proposer.MSP, Proposer.POLICY)))
            .order_by(PlanOffer.id.desc()).limit(1))
