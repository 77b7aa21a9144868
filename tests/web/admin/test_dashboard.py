"""The dashboard's figures are the ledger's: open and overdue A/R, the aging buckets, who owes most."""

from __future__ import annotations

import re
from datetime import date

from portal.services import billing, ledger

from .conftest import page


def test_dashboard_totals_match_the_ledger(admin, make, session, clock):
    adatum = make.client("Adatum")
    make.invoice(adatum, 100_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 1))  # 74 days late
    make.payment(adatum, 20_000)
    bluey = make.client("Bluey Books")
    make.invoice(bluey, 50_000, issue_date=date(2026, 2, 8), due_date=date(2026, 3, 10))  # 6 days late
    make.invoice(bluey, 35_000, due_date=date(2026, 4, 15))  # current
    coho = make.client("Coho Winery")
    make.invoice(coho, 5_000, issue_date=date(2025, 11, 1), due_date=date(2025, 12, 1))  # 105 days late
    quiet = make.client("Quiet Co")
    make.invoice(quiet, 9_000, issue=False)  # draft: not owed
    december = {"issue_date": date(2025, 12, 1), "due_date": date(2026, 1, 1)}
    billing.void_invoice(session, make.invoice(quiet, 7_000, **december), "Duplicate")
    make.invoice(quiet, 4_000, **december)
    make.payment(quiet, 4_000)  # paid in full

    text = page(admin.get("/admin/"))
    report = ledger.receivables(session, clock.today())
    assert (report.total_cents, report.overdue_cents, report.overdue_count) == (170_000, 135_000, 3)
    assert re.search(r'id="stat-open">.*?\$1,700\.00', text, re.S)
    assert re.search(r'id="stat-overdue">.*?\$1,350\.00', text, re.S)
    assert re.search(r'id="stat-overdue-count">.*?<div class="value">3</div>', text, re.S)
    for bucket, n, amount in [("current", 1, "$350.00"), ("1-30", 1, "$500.00"), ("31-60", 0, "$0.00"),
                              ("61-90", 1, "$800.00"), ("90+", 1, "$50.00")]:
        assert re.search(rf'data-bucket="{re.escape(bucket)}">.*?<td class="num">{n}</td>\s*'
                         rf'<td class="num">{re.escape(amount)}</td>', text, re.S), bucket
        assert report.totals[bucket] == int(amount.strip("$").replace(".", "").replace(",", ""))

    owing = text[text.index('id="top-owing"'):text.index('id="top-overdue"')]
    overdue = text[text.index('id="top-overdue"'):]
    assert owing.index("Bluey Books") < owing.index("Adatum") < owing.index("Coho Winery")
    assert overdue.index("Adatum") < overdue.index("Bluey Books") < overdue.index("Coho Winery")
    assert "Quiet Co" not in owing and "Quiet Co" not in overdue


def test_empty_dashboard(admin):
    text = page(admin.get("/admin/"))
    assert "Nothing is owed right now." in text and "No client is overdue." in text
    assert re.search(r'id="stat-open">.*?\$0\.00', text, re.S)
