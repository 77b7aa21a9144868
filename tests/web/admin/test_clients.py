"""Clients: list with balances, search and paging; create and edit; contacts; conflicts as form errors."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from portal.models import Client, Contact
from tests.conftest import statements_run

from .conftest import count, page, row

CLIENT_FORM = {"legal_name": "Northwind Dental LLC", "external_id": "PSA-100", "address_line1": "1 Main St",
               "address_line2": "", "city": "Springfield", "region": "IL", "postal_code": "62701",
               "country": "us", "status": "active", "net_days": "15", "notes": "Front desk pays by check."}


def test_create_client(admin, session):
    response = admin.post("/admin/clients/new", data=CLIENT_FORM)
    client = session.scalar(select(Client))
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/clients/{client.id}"
    assert (client.legal_name, client.external_id, client.city, client.country, client.net_days) == (
        "Northwind Dental LLC", "PSA-100", "Springfield", "US", 15)
    shown = page(admin.get(response.headers["Location"]))
    assert "Client Northwind Dental LLC created." in shown
    assert "Net 15" in shown and "Springfield, IL 62701" in shown


def test_blank_net_days_means_the_msp_default(admin, session):
    admin.post("/admin/clients/new", data={**CLIENT_FORM, "net_days": "", "external_id": ""})
    client = session.scalar(select(Client))
    assert client.net_days is None and client.external_id is None
    assert "Default (net 30)" in page(admin.get(f"/admin/clients/{client.id}"))


def test_bad_client_input_is_refused_and_nothing_saved(admin, session):
    for changes, message in [
        ({"legal_name": "  "}, "Enter the client's legal name."),
        ({"net_days": "400"}, "Number must be between 0 and 365."),
        ({"net_days": "soon"}, "Not a valid integer value."),
        ({"country": "USA"}, "Use a two-letter code, e.g. US."),
        ({"status": "vip"}, "Not a valid choice."),
    ]:
        response = admin.post("/admin/clients/new", data={**CLIENT_FORM, **changes})
        assert response.status_code == 200, changes
        assert message in page(response), changes
    assert count(session, Client) == 0


def test_duplicate_external_id_is_a_form_error(admin, make, session):
    make.client("Existing Co", external_id="PSA-100")
    response = admin.post("/admin/clients/new", data=CLIENT_FORM)
    assert response.status_code == 200
    assert "Another client already has the external id PSA-100." in page(response)
    assert count(session, Client) == 1


def test_edit_client(admin, make, session):
    client = make.client("Old Name LLC", external_id="A-1")
    make.client("Other LLC", external_id="B-2")
    form = admin.get(f"/admin/clients/{client.id}/edit")
    assert 'value="Old Name LLC"' in page(form)

    clash = admin.post(f"/admin/clients/{client.id}/edit", data={**CLIENT_FORM, "external_id": "B-2"})
    assert "Another client already has the external id B-2." in page(clash)
    session.expire_all()
    assert client.legal_name == "Old Name LLC"

    response = admin.post(f"/admin/clients/{client.id}/edit",
                          data={**CLIENT_FORM, "legal_name": "New Name LLC", "status": "on_hold"})
    assert response.status_code == 302
    session.expire_all()
    assert (client.legal_name, client.status, client.external_id) == ("New Name LLC", "on_hold", "PSA-100")
    assert "Client details saved." in page(admin.get(response.headers["Location"]))


def test_add_and_edit_contact(admin, make, session):
    client = make.client()
    response = admin.post(f"/admin/clients/{client.id}/contacts/new", data={
        "name": "Pat Payables", "email": "Pat@Northwind.test", "phone": "555-0100", "title": "Office manager",
        "is_billing": "y", "portal_access": "y"})
    assert response.status_code == 302
    contact = session.scalar(select(Contact))
    assert (contact.email, contact.is_billing, contact.portal_access) == ("pat@northwind.test", True, True)
    shown = page(admin.get(f"/admin/clients/{client.id}"))
    assert "Contact Pat Payables added." in shown and "pat@northwind.test" in shown

    # unticked boxes arrive as absent fields: billing off, portal access off (which also ends sessions)
    response = admin.post(f"/admin/clients/{client.id}/contacts/{contact.id}/edit", data={
        "name": "Pat Payne", "email": "pat@northwind.test", "phone": "", "title": "AP clerk"})
    assert response.status_code == 302
    session.expire_all()
    assert (contact.name, contact.title, contact.is_billing, contact.portal_access) == (
        "Pat Payne", "AP clerk", False, False)
    assert contact.session_epoch == 1


def test_contact_conflicts_and_bad_input(admin, make, session):
    client, other = make.client(), make.client()
    make.contact(other, email="taken@example.test")
    url = f"/admin/clients/{client.id}/contacts/new"
    for data, message in [
        ({"name": "Sam", "email": "TAKEN@example.test"}, "taken@example.test is already a contact"),
        ({"name": "Sam", "email": "not-an-email"}, "Enter a valid email address."),
        ({"name": "", "email": "sam@example.test"}, "Enter the contact's name."),
        ({"name": "Sam", "email": "sam@example.test", "phone": "5" * 41}, "Field cannot be longer than 40"),
    ]:
        response = admin.post(url, data=data)
        assert response.status_code == 200, data
        assert message in page(response), data
    assert count(session, Contact) == 1


def test_contact_of_another_client_is_404(admin, make):
    client, other = make.client(), make.client()
    contact = make.contact(other)
    assert admin.get(f"/admin/clients/{client.id}/contacts/{contact.id}/edit").status_code == 404


def test_client_list_shows_balance_and_overdue(admin, make, clock):
    late = make.client("Late Payers Inc")
    make.invoice(late, 40_000, issue_date=date(2026, 1, 1), due_date=date(2026, 1, 31))  # overdue
    make.invoice(late, 25_000)  # due in 30 days
    make.payment(late, 10_000)  # oldest first: off the overdue one
    make.invoice(late, 99_999, issue=False)  # drafts are not owed
    paid_up = make.client("Paid Up LLC")

    text = page(admin.get("/admin/clients"))
    assert "$55,000.00" not in text
    late_row = row(text, "client", late.id)
    assert "$55,000.00" not in late_row
    assert "$550.00" in late_row  # 400 + 250 - 100
    assert "$300.00" in late_row  # overdue part
    assert "$0.00" in row(text, "client", paid_up.id)


def test_client_search_filter_sort_and_pages(admin, make):
    make.client("Alpha Accounting", external_id="EXT-ALPHA")
    beta = make.client("Beta Builders", status="on_hold")
    make.invoice(beta, 5_000)
    for n in range(26):
        make.client(f"Zeta {n:02d} LLC")

    assert "Beta Builders" in page(admin.get("/admin/clients?q=beta"))
    assert "Alpha Accounting" not in page(admin.get("/admin/clients?q=beta"))
    assert "Alpha Accounting" in page(admin.get("/admin/clients?q=ext-alpha"))  # by external id
    on_hold = page(admin.get("/admin/clients?status=on_hold"))
    assert "Beta Builders" in on_hold and "Alpha Accounting" not in on_hold
    assert "No client matches" in page(admin.get("/admin/clients?q=%25%25"))  # LIKE wildcards are literal

    first = page(admin.get("/admin/clients"))
    assert "Page 1 of 2 · 28 in all" in first and "Zeta 22 LLC" in first and "Zeta 23 LLC" not in first
    second = page(admin.get("/admin/clients?page=2"))
    assert "Zeta 23 LLC" in second and "Zeta 25 LLC" in second and "Alpha" not in second
    assert "Zeta 25 LLC" in page(admin.get("/admin/clients?page=99"))  # past the end: the last page

    by_balance = page(admin.get("/admin/clients?sort=balance"))
    assert by_balance.index("Beta Builders") < by_balance.index("Alpha Accounting")


def test_client_list_sums_are_for_the_day_and_the_search_of_each_request(admin, make, clock):
    """The list's statements are built once for each kind of request (reports._client_list); the day, the search
    and the status are each request's own."""
    late = make.client("Late Co", status="on_hold")
    make.invoice(late, 10_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 20))
    later = make.client("Later Co")
    make.invoice(later, 20_000, issue_date=date(2026, 3, 1), due_date=date(2026, 4, 1))

    def by_overdue(query: str = "") -> str:
        return page(admin.get(f"/admin/clients?sort=overdue{query}"))

    text = by_overdue()  # March 16: nothing overdue yet, so by name
    assert "$0.00" in row(text, "client", late.id) and text.index("Late Co") < text.index("Later Co")
    clock.set(date(2026, 3, 25))
    text = by_overdue()
    assert "$100.00" in row(text, "client", late.id) and text.index("Late Co") < text.index("Later Co")
    clock.set(date(2026, 4, 5))
    text = by_overdue()
    assert "$200.00" in row(text, "client", later.id) and text.index("Later Co") < text.index("Late Co")
    on_hold = by_overdue("&q=co&status=on_hold")
    assert "Late Co" in on_hold and "Later Co" not in on_hold
    assert "Later Co" in by_overdue("&q=later") and "Late Co" not in by_overdue("&q=later")
    assert "No client matches" in by_overdue("&q=later&status=on_hold")


def test_client_list_query_count_does_not_grow_with_clients(app, admin, make):
    """Balances come from one grouped query, not one query per client (it has to work for 10,000 clients)."""
    def statements_for_list() -> int:
        responses = []
        seen = statements_run(app, lambda: responses.append(admin.get("/admin/clients")))
        assert responses[0].status_code == 200
        return len(seen)

    for _ in range(2):
        client = make.client()
        make.invoice(client, 1_000)
    statements_for_list()  # the first page of the process also copies the MSP's settings (SettingsCache)
    few = statements_for_list()
    for _ in range(10):
        client = make.client()
        make.invoice(client, 1_000)
        make.payment(client, 500)
    assert statements_for_list() == few


def test_client_detail_shows_account(admin, make, clock):
    client = make.client("Contoso Ltd", address_line1="9 Harbor Rd", city="Portland", region="ME")
    make.contact(client, name="Casey Books", email="casey@contoso.test", title="Controller")
    make.contact(client, name="Avery Ops", email="avery@contoso.test")
    make.contact(make.client(), name="Not Theirs", email="other@example.test")
    overdue = make.invoice(client, 30_000, issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1))
    current = make.invoice(client, 12_000)
    payment = make.payment(client, 10_000, reference="CHK-77")

    text = page(admin.get(f"/admin/clients/{client.id}"))
    assert "9 Harbor Rd" in text and "Portland, ME" in text and "Controller" in text
    assert text.index("Casey Books") < text.index("Avery Ops") and "Not Theirs" not in text  # in the order added
    assert "$320.00" in text  # balance due: 300 + 120 - 100
    assert '<tr data-bucket="31-60"><td>31–60 days</td><td class="num">1</td>' in text  # 43 days late
    invoices = page(admin.get(f"/admin/clients/{client.id}?tab=invoices"))
    assert "overdue" in row(invoices, "invoice", overdue.id).lower()
    assert "$200.00" in row(invoices, "invoice", overdue.id)
    assert "Open" in row(invoices, "invoice", current.id)
    assert f'href="/admin/invoices/{overdue.id}"' in row(invoices, "invoice", overdue.id)
    payments = page(admin.get(f"/admin/clients/{client.id}?tab=payments"))
    assert "CHK-77" in payments and f'href="/admin/payments/{payment.id}"' in payments
    assert admin.get("/admin/clients/99999").status_code == 404
    assert admin.get("/admin/clients/99999?tab=payments").status_code == 404


def test_client_page_shows_one_tab_at_a_time(app, admin, make):
    """Each tab reads and shows only its own sections (the whole account on one page ran ~30 statements), the tab
    shown is marked, and an unknown tab is the overview."""
    client = make.client("Contoso Ltd")
    make.invoice(client, 30_000)
    sections = {"overview": ('id="stat-balance"', 'id="standing"', 'id="contacts"'),
                "invoices": ('id="invoices"',), "payments": ('id="payments"',),  # online payments: once there are any
                "plans": ('id="plans"', 'id="plan-offers"'), "collections": ('id="collections"',),
                "equipment": ('id="equipment-orders"', 'id="enforcement"')}
    every = {marker for markers in sections.values() for marker in markers}
    statements = {}
    for tab, markers in sections.items():
        url, responses = f"/admin/clients/{client.id}?tab={tab}", []
        seen = statements_run(app, lambda url=url, shown=responses: shown.append(admin.get(url)))
        text = page(responses[0])
        assert [m for m in every if m in text] == [m for m in every if m in markers], tab
        assert f'?tab={tab}" class="active" aria-current="page"' in text or tab == "overview"
        statements[tab] = len(seen)
        if tab == "equipment":  # the enforcement panel lists the notices once and picks the live one from them
            assert sum("FROM enforcement_notices" in sql for sql in seen) == 1, seen
        if tab == "payments":  # no online payment: their count says so, and nothing more is read for their panel
            assert [sql for sql in seen if "charge_attempts" in sql or "disputes" in sql] == [
                next(sql for sql in seen if "count(*)" in sql and "charge_attempts" in sql)], seen
        if tab == "overview":  # the override history says which override is in force; the contacts come with the client
            assert sum("FROM standing_overrides" in sql for sql in seen) == 1, seen
            assert not any(sql.startswith("SELECT contacts.") for sql in seen), seen
    assert f'<a href="/admin/clients/{client.id}" class="active" aria-current="page">Overview</a>' in page(
        admin.get(f"/admin/clients/{client.id}?tab=nonsense"))
    assert max(statements.values()) <= 12, statements
