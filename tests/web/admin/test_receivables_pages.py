"""The receivables pages as staff see them: the dashboard's figures, trend chart and forecast; the per-client aging
(sort, filter, next page); the CSV export; the collection settings form; and that only staff reach any of them."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

from portal.services.autopay import incentives
from portal.services.collections.settings import collection_settings
from portal.services.plans import collection
from tests.conftest import sign_in
from tests.plans_fixtures import make_plan

from .conftest import page, row

TODAY = date(2026, 3, 16)
URLS = ("/admin/", "/admin/receivables", "/admin/receivables/aging.csv", "/admin/receivables/adjustments.csv",
        "/admin/receivables/settings")


def test_dashboard_shows_the_receivables_story(admin, make):
    adatum = make.client("Adatum")
    # A/R that rose: 1,000 billed in November (still unpaid), 3,000 more in February
    make.invoice(adatum, 100_000, issue_date=date(2025, 11, 1), due_date=date(2025, 12, 1))  # 105 days late
    make.invoice(adatum, 300_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 3))  # 13 days late
    bluey = make.client("Bluey Books")
    make.invoice(bluey, 600_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))  # current

    text = page(admin.get("/admin/"))
    assert re.search(r'id="stat-open">.*?\$10,000\.00', text, re.S)
    # DSO: 10,000 owed / 9,000 billed in the last 90 days * 90 = 100.0
    assert re.search(r'id="stat-dso">.*?100\.0 days', text, re.S)
    flat = " ".join(text.split())
    assert "DSO = open receivables ÷ what you billed in the last 90 days × 90" in flat
    # past due 4,000 at the default 8%: 320 a year
    assert "You are lending your clients $4,000.00" in flat
    assert re.search(r'id="lending-cost">\$320\.00 a year', text)
    assert re.search(r'id="over-30">.*?\$1,000\.00\s*\(10\.0% of open receivables by amount;\s*1 of 3 open invoices, '
                     r'33\.3%\)', text, re.S)
    assert re.search(r'id="autopay-adoption">On autopay: 0 of 2 clients', text)

    trend = text[text.index('id="trend"'):text.index('id="top-owing"')]
    assert "style=" not in text  # the Content-Security-Policy allows no inline styles
    assert 'role="img"' in trend and 'aria-labelledby="trend-title trend-desc"' in trend
    assert '<title id="trend-title">' in trend and '<desc id="trend-desc">' in trend
    assert 'id="trend-rising"' in trend and "Receivables are rising" in trend
    assert len(re.findall(r"<circle ", trend)) == 12
    assert re.search(r"<td class=\"num\">\$1,000\.00</td>", row(trend, "month", "2025-11-30"))
    assert "$10,000.00" in row(trend, "month", TODAY.isoformat())
    assert "$0.00" in row(trend, "month", "2025-10-31")

    forecast = text[text.index('id="forecast"'):text.index('id="trend"')]
    # no history anywhere: each invoice is expected on its due date unless already late. Bluey's 6,000 on
    # 31 Mar; Adatum's 3,000 (13 days late) half now; Adatum's 1,000 (105 days late) not at all
    assert "$7,500.00" in row(forecast, "horizon", 30)
    assert "How the forecast compares" in forecast

    by_client = text[text.index('id="top-owing"'):text.index('id="top-overdue"')]
    assert by_client.index("Bluey Books") < by_client.index("Adatum")
    assert "$6,000.00" in row(by_client, "client", 2) and "$3,000.00" in row(by_client, "client", 1)
    assert "/admin/receivables" in by_client
    overdue = text[text.index('id="top-overdue"'):]
    assert "Adatum" in overdue and "Bluey Books" not in overdue


def test_empty_dashboard_renders(admin):
    text = page(admin.get("/admin/"))
    assert "You are lending your clients $0.00" in text
    assert re.search(r'id="stat-dso">.*?–', text, re.S)
    assert "Receivables are rising" not in text


def test_aging_list_sorts_filters_and_pages(admin, make):
    for n in range(30):
        client = make.client(f"Client {n:02d}")
        due = TODAY - timedelta(days=40 if n % 3 == 0 else 0)
        make.invoice(client, 1_000 * (n + 1), issue_date=due - timedelta(days=30), due_date=due)

    text = page(admin.get("/admin/receivables"))
    names = re.findall(r'data-client="\d+"><td><a [^>]*>([^<]+)</a>', text)
    assert names[:3] == ["Client 29", "Client 28", "Client 27"] and len(names) == 25
    assert 'rel="next"' in text and "of" not in text[text.index('class="pagination"'):][:200]

    text = page(admin.get("/admin/receivables?page=2"))
    names = re.findall(r'data-client="\d+"><td><a [^>]*>([^<]+)</a>', text)
    assert names == [f"Client {n:02d}" for n in (4, 3, 2, 1, 0)] and 'rel="prev"' in text and 'rel="next"' not in text

    text = page(admin.get("/admin/receivables?sort=name&dir=asc&past_due=1"))
    names = re.findall(r'data-client="\d+"><td><a [^>]*>([^<]+)</a>', text)
    assert names == [f"Client {n:02d}" for n in range(0, 30, 3)]

    text = page(admin.get("/admin/receivables?min=250&q=client 2"))
    names = re.findall(r'data-client="\d+"><td><a [^>]*>([^<]+)</a>', text)
    assert names == ["Client 29", "Client 28", "Client 27", "Client 26", "Client 25", "Client 24"]

    text = page(admin.get("/admin/receivables?min=lots&sort=bogus&page=x"))
    assert "The minimum balance must be an amount" in text and 'aria-invalid="true"' in text
    assert len(re.findall(r'data-client="\d+"', text)) == 25


def test_csv_export(admin, make):
    evil = make.client("=cmd|' /C calc'!A0")
    make.invoice(evil, 12_345, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    make.invoice(make.client("Plain"), 100_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))

    response = admin.get("/admin/receivables/aging.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=aging-2026-03-16.csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["client", "external_id", "current", "1-30", "31-60", "61-90", "90+", "total", "open_invoices"],
        ["Plain", "", "1000.00", "0.00", "0.00", "0.00", "0.00", "1000.00", "1"],
        ["'=cmd|' /C calc'!A0", "", "0.00", "123.45", "0.00", "0.00", "0.00", "123.45", "1"],
        ["Total", "", "1000.00", "123.45", "0.00", "0.00", "0.00", "1123.45", "2"],
    ]
    filtered = admin.get("/admin/receivables/aging.csv?past_due=1").get_data(as_text=True)
    filtered = list(csv.reader(io.StringIO(filtered)))
    assert [r[0] for r in filtered] == ["client", "'=cmd|' /C calc'!A0", "Total"]


def test_adjustments_export_lists_discounts_and_write_offs_for_the_accountant(admin, session, make):
    adatum = make.client("Adatum")
    discounted = make.invoice(adatum, 10_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 10))
    make.payment(adatum, 9_500, method="card")
    incentives.record_discount(session, discounted, 500, attempt_id=4)
    session.commit()
    evil = make.client("=cmd|' /C calc'!A0")
    owed = make.invoice(evil, 20_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    plan = make_plan(session, evil, [owed], installments=2, first_due_on=date(2026, 3, 20))
    collection.record_check(session, plan, amount_cents=20_000 - 30, method="check", received_on=TODAY)
    collection.write_off_remainder(session, plan, staff=None)

    assert 'href="/admin/receivables/adjustments.csv"' in page(admin.get("/admin/receivables"))
    response = admin.get("/admin/receivables/adjustments.csv")

    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=adjustments-2026-03-16.csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["date", "client", "invoice", "kind", "percent", "amount", "currency", "charge_attempt", "memo"],
        ["2026-03-16", "Adatum", discounted.number, "autopay_discount", "", "5.00", "USD", "4", "Autopay discount"],
        ["2026-03-16", "'=cmd|' /C calc'!A0", owed.number, "write_off", "", "0.30", "USD", "",
         f"Small balance written off (plan {plan.reference})"],
    ]


def test_collection_settings_form(admin, session):
    text = page(admin.get("/admin/receivables/settings"))
    assert 'value="8"' in text
    response = admin.post("/admin/receivables/settings",
                          data={"borrowing_rate": "12.5", "call_after_days": "4", "duplicate_window_days": "7"})
    assert response.status_code == 303
    session.expire_all()
    saved = collection_settings(session)
    assert (saved.borrowing_rate_percent, saved.call_after_days, saved.duplicate_window_days) == (Decimal("12.5"), 4, 7)
    assert "You are lending your clients" in page(admin.get("/admin/"))
    assert "12.5%" in page(admin.get("/admin/"))

    for bad, message in (("abc", "is not a number"), ("150", "between 0% and 100%"), ("", "Enter a rate.")):
        response = admin.post("/admin/receivables/settings",
                              data={"borrowing_rate": bad, "call_after_days": "9", "duplicate_window_days": "9"})
        assert response.status_code == 400 and message in page(response), bad
        session.expire_all()
        assert collection_settings(session).call_after_days == 4  # nothing changed
    response = admin.post("/admin/receivables/settings",
                          data={"borrowing_rate": "5", "call_after_days": "-1", "duplicate_window_days": "9"})
    assert response.status_code == 400
    session.expire_all()
    assert collection_settings(session).borrowing_rate_percent == Decimal("12.5")
    assert "collection settings" in page(admin.get("/admin/settings"))


def test_only_staff_see_receivables(http, make):
    client = make.client("Acme")
    make.invoice(client, 10_000)
    for url in URLS:
        response = http.get(url)
        assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login"), url
    sign_in(http, make.contact(client))
    for url in URLS:
        assert http.get(url).status_code == 403, url
    assert http.post("/admin/receivables/settings", data={"borrowing_rate": "1", "call_after_days": "1",
                                                          "duplicate_window_days": "1"}).status_code == 403


def test_dashboard_live_figures_are_never_cached(admin, make):
    client = make.client("Adatum")
    make.invoice(client, 100_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 3))
    assert re.search(r'id="stat-open">.*?\$1,000\.00', page(admin.get("/admin/")), re.S)
    make.invoice(client, 50_000, issue_date=date(2026, 3, 10), due_date=date(2026, 4, 9))
    text = page(admin.get("/admin/"))  # within the figures cache's minutes: aging and today's trend point are live
    assert re.search(r'id="stat-open">.*?\$1,500\.00', text, re.S)
    assert "$1,500.00" in row(text, "month", TODAY.isoformat())
    assert "$1,500.00" in row(text, "client", client.id)


def test_dashboard_reads_the_figures_run_due_stored(admin, make, session, clock):
    """With today's figures stored by `run-due`, the page shows them (and says when they were computed) instead of
    computing them; a later entry in a past month shows once they are refreshed. Aging stays live."""
    from portal.services.collections import figures

    client = make.client("Adatum")
    make.invoice(client, 100_000, issue_date=date(2025, 12, 1), due_date=date(2025, 12, 31))
    assert "has not stored today" in " ".join(page(admin.get("/admin/")).split())
    figures.refresh(session, TODAY)

    make.invoice(client, 40_000, issue_date=date(2026, 1, 5), due_date=date(2026, 2, 4))  # entered late, dated January
    text = page(admin.get("/admin/"))
    assert "were computed by portal run-due at Mar 16, 2026 15:00 UTC" in " ".join(
        re.sub(r"</?code>", "", text).split())
    assert "$1,000.00" in row(text, "month", "2026-01-31")  # the stored past month
    assert "$1,400.00" in row(text, "month", TODAY.isoformat())  # today's point is live

    clock.advance(minutes=61)
    assert figures.refresh(session, TODAY)  # the next hourly run
    assert "$1,400.00" in row(page(admin.get("/admin/")), "month", "2026-01-31")
