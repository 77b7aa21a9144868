"""Invoice and statement PDFs: real WeasyPrint output, read back with pypdf."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from portal.domain.invoices import LineInput
from portal.services import billing, documents, payments
from portal.services.autopay import incentives
from portal.services.settings import update_settings
from portal.services.statements import client_statement


def _text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _images(data: bytes) -> int:
    return sum(len(page.images) for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def msp(session):
    return update_settings(session, name="Northwind IT", legal_name="Northwind IT Services LLC",
                           address="400 Harbor Rd\nPortland, OR 97201", email="billing@northwind.test",
                           phone="+1 503 555 0100",
                           payment_instructions="ACH to Northwind IT Services LLC, routing 011000015, acct 12345678.")


@pytest.fixture
def invoice(make, session, msp):
    client = make.client("Acme Dental & Ortho LLC", address_line1="12 Main St", city="Springfield", region="IL",
                         postal_code="62701")
    lines = [
        LineInput("Managed workstation (per seat)", Decimal(12), 4_500, taxable=True),
        LineInput("Microsoft 365 Business Premium", Decimal("2.5"), 2_200, taxable=True),
        LineInput("Onsite visit", Decimal(1), 15_000, taxable=False),
    ]
    inv = make.invoice(client, lines=lines, tax_rate=Decimal("8.25"), number="INV-004217",
                       issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31), memo="Thank you for your business.")
    payments.record_payment(session, client, amount_cents=20_000, method="check", allocations={inv.id: 20_000})
    return inv


def test_invoice_pdf_reads_like_an_invoice(session, invoice, rt):
    data = documents.invoice_pdf(session, rt, invoice)
    assert data.startswith(b"%PDF")
    text = _text(data)
    # 12 x $45.00 + 2.5 x $22.00 = $595.00 taxed (8.25% = $49.09), + $150.00 untaxed
    for expected in [
        "INVOICE", "INV-004217", "Mar 1, 2026", "Mar 31, 2026",
        "Northwind IT Services LLC", "400 Harbor Rd", "Portland, OR 97201", "billing@northwind.test",
        "Acme Dental & Ortho LLC", "12 Main St", "Springfield, IL 62701",
        "Managed workstation (per seat)", "12", "$45.00", "$540.00",
        "Microsoft 365 Business Premium", "2.5", "$22.00", "$55.00", "Onsite visit", "$150.00",
        "Subtotal", "$745.00", "Tax (8.25%)", "$49.09", "Total", "$794.09",
        "Amount paid", "$200.00", "Balance due", "$594.09",
        "routing 011000015", "Thank you for your business.",
    ]:
        assert expected in text, expected
    assert _images(data) == 0  # no logo uploaded


def test_an_autopay_discount_is_its_own_line_apart_from_the_amount_paid(session, invoice, rt):
    incentives.record_discount(session, invoice, 1_000, attempt_id=3)
    session.commit()
    text = _text(documents.invoice_pdf(session, rt, invoice))
    assert "Autopay discount −$10.00" in text
    assert "Amount paid $200.00" in text and "Balance due $584.09" in text


def test_logo_from_the_uploads_folder(session, invoice, app, rt):
    logo = Path(app.instance_path) / "uploads" / "logo.png"
    Image.new("RGB", (120, 40), (31, 95, 191)).save(logo)
    update_settings(session, logo_filename="logo.png")
    assert _images(documents.invoice_pdf(session, rt, invoice)) == 1


@pytest.mark.parametrize("name", ["../../../etc/hostname", "missing.png", "/etc/hostname"])
def test_a_logo_outside_uploads_or_missing_is_left_out(session, invoice, name, rt):
    update_settings(session, logo_filename=name)
    data = documents.invoice_pdf(session, rt, invoice)
    assert _images(data) == 0
    assert "INV-004217" in _text(data)


def test_paid_invoice_shows_nothing_to_pay(session, invoice, rt):
    payments.record_payment(session, invoice.client, amount_cents=59_409, method="wire",
                            allocations={invoice.id: 59_409})
    text = _text(documents.invoice_pdf(session, rt, invoice))
    assert "PAID" in text and "Nothing to pay" in text
    assert "Balance due\n$0.00" in text or "Balance due $0.00" in text
    assert "routing 011000015" not in text  # no payment instructions when nothing is owed


def test_void_and_draft_invoices_are_marked(session, make, msp, rt):
    client = make.client()
    draft = make.invoice(client, 12_345, issue=False, number="INV-DRAFT-1")
    assert "DRAFT" in _text(documents.invoice_pdf(session, rt, draft))
    void = make.invoice(client, 5_000, number="INV-VOID-1")
    billing.void_invoice(session, void, "Duplicate of INV-000001")
    text = _text(documents.invoice_pdf(session, rt, void))
    assert "VOID" in text and "This invoice is void." in text and "Duplicate of INV-000001" in text
    assert "$0.00" in text


def test_many_lines_flow_onto_more_pages(session, make, msp, rt):
    client = make.client()
    lines = [LineInput(f"Endpoint agent #{i}", Decimal(1), 1_000) for i in range(80)]
    inv = make.invoice(client, lines=lines, number="INV-LONG")
    data = documents.invoice_pdf(session, rt, inv)
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) > 1
    text = _text(data)
    assert "Endpoint agent #0" in text and "Endpoint agent #79" in text and "$800.00" in text
    assert "Page 2 of" in text


def test_statement_pdf(session, invoice, rt):
    statement = client_statement(session, invoice.client_id, date(2026, 1, 1), date(2026, 3, 16))
    text = _text(documents.statement_pdf(session, rt, invoice.client, statement))
    for expected in ["STATEMENT", "Acme Dental & Ortho LLC", "Invoice INV-004217", "Opening balance",
                     "Closing balance", "$794.09", "$594.09"]:
        assert expected in text, expected
