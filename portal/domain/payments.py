"""Rules of online payments: the payment state machine, card surcharges, and what a client may choose to pay.

Pure: no Flask, SQLAlchemy or gateway imports. Amounts are integer cents, rates are Decimal percentages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from .errors import AllocationError, DomainError, InvalidAmount, InvalidTransition
from .ledger import OpenItem
from .money import format_money, percent_of, round_half_up
from .regions import normalize_region

# --- payment states ----------------------------------------------------------------------------------------------

class AttemptStatus(StrEnum):
    """A charge attempt: one try at taking the client's money through the gateway."""

    #: The row is written, the gateway not called yet.
    CREATED = "created"
    #: The gateway call ended without an answer (timeout, outage): money may or may not have moved.
    UNKNOWN = "unknown"
    PENDING = "pending"
    #: The bank asks the paying client to authenticate (3-D Secure); nothing is charged until they do.
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class PaymentStatus(StrEnum):
    """A payment on the ledger. Only succeeded money is allocated to invoices or counted as credit."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundStatus(StrEnum):
    """A refund on the ledger: money handed back out of a payment (a pending one is on its way)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class GatewayRefundStatus(StrEnum):
    """A refund asked of the gateway, before and after it answered; booked on the ledger once pending or
    succeeded."""

    REQUESTED = "requested"
    UNKNOWN = "unknown"  # no answer (timeout, outage): reconciliation asks again with the same key
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AttemptOrigin(StrEnum):
    """How a charge attempt charges, so a replay of its call sends the same kind of request."""

    CHECKOUT = "checkout"  # a confirmation token the client entered
    AUTOPAY = "autopay"  # a saved method, the client away (off-session)
    CONFIRM = "confirm"  # a saved method the client approves on-session after autopay needed them


class PaymentRequestStatus(StrEnum):
    """A checkout: what the client chose to pay at once. Paid once its charge is booked. Withdrawn when what it was
    opened for is settled another way or no longer asked (a plan's down payment paid by check, the plan or the
    equipment order canceled): an old link to it must not take the money a second time."""

    OPEN = "open"
    PAID = "paid"
    WITHDRAWN = "withdrawn"


PENDING, PROCESSING, SUCCEEDED = AttemptStatus.PENDING, AttemptStatus.PROCESSING, AttemptStatus.SUCCEEDED
FAILED, CANCELED = AttemptStatus.FAILED, AttemptStatus.CANCELED
UNKNOWN, CREATED, REQUIRES_ACTION = AttemptStatus.UNKNOWN, AttemptStatus.CREATED, AttemptStatus.REQUIRES_ACTION

FINAL = frozenset({SUCCEEDED, FAILED, CANCELED})
#: Attempts that may still turn into money: their amounts are held against the invoices they pay.
IN_FLIGHT = frozenset({CREATED, UNKNOWN, PENDING, REQUIRES_ACTION, PROCESSING})

# How far along a charge is. Webhooks arrive in any order and twice; a report can only move a charge forward,
# so a late "processing" after "succeeded" changes nothing.
_RANK = {CREATED: 0, UNKNOWN: 0, PENDING: 1, REQUIRES_ACTION: 1, PROCESSING: 2, SUCCEEDED: 3, FAILED: 3, CANCELED: 3}
_GATEWAY_TO_ATTEMPT = {
    "succeeded": SUCCEEDED,
    "processing": PROCESSING,
    "requires_action": REQUIRES_ACTION,
    "failed": FAILED,
    "canceled": CANCELED,
}


def attempt_status_for(gateway_status: str) -> str:
    """A gateway's charge status in our words."""
    try:
        return _GATEWAY_TO_ATTEMPT[gateway_status]
    except KeyError:
        raise InvalidTransition(f"Unknown gateway status {gateway_status!r}.") from None


def gateway_refund_status_for(gateway_status: str) -> GatewayRefundStatus:
    """A gateway's answer about a refund in our words. Anything not yet settled either way (canceled or waiting on
    an action) is pending: it is booked as money on its way out, and reconciliation learns the rest."""
    if gateway_status in (GatewayRefundStatus.SUCCEEDED, GatewayRefundStatus.FAILED):
        return GatewayRefundStatus(gateway_status)
    return GatewayRefundStatus.PENDING


def advance(current: str, reported: str) -> str:
    """The status after the gateway reported ``reported`` for a charge that is ``current``.

    Final states absorb everything (a duplicate or late event is a no-op); otherwise the charge only moves forward.
    Between two states of the same rank (pending and requires_action) the newer report wins.
    """
    if current not in _RANK or reported not in _RANK:
        raise InvalidTransition(f"Unknown payment status {current!r} -> {reported!r}.")
    if current in FINAL:
        return current
    return reported if _RANK[reported] >= _RANK[current] else current


def payment_credit(status: str, amount_cents: int, applied_cents: int, refunded_cents: int) -> int:
    """The part of a ledger payment that is the client's credit: money that arrived and is neither applied to an
    invoice nor refunded. Money that has not arrived (pending ACH) is nobody's credit yet.

    The one statement of the rule; services.ledger.credit_expr is the same rule in SQL."""
    return amount_cents - applied_cents - refunded_cents if status == SUCCEEDED else 0


def payment_status_for(attempt_status: str) -> str | None:
    """The ledger Payment status for an attempt, or None while no money has started to move (nothing charged yet,
    or waiting for the client to approve it with their bank): the ledger hears of a payment once it is on its way."""
    if attempt_status in (CREATED, UNKNOWN, PENDING, REQUIRES_ACTION):
        return None
    return PaymentStatus(attempt_status)


def display_state(status: str, *, amount_cents: int, refunded_cents: int, open_dispute: bool,
                  lost_dispute: bool = False) -> str:
    """What people see: the ledger status, or refunded / disputed once that happened to succeeded money."""
    if status != SUCCEEDED:
        return status
    if open_dispute:
        return "disputed"
    if lost_dispute:
        return "dispute lost"
    if refunded_cents >= amount_cents > 0:
        return "refunded"
    if refunded_cents > 0:
        return "partially refunded"
    return status


# --- disputes ------------------------------------------------------------------------------------------------------

class DisputeStatus(StrEnum):
    """A chargeback's status, in the gateway's words (stored as reported)."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    PREVENTED = "prevented"


DISPUTE_CLOSED = frozenset({DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED,
                            DisputeStatus.PREVENTED})


def advance_dispute(current: str | None, reported: str) -> str:
    """A dispute's status after an event. Closed is final: a late 'needs_response' never reopens it."""
    if current in DISPUTE_CLOSED:
        return current
    return reported


def is_open_dispute(status: str) -> bool:
    return status not in DISPUTE_CLOSED


# --- surcharges -----------------------------------------------------------------------------------------------------

MAX_SURCHARGE_PERCENT = Decimal("3")  # the card networks' cap in the US


def check_surcharge_percent(rate: Decimal) -> Decimal:
    """A surcharge the MSP may configure: 0 (off) up to the cap, at most two decimals."""
    if not rate.is_finite() or rate < 0:
        raise InvalidAmount("The surcharge cannot be negative.")
    if rate > MAX_SURCHARGE_PERCENT:
        raise InvalidAmount(f"The card surcharge is capped at {MAX_SURCHARGE_PERCENT}%.")
    if rate != rate.quantize(Decimal("0.01")):
        raise InvalidAmount("Use at most two decimals for the surcharge.")
    return rate


def parse_regions(text: str) -> frozenset[str]:
    """'CT, ma;  ny' -> {'CT', 'MA', 'NY'}; a state's name becomes its code ('Connecticut' -> 'CT')."""
    parts = text.replace(";", ",").replace("\n", ",").split(",")
    return frozenset(normalize_region(p).upper() for p in parts if p.strip())


def region_blocked(client_region: str, blocked_regions: Iterable[str]) -> bool:
    """Whether the client's billing state is one where card surcharges are banned, however either is spelled
    ("Connecticut" on an older client record is still CT)."""
    return normalize_region(client_region).upper() in {normalize_region(r).upper() for r in blocked_regions}


@dataclass(frozen=True)
class SurchargeQuote:
    rate: Decimal
    cents: int
    reason: str  # why there is (or is no) surcharge, in words fit for the paying client

    @property
    def applies(self) -> bool:
        return self.cents > 0


def surcharge_for(
    base_cents: int, rate: Decimal, *, method_type: str, card_funding: str | None, client_region: str,
    blocked_regions: Iterable[str],
) -> SurchargeQuote:
    """The surcharge on a payment of ``base_cents``: credit cards only, capped, never where the MSP blocks it."""
    none = Decimal("0")
    if rate <= 0:
        return SurchargeQuote(none, 0, "No surcharge.")
    if method_type != "card":
        return SurchargeQuote(none, 0, "Bank payments (ACH) carry no surcharge.")
    if card_funding != "credit":
        # debit and prepaid cards may not be surcharged; an unknown funding type gets the benefit of the doubt
        return SurchargeQuote(none, 0, "Debit and prepaid cards carry no surcharge.")
    if region_blocked(client_region, blocked_regions):
        return SurchargeQuote(none, 0, "No surcharge applies in your billing state.")
    capped = min(rate, MAX_SURCHARGE_PERCENT)
    return SurchargeQuote(capped, percent_of(base_cents, capped), f"Credit card surcharge ({capped.normalize()}%).")


def surcharge_refund_cents(*, surcharge_cents: int, base_cents: int, refunded_before: int, refunding: int) -> int:
    """The part of a paid surcharge that goes back with a refund of ``refunding`` cents of invoice money.

    Proportional and cumulative, rounded once per step, so refunding all the invoice money (in any number of
    parts) returns exactly the whole surcharge.
    """
    if surcharge_cents == 0 or base_cents == 0:
        return 0
    after = min(base_cents, refunded_before + refunding)
    share_after = round_half_up(Decimal(surcharge_cents) * after / base_cents)
    share_before = round_half_up(Decimal(surcharge_cents) * refunded_before / base_cents)
    return share_after - share_before


def base_part_of_charge(*, charged_cents: int, base_cents: int, gateway_cents: int) -> int:
    """How much of ``gateway_cents`` taken back from a charge (a refund made at the gateway, a lost dispute) is
    invoice money rather than surcharge."""
    if charged_cents <= 0:
        return 0
    gateway_cents = min(gateway_cents, charged_cents)
    return round_half_up(Decimal(gateway_cents) * base_cents / charged_cents)


# --- choosing what to pay -------------------------------------------------------------------------------------------

#: The smallest charge a card network accepts (Stripe: $0.50).
GATEWAY_MINIMUM_CENTS = 50
DEFAULT_PARTIAL_MINIMUM_CENTS = 1000


def choose_amounts(requested: Mapping[int, int], payable: Sequence[OpenItem], *, partial_minimum_cents: int,
                   currency: str = "USD") -> dict[int, int]:
    """Check what a client wants to pay: only payable invoices, never more than is owed (so overpayment is
    impossible), a part payment no smaller than the MSP's minimum, and a total the card networks accept.

    ``payable`` holds each invoice's balance less what other payments in flight already cover.
    """
    by_id = {item.invoice_id: item for item in payable}
    chosen: dict[int, int] = {}
    for invoice_id, cents in requested.items():
        item = by_id.get(invoice_id)
        if item is None:
            raise AllocationError("That invoice cannot be paid online now.")
        label = item.label or f"invoice {invoice_id}"
        if cents <= 0:
            raise InvalidAmount(f"Enter an amount above zero for {label}.")
        if cents > item.balance_cents:
            raise AllocationError(f"That is more than is owed on {label}.")
        if cents < item.balance_cents and cents < partial_minimum_cents:
            minimum = format_money(partial_minimum_cents, currency)
            raise InvalidAmount(f"A part payment of {label} must be at least {minimum}; or pay the full balance.")
        chosen[invoice_id] = cents
    if not chosen:
        raise DomainError("Choose at least one invoice to pay.")
    if sum(chosen.values()) < GATEWAY_MINIMUM_CENTS:
        minimum = format_money(GATEWAY_MINIMUM_CENTS, currency)
        raise InvalidAmount(f"Online payments must be at least {minimum} in total.")
    return chosen


def payable_items(open_items: Sequence[OpenItem], in_flight: Mapping[int, int]) -> list[OpenItem]:
    """Open balances less the money already on its way (a bank payment still clearing, an unfinished card charge)."""
    items = []
    for item in open_items:
        left = item.balance_cents - in_flight.get(item.invoice_id, 0)
        if left > 0:
            items.append(OpenItem(item.invoice_id, left, item.label))
    return items


def allocation_on_arrival(chosen: Mapping[int, int], open_items: Sequence[OpenItem]) -> dict[int, int]:
    """What to apply when the money arrives: what the client chose, capped at what is still owed then (another
    payment may have arrived meanwhile). The rest stays on the client's account as credit."""
    balances = {item.invoice_id: item.balance_cents for item in open_items}
    plan = {}
    for invoice_id, cents in chosen.items():
        take = min(cents, balances.get(invoice_id, 0))
        if take > 0:
            plan[invoice_id] = take
    return plan

