"""Printable documents (invoice, statement) as PDF bytes: downloaded in the portal, attached to invoice emails,
offered on magic-link pages. Figures come from the ledger, so a PDF always matches what the portal shows.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from flask import current_app
from sqlalchemy.orm import Session

from portal.clock import today
from portal.domain.invoices import display_status
from portal.domain.statements import Statement
from portal.gateways.pdf import render_pdf
from portal.models import Client, Invoice, MspSettings

from . import ledger
from .settings import get_settings


def number_text(value: Decimal) -> str:
    """A quantity or rate without padding zeros: 1.0000 -> "1", 2.5000 -> "2.5", 10 -> "10"."""
    return f"{value.normalize():f}"


def logo_uri(settings: MspSettings) -> str | None:
    """file:// URI of the uploaded logo, if there is one and it really lies inside the uploads folder."""
    if not settings.logo_filename:
        return None
    uploads = (Path(current_app.instance_path) / "uploads").resolve()
    path = (uploads / settings.logo_filename).resolve()
    if not path.is_relative_to(uploads) or not path.is_file():
        return None
    return path.as_uri()


def invoice_pdf(session: Session, invoice: Invoice) -> bytes:
    settings = get_settings(session)
    paid = ledger.paid_cents(session, [invoice.id])[invoice.id]
    balance = 0 if invoice.status in ("draft", "void") else invoice.total_cents - paid
    return render_pdf(
        "invoice",
        invoice=invoice,
        client=invoice.client,
        lines=invoice.lines,
        paid_cents=paid,
        balance_cents=balance,
        status=display_status(invoice.status, invoice.total_cents, paid, invoice.due_date, today()),
        msp=settings,
        logo=logo_uri(settings),
        num=number_text,
    )


def statement_pdf(session: Session, client: Client, statement: Statement) -> bytes:
    settings = get_settings(session)
    return render_pdf("statement", client=client, statement=statement, msp=settings, logo=logo_uri(settings),
                      currency=settings.currency, generated_on=today())
