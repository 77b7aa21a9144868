"""The MSP's plan policy: what an overdue client may pick by itself in the portal (largest balance, most
installments, smallest down payment, frequencies, the APR offered), the highest APR any plan may carry (usury
limits differ by state), and the grace days before a missed installment defaults a plan."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import plans as P
from portal.domain.errors import DomainError
from portal.domain.schedules import Frequency
from portal.models import PlanPolicy

from ..locking import begin_write

DEFAULT_FREQUENCIES = (Frequency.WEEKLY, Frequency.BIWEEKLY, Frequency.MONTHLY)
MAX_REMINDER_DAYS = 30


def get_policy(session: Session) -> PlanPolicy:
    """The one row, or its unsaved defaults: reading settings never writes (a page view must not take the write
    lock); the first save stores the row."""
    row = session.get(PlanPolicy, 1)
    if row is None:
        row = PlanPolicy(id=1, self_service=True, max_balance_cents=1_000_000, max_installments=6,
                         min_down_percent=Decimal("10"), frequencies=",".join(DEFAULT_FREQUENCIES),
                         apr_percent=Decimal("0"), max_apr_percent=Decimal("18"), grace_days=5, reminder_days=3,
                         updated_at=None)
    return row


def frequencies_of(row: PlanPolicy) -> tuple[Frequency, ...]:
    found = []
    for name in (row.frequencies or "").split(","):
        try:
            found.append(Frequency(name.strip()))
        except ValueError:
            continue  # a frequency this version no longer knows is simply not offered
    return tuple(f for f in Frequency if f in found)


def rules(row: PlanPolicy) -> P.Policy:
    """The row as the domain's policy value (what check_offer reads)."""
    return P.Policy(max_balance_cents=row.max_balance_cents, max_installments=row.max_installments,
                    min_down_percent=Decimal(row.min_down_percent), frequencies=frozenset(frequencies_of(row)),
                    apr_percent=Decimal(row.apr_percent), max_apr_percent=Decimal(row.max_apr_percent),
                    grace_days=row.grace_days)


def current_rules(session: Session) -> P.Policy:
    return rules(get_policy(session))


@dataclass(frozen=True)
class PolicyInput:
    self_service: bool
    max_balance_cents: int
    max_installments: int
    min_down_percent: Decimal
    frequencies: tuple[str, ...]
    apr_percent: Decimal
    max_apr_percent: Decimal
    grace_days: int
    reminder_days: int


def update_policy(session: Session, values: PolicyInput) -> PlanPolicy:
    """Validate the whole policy (the domain's check_policy) and save it; a refusal changes nothing."""
    try:
        chosen = tuple(Frequency(f) for f in values.frequencies)
    except ValueError:
        raise DomainError("Choose frequencies from the list.") from None
    policy = P.Policy(max_balance_cents=values.max_balance_cents, max_installments=values.max_installments,
                      min_down_percent=values.min_down_percent, frequencies=frozenset(chosen),
                      apr_percent=values.apr_percent, max_apr_percent=values.max_apr_percent,
                      grace_days=values.grace_days)
    P.check_policy(policy)
    if not 0 <= values.reminder_days <= MAX_REMINDER_DAYS:
        raise DomainError(f"Reminder days must be between 0 and {MAX_REMINDER_DAYS}.")
    begin_write(session)
    row = get_policy(session)
    if row not in session:
        session.add(row)
    row.self_service = values.self_service
    row.max_balance_cents, row.max_installments = values.max_balance_cents, values.max_installments
    row.min_down_percent, row.frequencies = values.min_down_percent, ",".join(f for f in Frequency if f in chosen)
    row.apr_percent, row.max_apr_percent = values.apr_percent, values.max_apr_percent
    row.grace_days, row.reminder_days = values.grace_days, values.reminder_days
    row.updated_at = now()
    session.commit()
    return row
