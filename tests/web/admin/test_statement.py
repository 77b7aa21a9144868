"""The client statement: opening balance, dated lines with a running balance, closing balance."""

from __future__ import annotations

import importlib.util
import re
from datetime import date

from portal.services import billing, payments

from .conftest import page, value_of


def test_statement_numbers(admin, make, session):
    client = make.client("Tailspin Toys", address_line1="5 Runway Rd")
    make.invoice(client, 10_000, issue_date=date(2026, 1, 10), due_date=date(2026, 2, 9))
    make.payment(client, 4_000, received_on=date(2026, 1, 20))
    make.invoice(client, 25_000, issue_date=date(2026, 2, 5), due_date=date(2026, 3, 7))
    february = make.payment(client, 10_000, received_on=date(2026, 2, 20), reference="CHK-55")
    mistake = make.invoice(client, 5_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))
    payments.refund_payment(session, february, amount_cents=2_000, reason="Overpaid", refunded_on=date(2026, 3, 10))
    billing.void_invoice(session, mistake, "Sent twice")  # voided today, Mar 16
    make.invoice(client, 7_000, issue_date=date(2026, 3, 20), due_date=date(2026, 4, 20), issue=False)  # draft

    text = page(admin.get(f"/admin/clients/{client.id}/statement?start=2026-02-01&end=2026-03-16"))
    assert re.search(r'id="opening">\$60\.00<', text)  # 100 invoiced - 40 paid before February
    balances = re.findall(r'<td class="num">(\$[\d,.]+)</td></tr>', text[text.index("Opening balance"):])
    assert balances == ["$310.00", "$210.00", "$260.00", "$280.00", "$230.00"]
    for description in ("Payment (check) CHK-55", "Refund of payment", f"Invoice {mistake.number} voided"):
        assert description in text
    assert re.search(r'id="closing">\$230\.00<', text)
    assert "Tailspin Toys" in text and "5 Runway Rd" in text

    january = page(admin.get(f"/admin/clients/{client.id}/statement?start=2026-01-01&end=2026-01-31"))
    assert re.search(r'id="opening">\$0\.00<', january) and re.search(r'id="closing">\$60\.00<', january)


def test_statement_default_period_and_bad_dates(admin, make):
    client = make.client()
    text = page(admin.get(f"/admin/clients/{client.id}/statement"))
    assert (value_of(text, "start"), value_of(text, "end")) == ("2026-01-01", "2026-03-16")
    assert "No activity in this period." in text

    bad = page(admin.get(f"/admin/clients/{client.id}/statement?start=yesterday&end=2026-02-28"))
    assert "Not a valid date value." in bad
    assert "Jan 1, 2026 – Feb 28, 2026" in bad  # the default start, the given end


def test_statement_pdf(admin, make):
    client = make.client("Tailspin Toys")
    make.invoice(client, 10_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 3))
    text = page(admin.get(f"/admin/clients/{client.id}/statement?start=2026-02-01&end=2026-03-16"))
    response = admin.get(f"/admin/clients/{client.id}/statement.pdf?start=2026-02-01&end=2026-03-16")
    if importlib.util.find_spec("portal.services.documents") is None:
        assert response.status_code == 404 and "Download PDF" not in text
    else:
        assert f"/admin/clients/{client.id}/statement.pdf?start=2026-02-01&end=2026-03-16" in text
        assert response.status_code == 200 and response.data.startswith(b"%PDF")
        assert f"statement-{client.id}-20260201-20260316.pdf" in response.headers["Content-Disposition"]
