"""The client's invoice list, invoice page and PDF download."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader

from tests.conftest import statements_run
from tests.web.client.conftest import TAXED_LINES


def _numbers(body: str) -> list[str]:
    """Invoice numbers in the order the table shows them."""
    return re.findall(r'<a href="/invoices/\d+">([^<]+)</a>', body)


def _rows(body: str) -> dict[str, list[str]]:
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], flags=re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, flags=re.S)]
        rows[cells[0]] = cells[1:]
    return rows


def test_all_invoices_newest_first_with_balances(portal, account):
    body = portal.get("/invoices").get_data(as_text=True)
    assert _numbers(body) == ["ACME-1003", "ACME-1002", "ACME-1001"]
    rows = _rows(body)
    assert rows["ACME-1001"] == ["Jan 10, 2026", "Feb 9, 2026", "$100.00", "$70.00", "overdue"]
    assert rows["ACME-1002"] == ["Mar 1, 2026", "Mar 31, 2026", "$250.00", "$250.00", "open"]
    assert rows["ACME-1003"] == ["Mar 10, 2026", "Apr 9, 2026", "$50.00", "$0.00", "paid"]
    assert "ACME-DRAFT" not in body


@pytest.mark.parametrize("status, expected", [
    ("open", ["ACME-1002", "ACME-1001"]),
    ("paid", ["ACME-1003"]),
    ("all", ["ACME-1003", "ACME-1002", "ACME-1001"]),
    ("nonsense", ["ACME-1003", "ACME-1002", "ACME-1001"]),
])
def test_status_filter(portal, account, status, expected):
    assert _numbers(portal.get(f"/invoices?status={status}").get_data(as_text=True)) == expected


def test_partially_paid_and_void_invoices(portal, account, make, session):
    from portal.services import billing, payments

    part = make.invoice(account.client, 20_000, issue_date=date(2026, 3, 15), due_date=date(2026, 4, 14),
                        number="ACME-1004")
    payments.record_payment(session, account.client, amount_cents=5_000, method="check",
                            allocations={part.id: 5_000})
    voided = make.invoice(account.client, 1_000, issue_date=date(2026, 3, 16), number="ACME-1005")
    billing.void_invoice(session, voided, "Billed twice")
    rows = _rows(portal.get("/invoices").get_data(as_text=True))
    assert rows["ACME-1004"][-2:] == ["$150.00", "partially paid"]
    assert rows["ACME-1005"][-2:] == ["$0.00", "void"]
    assert "ACME-1005" not in _numbers(portal.get("/invoices?status=open").get_data(as_text=True))


def test_search_by_number(portal, account):
    assert _numbers(portal.get("/invoices?q=acme-1002").get_data(as_text=True)) == ["ACME-1002"]
    assert _numbers(portal.get("/invoices?q=ACME-10&status=paid").get_data(as_text=True)) == ["ACME-1003"]
    for wildcard in ("%25", "ACME_1002", "ACME-100%25", "/"):  # LIKE's wildcards and its escape are characters
        body = portal.get(f"/invoices?q={wildcard}").get_data(as_text=True)
        assert _numbers(body) == [] and "No invoice number starts with" in body, wildcard


@pytest.fixture
def many(account, make, app):
    """30 more invoices, one a day, and a page size of 7."""
    app.config["INVOICE_PAGE_SIZE"] = 7
    start = date(2025, 1, 1)
    for i in range(30):
        make.invoice(account.client, 1_000 + i, issue_date=start + timedelta(days=i), number=f"OLD-{i:03d}")
    return app


def test_pagination(portal, many):
    seen = []
    page, url = 1, "/invoices"
    while url:
        body = portal.get(url).get_data(as_text=True)
        numbers = _numbers(body)
        assert len(numbers) == (7 if page < 5 else 5)
        assert f"Page {page}" in body
        assert ('rel="prev"' in body) == (page > 1)
        seen += numbers
        match = re.search(r'rel="next" href="([^"]+)"', body)
        url = match.group(1).replace("&amp;", "&") if match else None
        page += 1
    assert page - 1 == 5
    assert seen == ["ACME-1003", "ACME-1002", "ACME-1001"] + [f"OLD-{i:03d}" for i in range(29, -1, -1)]


def test_pagination_keeps_the_filter(portal, many):
    body = portal.get("/invoices?status=open&page=2").get_data(as_text=True)
    numbers = _numbers(body)
    assert numbers == [f"OLD-{i:03d}" for i in range(24, 17, -1)]
    assert 'href="/invoices?status=open&amp;page=3"' in body


@pytest.mark.parametrize("page", ["0", "-3", "abc", "99999999999999999999999"])
def test_odd_page_numbers_do_not_fail(portal, many, page):
    response = portal.get(f"/invoices?page={page}")
    assert response.status_code == 200


def test_list_uses_a_fixed_handful_of_queries(portal, many, session):
    """Two statements whatever the page size: the signed-in contact with whether payment terms wait to be signed,
    and the page itself, balances and "money on its way?" included (the kept settled sums, no allocation rows)."""
    portal.get("/invoices")  # the process's first page also copies the MSP's settings (SettingsCache)
    session.expire_all()
    small = statements_run(many, lambda: portal.get("/invoices"))
    many.config["INVOICE_PAGE_SIZE"] = 25
    session.expire_all()
    large = statements_run(many, lambda: portal.get("/invoices"))
    assert len(small) == len(large) == 2, large


def test_invoice_page(portal, account, make, session):
    from portal.services import payments

    invoice = make.invoice(account.client, lines=TAXED_LINES, tax_rate=Decimal("8.25"),
                           issue_date=date(2026, 3, 2), due_date=date(2026, 4, 1), number="ACME-2001",
                           memo="March services")
    payments.record_payment(session, account.client, amount_cents=10_000, method="check", reference="CHK 9001",
                            received_on=date(2026, 3, 14), allocations={invoice.id: 10_000})
    response = portal.get(f"/invoices/{invoice.id}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    # 2 x $150.00 taxed at 8.25% = $24.75; 1.5 x $66.66 = $99.99 untaxed
    for text in ["Invoice ACME-2001", "Managed workstation", "Offsite backup", "$300.00", "$99.99", "$399.99",
                 "Tax (8.25%)", "$24.75", "$424.74", "$100.00", "$324.74", "Apr 1, 2026", "CHK 9001",
                 "March services", "routing 011000015", "(not taxed)", "1.5"]:
        assert text in body, text
    assert re.search(r'data-figure="balance">\$324.74<', body)


def test_paid_invoice_page_has_no_payment_instructions(portal, account):
    body = portal.get(f"/invoices/{account.paid.id}").get_data(as_text=True)
    assert "Nothing to pay" in body and "routing 011000015" not in body
    assert "WIRE 77" in body


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_pdf_download(portal, account):
    response = portal.get(f"/invoices/{account.overdue.id}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=ACME-1001.pdf"
    assert response.data.startswith(b"%PDF")
    text = _pdf_text(response.data)
    assert "ACME-1001" in text
    assert "$70.00" in text  # balance due
    assert "Acme Dental LLC" in text and "Northwind IT Services LLC" in text
