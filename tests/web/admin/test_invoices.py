"""Invoices: create with lines, edit a draft, issue, void (refused while paid), unapply, list, PDF."""

from __future__ import annotations

import importlib.util
import re
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from portal.domain.invoices import LineInput
from portal.models import Allocation, Invoice, LedgerAdjustment
from tests.conftest import statements_run

from .conftest import count, page, row


def lines(*rows, start: int = 0) -> dict:
    """Form fields for invoice lines: (description, quantity, unit price, taxable)."""
    data = {}
    for i, (description, quantity, price, taxable) in enumerate(rows, start=start):
        data[f"lines-{i}-description"] = description
        data[f"lines-{i}-quantity"] = quantity
        data[f"lines-{i}-unit_price"] = price
        if taxable:
            data[f"lines-{i}-taxable"] = "y"
    return data


BLANK_ROW = ("", "", "", True)  # the browser sends blank rows too; taxable is ticked by default


def test_new_invoice_form_has_blank_rows(admin, make):
    client = make.client()
    text = page(admin.get(f"/admin/clients/{client.id}/invoices/new"))
    assert len(re.findall(r'name="lines-\d+-description"', text)) == 5
    assert 'name="save_draft"' in text and 'name="save_issue"' in text
    assert "js/invoice-lines.js" in text and "<script>" not in text


def test_save_draft_with_lines_and_tax(admin, make, session):
    client = make.client(net_days=15)
    response = admin.post(f"/admin/clients/{client.id}/invoices/new", data={
        **lines(("Managed services – March", "12", "85.00", True), BLANK_ROW,
                ("Onboarding discount", "1", "-100", False), BLANK_ROW),
        "tax_rate": "8.25", "issue_date": "", "due_date": "", "memo": "Thank you!", "save_draft": "Save draft"})
    invoice = session.scalar(select(Invoice))
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/invoices/{invoice.id}"
    assert invoice.status == "draft"
    assert [(li.description, li.quantity, li.unit_price_cents, li.taxable) for li in invoice.lines] == [
        ("Managed services – March", Decimal(12), 8500, True), ("Onboarding discount", Decimal(1), -10000, False)]
    assert (invoice.subtotal_cents, invoice.tax_cents, invoice.total_cents) == (92_000, 8_415, 100_415)
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 3, 16), date(2026, 3, 31))  # net 15
    shown = page(admin.get(response.headers["Location"]))
    assert f"Invoice {invoice.number} saved as a draft." in shown
    assert "$1,004.15" in shown and "Tax (8.25%)" in shown and "Thank you!" in shown


def test_save_and_issue(admin, make, session):
    client = make.client()
    admin.post(f"/admin/clients/{client.id}/invoices/new", data={
        **lines(("Backup", "3", "20", False)), "tax_rate": "0", "issue_date": "2026-03-01", "due_date": "2026-03-20",
        "save_issue": "Save and issue"})
    invoice = session.scalar(select(Invoice))
    assert (invoice.status, invoice.total_cents, invoice.due_date) == ("open", 6_000, date(2026, 3, 20))
    assert invoice.issued_at is not None


def test_bad_invoice_input_saves_nothing(admin, make, session):
    client = make.client()
    url = f"/admin/clients/{client.id}/invoices/new"
    good_line = lines(("Support", "1", "100", True))
    for data, message in [
        ({**lines(BLANK_ROW, BLANK_ROW)}, "Add at least one line."),
        ({**lines(("Support", "1", "lots", True))}, "Enter a price such as 125.00."),
        ({**lines(("Support", "two", "100", True))}, "Quantity 'two' is not a number"),
        ({**lines(("Support", "0", "100", True))}, "Quantities must be greater than zero."),
        ({**lines(("", "1", "100", True))}, "Every line needs a description."),
        ({**lines(("Credit", "1", "-100", True))}, "An invoice total cannot be negative"),
        ({**good_line, "tax_rate": "120"}, "The tax rate must be between 0 and 100 percent."),
        ({**good_line, "tax_rate": "abc"}, "Tax rate 'abc' is not a number"),
        ({**good_line, "issue_date": "2026-03-10", "due_date": "2026-03-01"}, "The due date cannot be before"),
        ({**good_line, "issue_date": "someday"}, "Not a valid date value."),
        ({**lines(*[("Support", "1", "1", True)] * 201)}, "An invoice can have at most 200 lines."),
    ]:
        response = admin.post(url, data={"tax_rate": "0", **data, "save_issue": "Save and issue"})
        assert response.status_code == 200, data
        assert message in page(response), data
    assert count(session, Invoice) == 0


def test_edit_draft_then_issue(admin, make, session):
    client = make.client()
    draft = make.invoice(client, issue=False, lines=[LineInput("Firewall", Decimal("2.5"), 4_000, True)],
                         tax_rate=Decimal("5"), memo="Old memo")
    form = page(admin.get(f"/admin/invoices/{draft.id}/edit"))
    assert len(re.findall(r'name="lines-\d+-description"', form)) == 1 + 5
    assert 'value="Firewall"' in form and 'value="2.5"' in form and 'value="40.00"' in form
    assert 'name="tax_rate" type="text" value="5"' in form

    response = admin.post(f"/admin/invoices/{draft.id}/edit", data={
        **lines(("Firewall", "3", "40.00", True), ("Setup", "1", "150", False)), "tax_rate": "5",
        "issue_date": "2026-03-16", "due_date": "", "memo": "New memo", "save_draft": "Save draft"})
    assert response.status_code == 302
    session.expire_all()
    assert [li.description for li in draft.lines] == ["Firewall", "Setup"]
    assert (draft.total_cents, draft.memo, draft.status) == (12_000 + 600 + 15_000, "New memo", "draft")
    assert draft.due_date == date(2026, 4, 15)  # cleared due date: the client's terms again (net 30)

    issued = admin.post(f"/admin/invoices/{draft.id}/issue")
    assert issued.status_code == 302
    session.expire_all()
    assert draft.status == "open" and draft.issued_at is not None
    assert f"Invoice {draft.number} issued." in page(admin.get(f"/admin/invoices/{draft.id}"))

    # an issued invoice can no longer be edited or issued again
    refused = admin.get(f"/admin/invoices/{draft.id}/edit")
    assert refused.status_code == 302
    assert "Only a draft invoice can be edited" in page(admin.get(refused.headers["Location"]))
    admin.post(f"/admin/invoices/{draft.id}/issue")
    assert "Only a draft invoice can be issued." in page(admin.get(f"/admin/invoices/{draft.id}"))


def test_edit_draft_bad_input_changes_nothing(admin, make, session):
    client = make.client()
    draft = make.invoice(client, 5_000, issue=False)
    response = admin.post(f"/admin/invoices/{draft.id}/edit", data={
        **lines(("Changed", "1", "oops", True)), "tax_rate": "0", "save_issue": "Save and issue"})
    assert "Enter a price such as 125.00." in page(response)
    session.expire_all()
    assert (draft.status, draft.total_cents, draft.lines[0].description) == ("draft", 5_000, "Managed services")


def test_void_is_refused_while_paid_and_allowed_after_unapply(admin, make, session):
    client = make.client()
    invoice = make.invoice(client, 30_000)
    make.payment(client, 10_000)  # partially paid

    missing = admin.post(f"/admin/invoices/{invoice.id}/void", data={"reason": "   "})
    assert "Say why the invoice is voided" in page(missing)

    refused = admin.post(f"/admin/invoices/{invoice.id}/void", data={"reason": "Billed twice"})
    assert refused.status_code == 200
    assert "This invoice has payments applied. Refund or unapply them before voiding it." in page(refused)
    session.expire_all()
    assert invoice.status == "open"

    unapplied = admin.post(f"/admin/invoices/{invoice.id}/unapply")
    assert unapplied.status_code == 302
    detail = page(admin.get(f"/admin/invoices/{invoice.id}"))
    assert "Moved $100.00 off invoice" in detail and "to the client's credit" in detail
    assert "unapplied" in page(admin.get(f"/admin/invoices/{invoice.id}"))  # the reversal is in the history

    voided = admin.post(f"/admin/invoices/{invoice.id}/void", data={"reason": "Billed twice"})
    assert voided.status_code == 302
    session.expire_all()
    assert (invoice.status, invoice.void_reason) == ("void", "Billed twice")
    overview = page(admin.get(f"/admin/clients/{client.id}"))
    assert re.search(r'id="stat-credit">.*?\$100\.00', overview, re.S)  # the money is the client's credit now
    assert "Void" in row(page(admin.get(f"/admin/clients/{client.id}?tab=invoices")), "invoice", invoice.id)


def test_unapply_with_nothing_applied(admin, make):
    invoice = make.invoice(make.client(), 30_000)
    admin.post(f"/admin/invoices/{invoice.id}/unapply")
    assert f"No payments are applied to invoice {invoice.number}." in page(admin.get(f"/admin/invoices/{invoice.id}"))


def test_detail_shows_totals_and_allocation_history(admin, make, session):
    client = make.client()
    invoice = make.invoice(client, 50_000)
    first = make.payment(client, 20_000, reference="CHK-1001")
    make.payment(client, 5_000, method="wire", reference="WIRE-9")
    text = page(admin.get(f"/admin/invoices/{invoice.id}"))
    assert re.search(r'id="paid">\$250\.00<', text) and re.search(r'id="balance">\$250\.00<', text)
    history = text[text.index('id="allocations"'):]
    assert "CHK-1001" in history and "WIRE-9" in history and "$200.00" in history and "$50.00" in history
    assert f"/admin/payments/{first.id}" in history
    assert count(session, Allocation) == 2


def test_invoice_list_filters_search_and_pages(admin, make, clock):
    acme, globex = make.client("Acme Corp"), make.client("Globex")
    draft = make.invoice(acme, issue=False)
    current = make.invoice(acme, 10_000)
    late = make.invoice(globex, 20_000, issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1))
    paid = make.invoice(globex, 5_000)
    make.payment(globex, 25_000)  # pays the late one and then this one
    voided = make.invoice(acme, 1_000)
    voided.status = "void"  # (voiding has its own test; here only the filter matters)
    make.session.commit()
    late2 = make.invoice(globex, 7_000, issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1))

    def numbers(query: str) -> set[str]:
        return set(re.findall(r"INV-\d+", page(admin.get(f"/admin/invoices{query}"))))

    assert numbers("") == {i.number for i in (draft, current, late, paid, voided, late2)}
    assert numbers("?status=draft") == {draft.number}
    assert numbers("?status=open") == {current.number, late2.number}
    assert numbers("?status=overdue") == {late2.number}
    assert numbers("?status=paid") == {late.number, paid.number}
    assert numbers("?status=void") == {voided.number}
    assert numbers("?q=globex") == {late.number, paid.number, late2.number}
    assert numbers(f"?q={current.number.lower()}") == {current.number}
    assert numbers(f"?client={acme.id}") == {draft.number, current.number, voided.number}
    assert numbers(f"?client={globex.id}") == {late.number, paid.number, late2.number}
    assert "Overdue" in row(page(admin.get("/admin/invoices")), "invoice", late2.id)
    clock.set(current.due_date + timedelta(days=1))  # the list's statements are built once: the day is the request's
    assert numbers("?status=overdue") == {current.number, late2.number}


def test_invoice_and_payment_searches_take_any_text(admin, make):
    """The search pattern is written into the statement when it runs (reports._PATTERN): quotes, backslashes and
    LIKE's wildcards are only text, and a client's name matches through its id."""
    odd = make.client("O'Brien \\ 100% Sons")
    invoice = make.invoice(odd, 1_000)
    make.payment(odd, 1_000, reference="CHK_9")
    plain = make.client("Plain Co")
    make.invoice(plain, 2_000)
    make.payment(plain, 2_000, reference="CHK-1")

    def found(path: str, q: str) -> str:
        return page(admin.get(f"{path}?{urlencode({'q': q})}"))

    for q in ("o'brien \\ 100% s", "'brien", "%", "\\"):  # in the odd client's name only
        invoices, payments = found("/admin/invoices", q), found("/admin/payments", q)
        assert invoice.number in invoices and "Plain Co" not in invoices, q
        assert "CHK_9" in payments and "CHK-1" not in payments, q
    underscore = found("/admin/payments", "_")  # in one reference only
    assert "CHK_9" in underscore and "CHK-1" not in underscore
    assert "No invoices match." in found("/admin/invoices", "_")
    for q in ("'; DELETE FROM invoices; --", "%%", "o''brien"):
        assert "No invoices match." in found("/admin/invoices", q), q
        assert "No payments match." in found("/admin/payments", q), q
    assert invoice.number in found("/admin/invoices", "") and "Plain Co" in found("/admin/invoices", "")


def test_invoice_list_pages(admin, make):
    client = make.client()
    for _ in range(27):
        make.invoice(client, 1_000)
    first, second = page(admin.get("/admin/invoices")), page(admin.get("/admin/invoices?page=2"))
    assert "Page 1 of 2 · 27 in all" in first
    assert len(re.findall(r"<tr data-invoice=", first)) == 25 and len(re.findall(r"<tr data-invoice=", second)) == 2


def test_pick_a_client_for_a_new_invoice(admin, make):
    make.client("Initech")
    gone = make.client("Gone Away LLC", status="inactive")
    text = page(admin.get("/admin/invoices/new?q=ini"))
    assert "Initech" in text and "/invoices/new" in text
    assert "Gone Away" not in page(admin.get("/admin/invoices/new"))
    assert gone.status == "inactive"


def test_pdf_download(admin, make):
    invoice = make.invoice(make.client(), 12_345)
    detail = page(admin.get(f"/admin/invoices/{invoice.id}"))
    response = admin.get(f"/admin/invoices/{invoice.id}/pdf")
    if importlib.util.find_spec("portal.services.documents") is None:
        assert response.status_code == 404 and "Download PDF" not in detail
    else:
        assert "Download PDF" in detail
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        assert response.data.startswith(b"%PDF")
        assert f"{invoice.number}.pdf" in response.headers["Content-Disposition"]


def test_a_long_list_counts_up_to_the_cap_and_still_pages_on(app, session, make):
    """Lists stop counting at reports.COUNT_CAP (a million invoices are not counted on every view): past it the
    page says 'more than' and Next stays available. A page with rows brings its count in the same statement; a
    page past the end shows the last page, and an empty list shows an empty first page."""
    from sqlalchemy import select as sa_select

    from portal.models import Invoice
    from portal.services import reports

    client = make.client()
    for n in range(7):
        make.invoice(client, 1_000 + n)
    query = sa_select(Invoice.id).order_by(Invoice.id)

    ids = [i.id for i in session.scalars(sa_select(Invoice).order_by(Invoice.id))]
    pages = []
    one = statements_run(app, lambda: pages.append(reports.paginate(session, query, 2, 2, cap=5)))
    capped = pages[-1]
    assert (capped.total, capped.more, capped.page, capped.has_next) == (5, True, 2, True) and len(one) == 1
    assert capped.items == [(ids[2],), (ids[3],)]
    last = reports.paginate(session, query, 4, 2, cap=5)
    assert last.items == [(ids[6],)] and last.has_prev  # the real last page, beyond the counted rows
    past = statements_run(app, lambda: pages.append(reports.paginate(session, query, 9, 2, cap=10)))
    exact = pages[-1]
    assert (exact.total, exact.more, exact.page, exact.pages, exact.has_next) == (7, False, 4, 4, False)
    assert exact.items == [(ids[6],)] and len(past) == 3  # the empty page, the count, the last page
    nothing = reports.paginate(session, query.where(Invoice.id < 0), 3, 2)
    assert (nothing.items, nothing.total, nothing.page, nothing.has_next, nothing.has_prev) == ([], 0, 1, False,
                                                                                                 False)


def test_a_few_cents_left_are_written_off_from_the_invoice_page(admin, make, session):
    client = make.client()
    invoice = make.invoice(client, 10_000)
    make.payment(client, 9_500, reference="CHK-77")
    assert 'id="small-balance"' not in page(admin.get(f"/admin/invoices/{invoice.id}"))  # $5.00: a card takes it
    make.payment(client, 470, reference="CHK-78")
    text = page(admin.get(f"/admin/invoices/{invoice.id}"))
    assert 'id="small-balance"' in text and "Write off $0.30" in text

    done = admin.post(f"/admin/invoices/{invoice.id}/write-off")

    assert done.status_code == 302
    text = page(admin.get(done.headers["Location"]))
    assert f"$0.30 written off invoice {invoice.number}." in text
    assert re.search(r'id="write-off"><td class="hide-sm"></td><td colspan="2" class="right">Small balance written '
                     r'off</td><td class="num">−\$0\.30<', text)
    assert re.search(r'id="paid">\$99\.70<', text) and re.search(r'id="balance">\$0\.00<', text)
    assert "$0.30 written off (less than a card can be charged)" in text  # the timeline, with who did it
    again = admin.post(f"/admin/invoices/{invoice.id}/write-off")  # a second click: refused, nothing more
    assert "Only a balance below $0.50" in page(admin.get(again.headers["Location"]))
    assert session.scalar(select(func.count()).select_from(LedgerAdjustment)) == 1


def test_an_invoice_over_the_autopay_cap_is_approved_and_withdrawn_from_its_page(admin, make, session):
    from portal.clock import now
    from portal.models import AutopayEnrollment, InvoiceEvent
    from portal.services.autopay import cap_approvals

    client = make.client()
    small, big = make.invoice(client, 40_000), make.invoice(client, 90_000)
    assert 'id="autopay-cap"' not in page(admin.get(f"/admin/invoices/{big.id}"))  # not on autopay
    session.add(AutopayEnrollment(client_id=client.id, enrolled=True, has_cap_override=True, cap_cents=50_000,
                                  updated_at=now()))
    session.commit()
    assert 'id="autopay-cap"' not in page(admin.get(f"/admin/invoices/{small.id}"))  # under the cap
    text = page(admin.get(f"/admin/invoices/{big.id}"))
    assert 'id="autopay-cap"' in text and "invoices up to $500.00" in text and "Approve the autopay charge" in text

    done = admin.post(f"/admin/invoices/{big.id}/autopay-approval")

    assert done.status_code == 302
    text = page(admin.get(done.headers["Location"]))
    assert f"Invoice {big.number} approved for autopay" in text and "Withdraw the approval" in text
    assert "Approved for autopay over the $500.00 cap ($900.00)" in text  # the timeline, with who did it
    again = admin.post(f"/admin/invoices/{big.id}/autopay-approval")  # a second click: refused, nothing more
    assert f"Invoice {big.number} is already approved for autopay." in page(admin.get(again.headers["Location"]))
    refused = admin.post(f"/admin/invoices/{small.id}/autopay-approval")
    assert "is not over the autopay cap" in page(admin.get(refused.headers["Location"]))
    assert session.scalar(select(func.count()).select_from(InvoiceEvent)) == 1

    withdrawn = admin.post(f"/admin/invoices/{big.id}/autopay-approval/withdraw")
    text = page(admin.get(withdrawn.headers["Location"]))
    assert f"Autopay approval of invoice {big.number} withdrawn." in text and "Approve the autopay charge" in text
    assert cap_approvals.approved_ids(session, [big.id]) == set()
    assert admin.post("/admin/invoices/999999/autopay-approval").status_code == 404


@pytest.mark.parametrize("path", ["/admin/invoices", "/admin/payments"])
def test_the_invoice_and_payment_lists_are_two_statements_however_many_rows(app, admin, make, path):
    """The staff user (with the navigation's count), the page with its capped count: balances and per-payment sums
    are columns of the page's own query, not a statement per page or per row."""
    def grow(n: int) -> None:
        for _ in range(n):
            client = make.client()
            make.payment(client, 400)  # credit first: the invoice is then part paid
            make.invoice(client, 1_000)

    grow(1)
    admin.get(path)  # the process's first page also copies the MSP's settings (SettingsCache)
    few = statements_run(app, lambda: admin.get(path))
    grow(6)
    many = statements_run(app, lambda: admin.get(path))
    assert len(few) == len(many) == 2, many
