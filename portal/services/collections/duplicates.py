"""Likely duplicate bills: flagged when an invoice is created (billing) or imported (importer), held from sending
and from reminders until the admin confirms it is distinct (then it can be sent) or a duplicate (then it is voided
with the reason "duplicate of N").

``flag_new`` writes flag rows in the caller's transaction and changes nothing else; ``is_held`` / ``held_ids`` is
what sending and reminders ask.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from functools import cache

from sqlalchemy import Date, Select, bindparam, delete, exists, func, select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain import duplicates as rules
from portal.domain import invoices as invoice_rules
from portal.domain.duplicates import Bill, DuplicateStatus
from portal.domain.errors import DomainError
from portal.models import DuplicateFlag, Invoice, StaffUser

from .. import billing, ledger
from ..bulk import insert_rows
from ..errors import NotFound
from ..keysets import on_postgresql, pair_values, with_pairs
from ..locking import begin_write
from .settings import collection_settings

_BILL = (Invoice.id, Invoice.client_id, Invoice.number, Invoice.total_cents, Invoice.issue_date, Invoice.currency)


def _bill(row) -> Bill:
    """An invoice (or a row of ``_BILL``'s columns) as a bill to compare."""
    return Bill(row.id, row.client_id, row.number, row.total_cents, row.issue_date, row.currency)


def flag_new(session: Session, invoices: Sequence[Invoice], *, decided: Collection[int] = ()) -> int:
    """Flag each of ``invoices`` (flushed, so they have ids) that looks like an earlier bill of its client. One
    query for the candidates of all of them (an import passes a whole chunk). ``decided``: originals the admin has
    already answered for (a re-checked draft), never flagged again. Returns how many flags were written; the
    caller commits."""
    new = [_bill(i) for i in invoices
           if i.source in rules.CHECKED_SOURCES and i.status != invoice_rules.VOID and i.total_cents > 0]
    if not new:
        return 0
    window = collection_settings(session).duplicate_window_days
    # the window around the bills' dates, written into the statement when it runs, like the pairs: a plan made
    # without the dates (PostgreSQL's generic plan for a statement the driver prepared) guessed one row in the
    # window and compared every pair with every invoice
    lowest = min(b.issue_date for b in new) - timedelta(days=window)
    highest = max(b.issue_date for b in new) + timedelta(days=window)
    pairs = sorted({(b.client_id, b.total_cents) for b in new})
    # grouped by what a duplicate must share, so a large import compares each bill with its few twins only
    twins: dict[tuple[int, str, int], list[Bill]] = defaultdict(list)
    for row in session.execute(_with_twins(on_postgresql(session)),
                               {"lowest": lowest, "highest": highest, **pair_values(session, pairs)}):
        twins[(row.client_id, row.currency, row.total_cents)].append(_bill(row))
    at = now()
    flags = [{"invoice_id": b.invoice_id, "duplicate_of_id": original.invoice_id,
              "status": DuplicateStatus.FLAGGED, "created_at": at}
             for b in new if (key := (b.client_id, b.currency, b.total_cents)) in twins  # most bills have none
             for original in rules.originals_of(b, twins[key], window) if original.invoice_id not in decided]
    # one statement (COPY on PostgreSQL): as ORM objects they were inserted one by one to read back ids nothing
    # needs, and an executemany of a large import's thousands of flags cost a tenth of its time
    insert_rows(session, DuplicateFlag.__table__, flags)
    return len(flags)


@cache
def _with_twins(postgresql: bool) -> Select:
    """The checked, unvoided invoices that share client and total with one of the bills (bound by name: pairs,
    lowest, highest: ``keysets.with_pairs``) and were issued within the window of their dates, those with a twin
    only. One range of the (client_id, total_cents, issue_date) index a pair, whatever the client's history. Only
    invoices with a twin (another of the same client and total in the window) are read back: a bill alone in its
    group is the new invoice itself. Counted in the same statement, so a large import's chunk, which mostly has no
    twins, reads its index ranges once and gets (almost) nothing back. Built once: building it per chunk was a
    fifth of the check."""
    twin_count = func.count().over(partition_by=(Invoice.client_id, Invoice.total_cents)).label("twins")
    window = [bindparam(name, type_=Date(), literal_execute=True) for name in ("lowest", "highest")]
    found = (with_pairs(select(*_BILL, twin_count), Invoice.client_id, Invoice.total_cents, postgresql=postgresql)
             .where(Invoice.issue_date.between(*window), Invoice.status != invoice_rules.VOID,
                    Invoice.source.in_(rules.CHECKED_SOURCES))).subquery()
    return select(found).where(found.c.twins > 1)


def recheck_draft(session: Session, invoice: Invoice) -> int:
    """A draft's amount or date changed: its undecided flags are worked out again (the caller commits)."""
    session.flush()
    session.execute(delete(DuplicateFlag).where(DuplicateFlag.invoice_id == invoice.id,
                                                DuplicateFlag.status == DuplicateStatus.FLAGGED))
    decided = set(session.scalars(select(DuplicateFlag.duplicate_of_id).where(DuplicateFlag.invoice_id == invoice.id)))
    return flag_new(session, [invoice], decided=decided)


def is_held(session: Session, invoice_id: int) -> bool:
    """True while the invoice is flagged as a likely duplicate and the admin has not decided: do not send it, do
    not remind about it."""
    return session.scalar(select(exists().where(DuplicateFlag.invoice_id == invoice_id,
                                                DuplicateFlag.status == DuplicateStatus.FLAGGED))) or False


def held_ids(session: Session, invoice_ids: Iterable[int]) -> set[int]:
    """Of ``invoice_ids``, those held as likely duplicates (one query, for lists and reminder runs)."""
    ids = list(invoice_ids)
    if not ids:
        return set()
    return set(session.scalars(select(DuplicateFlag.invoice_id).where(
        DuplicateFlag.invoice_id.in_(ids), DuplicateFlag.status == DuplicateStatus.FLAGGED)))


def hold_reason(session: Session, invoice: Invoice) -> str:
    """Why the invoice may not be sent yet ('' when it may)."""
    flag = session.scalar(select(DuplicateFlag).where(DuplicateFlag.invoice_id == invoice.id,
                                                      DuplicateFlag.status == DuplicateStatus.FLAGGED)
                          .order_by(DuplicateFlag.id))
    return rules.hold_message(invoice.number, flag.duplicate_of.number) if flag is not None else ""


def check_sendable(session: Session, invoice: Invoice) -> None:
    """Refuse to send a held invoice, saying what to do."""
    if reason := hold_reason(session, invoice):
        raise DomainError(reason)


def flags_for(session: Session, invoice_id: int) -> list[DuplicateFlag]:
    """Every flag on an invoice (held, or decided), oldest first: the invoice page's banner."""
    return list(session.scalars(select(DuplicateFlag).where(DuplicateFlag.invoice_id == invoice_id)
                                .order_by(DuplicateFlag.id)))


def open_flags(session: Session, *, limit: int = 500) -> list[DuplicateFlag]:
    return list(session.scalars(_LISTED.where(DuplicateFlag.status == DuplicateStatus.FLAGGED)
                                .order_by(DuplicateFlag.created_at, DuplicateFlag.id).limit(limit)))


def recent_decisions(session: Session, *, limit: int = 50) -> list[DuplicateFlag]:
    return list(session.scalars(_LISTED.where(DuplicateFlag.status != DuplicateStatus.FLAGGED)
                                .order_by(DuplicateFlag.decided_at.desc(), DuplicateFlag.id.desc()).limit(limit)))


# The flags with the invoices (and the held one's client) the list shows: one statement each, not one per flag.
_LISTED = select(DuplicateFlag).options(selectinload(DuplicateFlag.invoice).selectinload(Invoice.client),
                                        selectinload(DuplicateFlag.duplicate_of))


def _load(session: Session, invoice_id: int) -> tuple[Invoice, list[DuplicateFlag]]:
    """The invoice (locked) and its undecided flags, oldest first; refused when nothing is left to decide."""
    begin_write(session)
    invoice = session.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)
    if invoice is None:
        session.rollback()
        raise NotFound("No such invoice.")
    held = list(session.scalars(select(DuplicateFlag).where(DuplicateFlag.invoice_id == invoice.id,
                                                            DuplicateFlag.status == DuplicateStatus.FLAGGED)
                                .order_by(DuplicateFlag.id).with_for_update()
                                .execution_options(populate_existing=True)))
    if not held:  # never flagged, or decided already (perhaps by another admin a moment ago)
        session.rollback()
        raise DomainError(rules.not_held_message(invoice.number))
    return invoice, held


def confirm_distinct(session: Session, invoice_id: int, *, staff: StaffUser | None) -> Invoice:
    """The admin says the invoice is separate work: every hold on it is lifted and it can be sent."""
    invoice, held = _load(session, invoice_id)
    _decide(held, DuplicateStatus.DISTINCT, staff)
    session.commit()
    return invoice


def confirm_duplicate(session: Session, invoice_id: int, *, staff: StaffUser | None) -> Invoice:
    """The admin says the invoice bills the same work again: it is voided ("duplicate of N", N the first original
    it was flagged against) through billing's void, which refuses (and nothing changes) if money was applied."""
    invoice, held = _load(session, invoice_id)
    try:
        invoice_rules.check_void(invoice.status, ledger.paid_cents(session, [invoice.id])[invoice.id])
    except DomainError:
        session.rollback()
        raise
    _decide(held, DuplicateStatus.DUPLICATE, staff)
    return billing.void_invoice(session, invoice, f"duplicate of {held[0].duplicate_of.number}")  # commits


def _decide(held: list[DuplicateFlag], status: DuplicateStatus, staff: StaffUser | None) -> None:
    at = now()
    for row in held:
        row.status, row.decided_at, row.decided_by_id = status, at, staff.id if staff else None
