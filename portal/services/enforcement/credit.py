"""Credit limits: what a client may owe before new equipment orders (and their deposit requests) are refused.

Open A/R is what the ledger says the client's issued invoices still owe (ledger.open_items: money still clearing
is not subtracted, because it is not money yet). The check runs inside the order's own write transaction with the
client's invoices locked, so an invoice issued at the same moment cannot slip past it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import orders as rules
from portal.models import Client, CreditLimit, StaffUser

from .. import ledger
from ..errors import NotFound
from ..locking import begin_write, serialize
from ..settings import get_settings


def limit_of(session: Session, client_id: int) -> CreditLimit | None:
    return session.get(CreditLimit, client_id)


def open_ar_cents(session: Session, client_id: int, *, lock: bool = False) -> int:
    return sum(item.balance_cents for item in ledger.open_items(session, client_id, lock=lock))


def check(session: Session, client_id: int, order_cents: int, *, lock: bool = False) -> None:
    """Raises CreditLimitExceeded (a DomainError naming the open A/R, the order and the limit) when open A/R plus
    the order would go over the client's limit. With ``lock`` the caller is in a write transaction (begin_write)."""
    limit = limit_of(session, client_id)
    if limit is None:
        return
    rules.check_credit(open_ar_cents(session, client_id, lock=lock), order_cents, limit.limit_cents,
                       get_settings(session).currency)


@dataclass(frozen=True)
class CreditPosition:
    limit_cents: int | None
    open_ar_cents: int

    @property
    def available_cents(self) -> int | None:
        return None if self.limit_cents is None else self.limit_cents - self.open_ar_cents


def position(session: Session, client_id: int) -> CreditPosition:
    """For display: open A/R from the kept sums (the check itself, above, reads the rows under its locks)."""
    limit = limit_of(session, client_id)
    return CreditPosition(limit.limit_cents if limit else None, ledger.owing_cents(session, client_id))


def set_limit(session: Session, client_id: int, limit_cents: int | None, *, staff: StaffUser | None) -> None:
    """Set the limit (None removes it: no limit, no block). A negative limit is refused, nothing changed."""
    begin_write(session)
    serialize(session, f"credit limit {client_id}")  # PostgreSQL: two first limits at once would both insert
    if session.get(Client, client_id) is None:
        session.rollback()
        raise NotFound()
    if limit_cents is not None:
        rules.check_limit(limit_cents)
    row = session.get(CreditLimit, client_id)
    if limit_cents is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(CreditLimit(client_id=client_id, limit_cents=limit_cents,
                                set_by_id=staff.id if staff else None, updated_at=now()))
    else:
        row.limit_cents, row.set_by_id, row.updated_at = limit_cents, staff.id if staff else None, now()
    session.commit()
