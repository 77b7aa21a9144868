"""Plan offers and their negotiation (pure): who made an offer, what the thread's history calls each step, and
which side may do what with an offer in which state.

A thread starts with an MSP offer, a client's proposal, or a client's self-service pick within the MSP's policy.
Each answer is a new row (a counter) or a decision on the open one (reject, withdraw, accept). Only an offer the
MSP stands behind can be signed: an MSP offer, or a self-service pick (the policy is the MSP's standing offer). A
client's proposal is a request: the MSP approves it (which makes it an MSP offer the client then signs), rejects
it or counters it.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import DomainError
from .plans import OfferStatus


class Proposer(StrEnum):
    MSP = "msp"  # staff made it (an offer, a counter, or a client proposal the MSP approved)
    CLIENT = "client"  # the client's own proposal or counter: a request for the MSP
    POLICY = "policy"  # the client's self-service pick, within the MSP's published policy


class OfferEvent(StrEnum):
    """The words of an offer thread's history (PlanEvent.kind)."""

    OFFERED = "offered"
    PROPOSED = "proposed"
    CHOSEN = "chosen"  # a self-service pick
    COUNTERED = "countered"
    APPROVED = "approved"  # the MSP agreed to the client's proposal: it goes back to be signed
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"
    ACCEPTED = "accepted"
    CANCELED = "canceled"  # a plan canceled by the MSP


EVENT_LABELS = {
    OfferEvent.OFFERED: "Offer sent", OfferEvent.PROPOSED: "Client proposed a plan",
    OfferEvent.CHOSEN: "Client picked a plan within the policy", OfferEvent.COUNTERED: "Counter-offer",
    OfferEvent.APPROVED: "Proposal approved, sent for signature", OfferEvent.REJECTED: "Rejected",
    OfferEvent.WITHDRAWN: "Withdrawn", OfferEvent.SUPERSEDED: "Superseded", OfferEvent.ACCEPTED: "Accepted and signed",
    OfferEvent.CANCELED: "Plan canceled",
}

GONE = {
    OfferStatus.ACCEPTED: "This offer was already accepted.",
    OfferStatus.REJECTED: "This offer was rejected; it can no longer be accepted.",
    OfferStatus.COUNTERED: "This offer was replaced by a counter-offer; please look at the newest one.",
    OfferStatus.WITHDRAWN: "This offer was withdrawn; it can no longer be accepted.",
    OfferStatus.SUPERSEDED: "This offer was replaced by another plan; it can no longer be accepted.",
}


def check_open(status: str) -> None:
    if status != OfferStatus.OPEN:
        raise DomainError(GONE.get(OfferStatus(status), "This offer is no longer open."))


def check_client_may_accept(status: str, proposed_by: str) -> None:
    """The client signs only what the MSP stands behind; its own proposal waits for the MSP's answer."""
    check_open(status)
    if proposed_by == Proposer.CLIENT:
        raise DomainError("This is your own proposal: it is waiting for an answer before it can be signed.")


def check_client_may_answer(status: str, proposed_by: str) -> None:
    """Reject or counter: the client answers the MSP's offers, not its own proposal (withdraw that instead)."""
    check_open(status)
    if proposed_by != Proposer.MSP:
        raise DomainError("You can only answer an offer made to you.")


def check_staff_may_answer(status: str, proposed_by: str) -> None:
    """Approve, reject or counter: staff answer what the client sent."""
    check_open(status)
    if proposed_by == Proposer.MSP:
        raise DomainError("This is your own offer: withdraw it or wait for the client's answer.")


def check_may_withdraw(status: str, proposed_by: str, *, by_client: bool) -> None:
    """Whoever made an offer may take it back while it is open (staff may also withdraw a self-service pick)."""
    check_open(status)
    mine = (Proposer.CLIENT, Proposer.POLICY) if by_client else (Proposer.MSP, Proposer.POLICY)
    if proposed_by not in mine:
        raise DomainError("Only whoever made this offer can withdraw it; you can reject it instead.")
