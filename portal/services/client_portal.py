"""What a signed-in contact sees of its own client's account: pages of invoices and payments. Every query starts
from ClientScope, so a contact only ever sees its own client's records. Balances follow the ledger's rules
(domain.ledger, domain.payments): a list reads them with its rows (the kept settled sums, see
reports.ListedInvoice), a single invoice from its allocation rows; never one query per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Generic, TypeVar

from sqlalchemy import Select, bindparam, func, select

from portal.domain.invoices import OPEN, PAID
from portal.domain.payments import payment_credit
from portal.models import Allocation, Invoice, Payment

from . import ledger
from .keysets import among_bound, key_values, on_postgresql, one_of
from .payments.checkout import in_flight_on
from .reports import LISTED_INVOICE, ListedInvoice
from .scope import ClientScope, visible_invoices, visible_payments

INVOICE_FILTERS = {
    "all": None,  # every invoice the client can see (open, paid, void)
    "open": (OPEN,),  # money still owing, whether current, partially paid or overdue
    "paid": (PAID,),
}


_PAGE_COLUMNS = (*LISTED_INVOICE, in_flight_on(Invoice.id).label("paying"))  # built once, not per page view


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice | ListedInvoice  # a ListedInvoice in lists
    paid_cents: int
    balance_cents: int
    status: str  # what a person sees: open, partially paid, overdue, paid, void
    paying: bool = False  # in invoice_page: money is on its way to it (checkout.payments_in_flight tells what)

    @property
    def badge(self) -> str:
        return self.status.replace(" ", "-")


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    number: int
    has_previous: bool
    has_next: bool


def invoice_rows(scope: ClientScope, invoices: Sequence[Invoice], today: date) -> list[InvoiceRow]:
    paid = ledger.paid_cents(scope.session, [i.id for i in invoices])
    return [_row(i, paid[i.id], today) for i in invoices]


def _row(invoice: Invoice | ListedInvoice, paid: int, today: date, paying: bool = False) -> InvoiceRow:
    figures = ledger.figures_for(invoice, paid, today)
    return InvoiceRow(invoice, figures.paid_cents, figures.balance_cents, figures.status, paying)


def invoice_page(scope: ClientScope, *, status: str, page: int, page_size: int, today: date,
                 number: str = "") -> Page[InvoiceRow]:
    """Newest first, walking the (client_id, issue_date, id) index backwards. No COUNT(*): with a million
    invoices counting costs more than the page itself, so we fetch one extra row to know if there is a next page."""
    params = {"limit": page_size + 1, "offset": (page - 1) * page_size}
    if number:
        params["number"] = _escape_like(number)
    found = scope.rows(_PAGES[status if status in INVOICE_FILTERS else "all", bool(number)], **params).all()
    listed = [(ListedInvoice._make(r[:-1]), r.paying) for r in found[:page_size]]  # the listed columns, then paying
    rows = [_row(invoice, invoice.settled_cents, today, paying) for invoice, paying in listed]
    return Page(rows, page, page > 1, len(found) > page_size)


def _page_statement(statuses: tuple[str, ...] | None, by_number: bool) -> Select:
    query = visible_invoices(*_PAGE_COLUMNS)
    if statuses:
        query = query.where(one_of(Invoice.status, statuses))
    if by_number:  # what istartswith(number, autoescape=True) writes, with the number bound when it runs
        query = query.where(Invoice.number.ilike(bindparam("number").concat("%"), escape="/"))
    return (query.order_by(Invoice.issue_date.desc(), Invoice.id.desc())
            .limit(bindparam("limit")).offset(bindparam("offset")))


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


# The invoice list's statements, one per filter, with and without a number searched for: built once.
_PAGES = {(status, by_number): _page_statement(statuses, by_number)
          for status, statuses in INVOICE_FILTERS.items() for by_number in (False, True)}


def recent_open(scope: ClientScope, today: date, limit: int = 5) -> list[InvoiceRow]:
    return [_row(i, i.settled_cents, today) for i in map(ListedInvoice._make, scope.rows(_RECENT_OPEN, limit=limit))]


_RECENT_OPEN = (visible_invoices(*LISTED_INVOICE).where(Invoice.status == OPEN)
                .order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(bindparam("limit")))


@dataclass(frozen=True)
class AppliedPayment:
    payment: Payment
    applied_cents: int


def payments_on_invoice(scope: ClientScope, invoice: Invoice) -> list[AppliedPayment]:
    """Payments that (still) pay this invoice, net of reversals."""
    return [AppliedPayment(payment, int(cents)) for payment, cents in scope.run(_ON_INVOICE, invoice_id=invoice.id)]


_APPLIED = func.sum(Allocation.amount_cents)
_ON_INVOICE = (visible_payments(Payment, _APPLIED)
               .join(Allocation, Allocation.payment_id == Payment.id)
               .where(Allocation.invoice_id == bindparam("invoice_id"))
               .group_by(Payment.id)
               .having(_APPLIED != 0)
               .order_by(Payment.received_on, Payment.id))


@dataclass(frozen=True)
class PaidInvoice:
    invoice_id: int
    number: str
    cents: int


@dataclass
class PaymentRow:
    payment: Payment
    invoices: list[PaidInvoice] = field(default_factory=list)
    refunded_cents: int = 0

    @property
    def applied_cents(self) -> int:
        return sum(i.cents for i in self.invoices)

    @property
    def unapplied_cents(self) -> int:
        """Held as the client's credit."""
        return payment_credit(self.payment.status, self.payment.amount_cents, self.applied_cents,
                              self.refunded_cents)


def _payment_rows(scope: ClientScope, payments: list[Payment]) -> list[PaymentRow]:
    rows = {p.id: PaymentRow(p) for p in payments}
    if not rows:
        return []
    allocated = scope.session.execute(_allocated_statement(on_postgresql(scope.session)), {
        "payment_ids": key_values(scope.session, Payment.id, rows), "client_id": scope.client_id})
    for payment_id, invoice_id, number, total in allocated:
        rows[payment_id].invoices.append(PaidInvoice(invoice_id, number, int(total)))
    _applied, refunded = ledger.applied_and_refunded(scope.session, rows)
    for payment_id, total in refunded.items():
        rows[payment_id].refunded_cents = total
    return list(rows.values())


@cache
def _allocated_statement(postgresql: bool) -> Select:
    """What each payment paid on the client's invoices, built once per kind of database (the payments one bound
    parameter, keysets.among_bound): the payment list reads it on every view."""
    cents = func.sum(Allocation.amount_cents)
    return (select(Allocation.payment_id, Invoice.id, Invoice.number, cents)
            .join(Invoice, Invoice.id == Allocation.invoice_id)
            .where(among_bound(Allocation.payment_id, "payment_ids", postgresql=postgresql),
                   Invoice.client_id == bindparam("client_id"))
            .group_by(Allocation.payment_id, Invoice.id, Invoice.number)
            .having(cents != 0)
            .order_by(Allocation.payment_id, Invoice.id))


def payment_page(scope: ClientScope, *, page: int, page_size: int) -> Page[PaymentRow]:
    found = list(scope.run(_PAYMENT_PAGE, limit=page_size + 1, offset=(page - 1) * page_size).scalars())
    return Page(_payment_rows(scope, found[:page_size]), page, page > 1, len(found) > page_size)


_PAYMENT_PAGE = (visible_payments(Payment).order_by(Payment.received_on.desc(), Payment.id.desc())
                 .limit(bindparam("limit")).offset(bindparam("offset")))


def payment_row(scope: ClientScope, payment_id: int) -> PaymentRow:
    return _payment_rows(scope, [scope.payment(payment_id)])[0]
