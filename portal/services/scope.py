"""The one way client-side code reads records: everything is filtered by the signed-in contact's client.

A foreign or unknown id raises NotFound, so the web layer answers 404 without saying whether it exists.
"""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from portal.domain.invoices import InvoiceStatus
from portal.models import Agreement, Invoice, Payment

from .errors import NotFound

VISIBLE_INVOICE_STATUSES = (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID)  # drafts: MSP's work


class ClientScope:
    def __init__(self, session: Session, client_id: int):
        self.session = session
        self.client_id = client_id

    def invoices(self) -> Select:
        return select(Invoice).where(
            Invoice.client_id == self.client_id, Invoice.status.in_(VISIBLE_INVOICE_STATUSES)
        )

    def invoice(self, invoice_id: int) -> Invoice:
        return self._one(self.invoices().where(Invoice.id == invoice_id))

    def invoice_by_number(self, number: str) -> Invoice:
        return self._one(self.invoices().where(Invoice.number == number))

    def count_invoices(self, query: Select) -> int:
        return self.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0

    def payments(self) -> Select:
        return select(Payment).where(Payment.client_id == self.client_id)

    def payment(self, payment_id: int) -> Payment:
        return self._one(self.payments().where(Payment.id == payment_id))

    def agreements(self) -> Select:
        return select(Agreement).where(Agreement.client_id == self.client_id)

    def agreement(self, reference: str) -> Agreement:
        return self._one(self.agreements().where(Agreement.reference == reference))

    def _one(self, query: Select):
        row = self.session.scalar(query)
        if row is None:
            raise NotFound()
        return row
