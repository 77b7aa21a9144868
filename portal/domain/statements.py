"""A client statement: opening balance, dated activity with a running balance, closing balance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Entry:
    on: date
    kind: str  # invoice | void | payment | adjustment | refund
    reference: str
    description: str
    charge_cents: int  # raises what the client owes
    credit_cents: int  # lowers it


@dataclass(frozen=True)
class StatementLine:
    entry: Entry
    balance_cents: int


@dataclass(frozen=True)
class Statement:
    start: date
    end: date
    opening_cents: int
    lines: tuple[StatementLine, ...]
    closing_cents: int


_ORDER = {"invoice": 0, "void": 1, "payment": 2, "adjustment": 3, "refund": 4}


def build_statement(entries: Iterable[Entry], start: date, end: date, opening_cents: int = 0) -> Statement:
    """``opening_cents`` is what was owed before ``start`` (computed by the caller, e.g. with SQL sums); entries
    before ``start`` are folded into it too, and those after ``end`` are left out."""
    ordered = sorted(entries, key=lambda e: (e.on, _ORDER.get(e.kind, 9), e.reference))
    opening = opening_cents + sum(e.charge_cents - e.credit_cents for e in ordered if e.on < start)
    running = opening
    lines = []
    for e in ordered:
        if start <= e.on <= end:
            running += e.charge_cents - e.credit_cents
            lines.append(StatementLine(e, running))
    return Statement(start, end, opening, tuple(lines), running)
