"""Deliverable files released on payment: the MSP attaches files to an invoice; the client sees them listed on the
invoice and can download them once the invoice is paid with settled money (a bank payment still clearing does not
release them).

Files live under the instance folder (``instance/deliverables/``) by a random stored name, never by the uploaded
name; the name shown and offered for download is sanitised, and the content must match an allowed type
(portal.domain.deliverables). The bytes are written before the row is committed and removed if the commit fails.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import deliverables as D
from portal.domain.errors import DomainError
from portal.domain.invoices import InvoiceStatus
from portal.models import Deliverable, Invoice, StaffUser

from .. import ledger
from ..errors import NotFound
from ..runtime import Runtime
from ..scope import ClientScope

log = logging.getLogger(__name__)


def folder(rt: Runtime) -> Path:
    return rt.instance_path / "deliverables"


def max_bytes(rt: Runtime) -> int:
    """``PORTAL_DELIVERABLE_MAX_BYTES`` when the configuration has it, else the domain's default."""
    configured = rt.config.get("DELIVERABLE_MAX_BYTES")
    return int(configured) if configured else D.DEFAULT_MAX_BYTES


def attach(session: Session, rt: Runtime, invoice: Invoice, *, filename: str, data: bytes,
           staff: StaffUser | None) -> Deliverable:
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
        raise DomainError("Files can be attached to issued invoices only.")
    kind = D.check_file(filename, data, max_bytes(rt))
    stored = secrets.token_hex(24)
    path = folder(rt) / stored
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    row = Deliverable(invoice_id=invoice.id, filename=D.sanitize_filename(filename, kind.extension),
                      stored_name=stored, content_type=kind.content_type, size_bytes=len(data),
                      sha256=hashlib.sha256(data).hexdigest(), uploaded_by_id=staff.id if staff else None,
                      created_at=now())
    session.add(row)
    try:
        session.commit()
    except BaseException:
        session.rollback()
        path.unlink(missing_ok=True)
        raise
    return row


def remove(session: Session, rt: Runtime, invoice: Invoice, deliverable_id: int) -> Deliverable:
    """Taken off the invoice: the row stays (who uploaded what, its hash), the file is deleted."""
    row = session.get(Deliverable, deliverable_id)
    if row is None or row.invoice_id != invoice.id:
        raise NotFound()
    if row.removed_at is not None:
        raise DomainError("That file was already removed.")
    row.removed_at = now()
    session.commit()
    (folder(rt) / row.stored_name).unlink(missing_ok=True)
    return row


def of_invoice(session: Session, invoice_id: int) -> list[Deliverable]:
    return list(session.scalars(_OF_INVOICE, {"invoice_id": invoice_id}))


# Built once: every view of an invoice lists its deliverables.
_OF_INVOICE = (select(Deliverable).where(Deliverable.invoice_id == bindparam("invoice_id"),
                                         Deliverable.removed_at.is_(None)).order_by(Deliverable.id))


def released(session: Session, invoice: Invoice) -> bool:
    """Paid in full with settled money: a processing bank payment is not allocated, so the invoice stays open."""
    return invoice.status == InvoiceStatus.PAID and ledger.balance_of(session, invoice) == 0


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str
    path: Path
    size_bytes: int


def for_client(session: Session, rt: Runtime, client_id: int, invoice_id: int, deliverable_id: int) -> Download:
    """The file, for the client's own invoice only (NotFound otherwise), once the invoice is paid (a DomainError
    says why not yet)."""
    invoice = ClientScope(session, client_id).invoice(invoice_id)
    row = session.get(Deliverable, deliverable_id)
    if row is None or row.invoice_id != invoice.id or row.removed_at is not None:
        raise NotFound()
    if not released(session, invoice):
        raise DomainError(D.LOCKED_MESSAGE)
    path = folder(rt) / row.stored_name
    if not path.is_file():
        log.error("deliverable %s: stored file %s is missing", row.id, row.stored_name)
        raise NotFound()
    return Download(row.filename, row.content_type, path, row.size_bytes)
