"""Allocating money to invoices. Pure functions over (invoice id, balance) pairs; the caller persists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from .errors import AllocationError
from .invoices import DRAFT, VOID

#: Invoices that owe nothing whatever was applied to them: a draft is not owed yet, a void one no longer.
NO_BALANCE = (DRAFT, VOID)


def invoice_balance(status: str, total_cents: int, paid_cents: int) -> int:
    """What is still owed on an invoice: its total less what settled it: money applied (net of reversals) and
    adjustments such as an autopay discount (never an edit of the total), both counted in ``paid_cents``.

    The one statement of the rule; services.ledger.balance_expr is the same rule in SQL for grouped queries."""
    return 0 if status in NO_BALANCE else total_cents - paid_cents


@dataclass(frozen=True)
class OpenItem:
    invoice_id: int
    balance_cents: int
    label: str = ""
    due_date: date | None = None  # as ledger.open_items reads them


def allocate_oldest_first(amount_cents: int, items: Sequence[OpenItem]) -> dict[int, int]:
    """Spread ``amount_cents`` over ``items`` in the given order (oldest due first); leftover stays unallocated."""
    if amount_cents < 0:
        raise AllocationError("Cannot allocate a negative amount.")
    plan: dict[int, int] = {}
    remaining = amount_cents
    for item in items:
        if remaining == 0:
            break
        take = min(remaining, item.balance_cents)
        if take > 0:
            plan[item.invoice_id] = take
            remaining -= take
    return plan


def check_allocation(amount_cents: int, plan: Mapping[int, int], items: Sequence[OpenItem]) -> None:
    """An explicit allocation: only these invoices, never more than owed, never more than the money available."""
    balances = {item.invoice_id: item for item in items}
    total = 0
    for invoice_id, cents in plan.items():
        item = balances.get(invoice_id)
        if item is None:
            raise AllocationError("A payment can only be applied to this client's open invoices.")
        if cents < 0:
            raise AllocationError("Allocated amounts cannot be negative.")
        if cents > item.balance_cents:
            label = item.label or f"invoice {invoice_id}"
            raise AllocationError(f"That is more than is owed on {label}.")
        total += cents
    if total > amount_cents:
        raise AllocationError("The allocations add up to more than the payment.")


def reversal_plan(amount_cents: int, applied: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Which allocations to undo (newest first) to free ``amount_cents``. ``applied``: (invoice id, net applied)."""
    plan: dict[int, int] = {}
    remaining = amount_cents
    for invoice_id, cents in reversed(applied):
        if remaining == 0:
            break
        take = min(remaining, cents)
        if take > 0:
            plan[invoice_id] = plan.get(invoice_id, 0) + take
            remaining -= take
    if remaining:
        raise AllocationError("Not enough money is applied to reverse that amount.")
    return plan
