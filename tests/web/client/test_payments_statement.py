"""Payment history, a payment's receipt, and the statement (page and PDF)."""

from __future__ import annotations

import io
import re
from datetime import date

from pypdf import PdfReader

from portal.clock import now
from portal.models import Payment
from portal.services import payments


def _rows(body: str) -> list[list[str]]:
    tbody = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", tbody, flags=re.S)
    ]


def test_payment_history(portal, account, session):
    payments.refund_payment(session, account.overpayment, amount_cents=1_000, reason="Goodwill")
    session.add(Payment(client_id=account.client.id, method="ach", status="processing", amount_cents=25_000,
                        currency="USD", received_on=date(2026, 3, 16), reference="ACH pending", created_at=now()))
    session.commit()
    body = portal.get("/payments").get_data(as_text=True)
    rows = _rows(body)
    assert [r[0] for r in rows] == ["Mar 16, 2026", "Mar 12, 2026", "Feb 1, 2026"]  # newest first
    pending, wire, check = rows
    assert pending[1:5] == ["Bank transfer (ACH)", "ACH pending", "$250.00", "processing"]
    assert "Applied when the payment clears" in pending[5]
    assert wire[1:4] == ["Wire", "WIRE 77", "$80.00"]
    assert wire[4] == "succeeded refunded $10.00"
    assert wire[5] == "ACME-1003 $50.00 $20.00 held as credit"
    assert check[1:5] == ["Check", "CHK 5521", "$30.00", "succeeded"]
    assert check[5] == "ACME-1001 $30.00"


def test_payment_receipt(portal, account):
    response = portal.get(f"/payments/{account.overpayment.id}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for text in ["Payment of $80.00", "Mar 12, 2026", "Wire", "WIRE 77", "ACME-1003", "$50.00", "Held as credit",
                 "$30.00"]:
        assert text in body, text


def test_no_payments_yet(portal, make):
    from tests.conftest import sign_in

    fresh = make.client("New Client Inc")
    sign_in(portal, make.contact(fresh))
    assert "No payments recorded yet." in portal.get("/payments").get_data(as_text=True)


def _statement_rows(body: str) -> list[list[str]]:
    """The table as a desktop shows it (the phone's copy of each charge or credit, under its description, left out)."""
    table = body.split('class="statement-table"', 1)[1]
    return _rows(re.sub(r'<div class="show-sm small">.*?</div>', "", table, flags=re.S))


def test_on_a_phone_each_charge_or_credit_is_shown_under_its_description(portal, account):
    body = portal.get("/statement").get_data(as_text=True)
    phone = re.findall(r'<div class="show-sm small">(.*?)</div>', body, re.S)
    assert [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", p)).strip() for p in phone] == [
        "Charge $100.00", "Credit $30.00", "Charge $250.00", "Charge $50.00", "Credit $80.00"]


def test_statement_defaults_to_the_last_90_days(portal, account):
    body = portal.get("/statement").get_data(as_text=True)
    assert 'value="2025-12-16"' in body and 'value="2026-03-16"' in body
    rows = _statement_rows(body)
    assert rows[0] == ["Dec 16, 2025", "Opening balance", "", "", "$0.00"]
    assert rows[1:-1] == [
        ["Jan 10, 2026", "Invoice ACME-1001", "$100.00", "", "$100.00"],
        ["Feb 1, 2026", "Payment (check) CHK 5521", "", "$30.00", "$70.00"],
        ["Mar 1, 2026", "Invoice ACME-1002", "$250.00", "", "$320.00"],
        ["Mar 10, 2026", "Invoice ACME-1003", "$50.00", "", "$370.00"],
        ["Mar 12, 2026", "Payment (wire) WIRE 77", "", "$80.00", "$290.00"],
    ]
    assert rows[-1] == ["Mar 16, 2026", "Closing balance", "", "", "$290.00"]
    assert "ACME-DRAFT" not in body


def test_statement_for_a_chosen_period(portal, account):
    body = portal.get("/statement?start=2026-03-01&end=2026-03-11").get_data(as_text=True)
    rows = _statement_rows(body)
    assert rows[0][1:] == ["Opening balance", "", "", "$70.00"]
    assert [r[1] for r in rows[1:-1]] == ["Invoice ACME-1002", "Invoice ACME-1003"]
    assert rows[-1] == ["Mar 11, 2026", "Closing balance", "", "", "$370.00"]
    assert re.search(r'data-figure="closing">\$370.00<', body)


def test_statement_bad_dates_show_an_error_and_the_default_period(portal, account):
    body = portal.get("/statement?start=yesterday&end=2026-03-10").get_data(as_text=True)
    assert "Not a valid date value." in body
    assert 'value="yesterday"' in body  # what was typed stays in the field, next to its error
    assert "Dec 16, 2025 – Mar 16, 2026" in body  # and the statement falls back to the last 90 days
    body = portal.get("/statement?start=2026-03-10&end=2026-03-01").get_data(as_text=True)
    assert "The end date must be on or after the start date." in body
    assert _statement_rows(body)[-1][-1] == "$290.00"


def test_statement_with_only_a_start_date_runs_to_today(portal, account):
    rows = _statement_rows(portal.get("/statement?start=2026-03-01").get_data(as_text=True))
    assert rows[-1] == ["Mar 16, 2026", "Closing balance", "", "", "$290.00"]


def test_statement_pdf(portal, account):
    response = portal.get("/statement.pdf?start=2026-01-01&end=2026-03-16")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=statement-2026-01-01-2026-03-16.pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.data)).pages)
    assert "Acme Dental LLC" in text and "Invoice ACME-1002" in text and "$290.00" in text


def test_statement_page_has_print_layout_and_pdf_link(portal, account):
    body = portal.get("/statement?start=2026-01-01&end=2026-03-16").get_data(as_text=True)
    assert 'class="card no-print statement-range"' in body  # the date form is hidden when printing
    assert 'href="/statement.pdf?start=2026-01-01&amp;end=2026-03-16"' in body
