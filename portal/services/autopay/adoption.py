"""How many clients, and how much of the revenue, autopay covers, and how that moved month by month."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from portal.clock import today
from portal.domain.clients import ClientStatus
from portal.domain.invoices import InvoiceStatus
from portal.models import AutopayEnrollment, Client, Invoice

BILLED = (InvoiceStatus.OPEN, InvoiceStatus.PAID)
REVENUE_DAYS = 90


@dataclass(frozen=True)
class Adoption:
    clients: int
    on_autopay: int
    billed_cents: int  # last 90 days, all clients
    billed_on_autopay_cents: int
    trend: list[tuple[date, int, int]]  # (month end, clients on autopay then, clients then)

    @property
    def client_share(self) -> float:
        return self.on_autopay / self.clients if self.clients else 0.0

    @property
    def revenue_share(self) -> float:
        return self.billed_on_autopay_cents / self.billed_cents if self.billed_cents else 0.0


def _month_ends(day: date, count: int) -> list[date]:
    """The last day of each of the ``count`` months up to ``day`` (the current month ends today)."""
    ends, year, month = [], day.year, day.month
    for _ in range(count):
        ends.append(min(day, date(year, month, calendar.monthrange(year, month)[1])))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(ends))


def adoption(session: Session, months: int = 6) -> Adoption:
    on = today()
    active = Client.status != ClientStatus.INACTIVE
    enrolled = select(AutopayEnrollment.client_id).where(AutopayEnrollment.enrolled.is_(True))
    clients = session.scalar(select(func.count(Client.id)).where(active)) or 0
    on_autopay = session.scalar(select(func.count(Client.id)).where(active, Client.id.in_(enrolled))) or 0
    since = on - timedelta(days=REVENUE_DAYS)
    billed = select(func.coalesce(func.sum(Invoice.total_cents), 0)).where(Invoice.issue_date > since,
                                                                           Invoice.status.in_(BILLED))
    billed_cents = int(session.scalar(billed) or 0)
    billed_auto = int(session.scalar(billed.where(Invoice.client_id.in_(enrolled))) or 0)
    trend = []
    for end in _month_ends(on, months):
        total = session.scalar(select(func.count(Client.id)).where(func.date(Client.created_at) <= end)) or 0
        then = session.scalar(select(func.count(AutopayEnrollment.id)).where(
            AutopayEnrollment.enrolled_at.is_not(None), func.date(AutopayEnrollment.enrolled_at) <= end,
            or_(AutopayEnrollment.enrolled.is_(True), func.date(AutopayEnrollment.left_at) > end))) or 0
        trend.append((end, then, total))
    return Adoption(clients, on_autopay, billed_cents, billed_auto, trend)
