"""Accounts-receivable aging: how far past due each open balance is, in the buckets MSPs report on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")


def bucket_for(due_date: date, today: date) -> str:
    days = (today - due_date).days
    if days <= 0:
        return "current"
    if days <= 30:
        return "1-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"


def days_past_due(due_date: date, today: date) -> int:
    return max(0, (today - due_date).days)


@dataclass
class AgingReport:
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    @property
    def total_cents(self) -> int:
        return sum(self.totals.values())

    @property
    def overdue_cents(self) -> int:
        return self.total_cents - self.totals["current"]

    @property
    def overdue_count(self) -> int:
        return sum(self.counts.values()) - self.counts["current"]


def age(owing: Iterable[tuple[date, int, int]], today: date) -> AgingReport:
    """``owing``: (due date, cents still owed, number of invoices), one row per invoice or per due date as a grouped
    query returns them; rows owing nothing are left out."""
    report = AgingReport()
    for due_date, cents, invoices in owing:
        if cents <= 0:
            continue
        bucket = bucket_for(due_date, today)
        report.totals[bucket] += cents
        report.counts[bucket] += invoices
    return report
