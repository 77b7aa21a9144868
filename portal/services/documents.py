"""Printable documents (invoice, statement) as PDF bytes: downloaded in the portal, attached to invoice emails,
offered on magic-link pages. Figures come from the ledger, so a PDF always matches what the portal shows.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from portal.clock import today
from portal.domain.statements import Statement
from portal.models import Client, Invoice, MspSettings

from . import ledger
from .runtime import Runtime
from .settings import get_settings


def number_text(value: Decimal) -> str:
    """A quantity or rate without padding zeros: 1.0000 -> "1", 2.5000 -> "2.5", 10 -> "10"."""
    return f"{value.normalize():f}"


def logo_uri(rt: Runtime, settings: MspSettings) -> str | None:
    """file:// URI of the uploaded logo, if there is one and it really lies inside the uploads folder."""
    if not settings.logo_filename:
        return None
    uploads = rt.uploads.resolve()
    path = (uploads / settings.logo_filename).resolve()
    if not path.is_relative_to(uploads) or not path.is_file():
        return None
    return path.as_uri()


def invoice_pdf(session: Session, rt: Runtime, invoice: Invoice) -> bytes:
    settings = get_settings(session)
    figures = ledger.invoice_figures(session, invoice, today())
    return rt.pdf.render(
        "invoice",
        invoice=invoice,
        client=invoice.client,
        lines=invoice.lines,
        paid_cents=figures.paid_cents,
        adjustments=ledger.adjustments_on(session, invoice.id),
        balance_cents=figures.balance_cents,
        status=figures.status,
        msp=settings,
        logo=logo_uri(rt, settings),
        num=number_text,
    )


def statement_pdf(session: Session, rt: Runtime, client: Client, statement: Statement) -> bytes:
    settings = get_settings(session)
    return rt.pdf.render("statement", client=client, statement=statement, msp=settings, logo=logo_uri(rt, settings),
                         currency=settings.currency, generated_on=today())
