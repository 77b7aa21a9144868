"""The one way client-side code reads records: everything is filtered by the signed-in contact's client.

A foreign or unknown id raises NotFound, so the web layer answers 404 without saying whether it exists.
"""

from __future__ import annotations

from sqlalchemy import Result, Select, bindparam, select
from sqlalchemy.orm import Session

from portal.domain.invoices import InvoiceStatus
from portal.models import Agreement, Invoice, Payment

from .errors import NotFound
from .keysets import one_of, plain_rows

VISIBLE_INVOICE_STATUSES = (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID)  # drafts: MSP's work
# A statement of a busy page is built once, at import, with the client as this parameter: only ClientScope.run
# binds it (to its own client), and a statement run any other way is refused for want of a value, so it can never
# read across clients. Built per request, such a statement cost about as much again as running it.
_CLIENT = bindparam("scope_client_id")
_VISIBLE = one_of(Invoice.status, VISIBLE_INVOICE_STATUSES)


def visible_invoices(*columns) -> Select:
    """The client's invoices it may see (not drafts), for a statement built once and run with ``ClientScope.run``."""
    return select(*columns).where(Invoice.client_id == _CLIENT, _VISIBLE)


def visible_payments(*columns) -> Select:
    """The client's payments, for a statement built once and run with ``ClientScope.run``."""
    return select(*columns).where(Payment.client_id == _CLIENT)


_INVOICE = visible_invoices(Invoice).where(Invoice.id == bindparam("invoice_id"))
_PAYMENT = visible_payments(Payment).where(Payment.id == bindparam("payment_id"))


class ClientScope:
    def __init__(self, session: Session, client_id: int):
        self.session = session
        self.client_id = client_id

    def run(self, statement: Select, **params) -> Result:
        """A statement built with ``visible_invoices`` or ``visible_payments``, for this scope's client (``params``
        cannot name another)."""
        return self.session.execute(statement, {**params, _CLIENT.key: self.client_id})

    def rows(self, statement: Select, **params) -> Result:
        """``run`` for a statement of plain columns (keysets.plain_rows)."""
        return plain_rows(self.session, statement, {**params, _CLIENT.key: self.client_id})

    def invoice(self, invoice_id: int) -> Invoice:
        return _found(self.run(_INVOICE, invoice_id=invoice_id).scalar())

    def payment(self, payment_id: int) -> Payment:
        return _found(self.run(_PAYMENT, payment_id=payment_id).scalar())

    def agreements(self) -> Select:
        return select(Agreement).where(Agreement.client_id == self.client_id)

    def agreement(self, reference: str) -> Agreement:
        return self._one(self.agreements().where(Agreement.reference == reference))

    def _one(self, query: Select):
        return _found(self.session.scalar(query))


def _found(record):
    if record is None:
        raise NotFound()
    return record
