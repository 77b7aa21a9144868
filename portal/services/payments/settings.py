"""The MSP's online-payment settings: the card surcharge, where it may not be charged, the smallest part payment."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.models import Client, PaymentSettings

from ..locking import begin_write


def payment_settings(session: Session) -> PaymentSettings:
    row = session.get(PaymentSettings, 1)
    if row is None:
        # unsaved defaults: reading settings never writes (a page view must not take a write lock)
        row = PaymentSettings(id=1, surcharge_percent=Decimal("0"), surcharge_blocked_regions="",
                              partial_minimum_cents=rules.DEFAULT_PARTIAL_MINIMUM_CENTS)
    return row


def update_payment_settings(session: Session, *, surcharge_percent: Decimal, blocked_regions: str,
                            partial_minimum_cents: int) -> PaymentSettings:
    rules.check_surcharge_percent(surcharge_percent)
    if partial_minimum_cents < rules.GATEWAY_MINIMUM_CENTS:
        raise DomainError("The smallest part payment must be at least $0.50 (the card networks' minimum).")
    begin_write(session)
    row = payment_settings(session)
    if row not in session:
        session.add(row)
    row.surcharge_percent = surcharge_percent
    row.surcharge_blocked_regions = ", ".join(sorted(rules.parse_regions(blocked_regions)))
    row.partial_minimum_cents = partial_minimum_cents
    row.updated_at = now()
    session.commit()
    return row


def surcharge_terms(session: Session, client: Client) -> tuple[Decimal, bool]:
    """(rate, blocked) for this client: shown on the pay page before the client picks a method."""
    settings = payment_settings(session)
    blocked = rules.region_blocked(client.region, rules.parse_regions(settings.surcharge_blocked_regions))
    return min(settings.surcharge_percent, rules.MAX_SURCHARGE_PERCENT), blocked
