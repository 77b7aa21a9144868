"""Equipment and order pages over HTTP: the staff's deposit request (the credit-limit refusal shown with nothing
written), the order list and "cleared to order" only once the deposit settled, the equipment register (add, edit,
duplicate serial and negative value refused, CSV import good and malformed), the credit-limit form, the client's
order page, signing the deposit agreement and landing on the checkout, another client's order 404, staff-only
admin pages, and CSRF on the forms."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain.orders import OrderItem, OrderStatus
from portal.gateways.payments import sandbox_token
from portal.models import Agreement, CreditLimit, Equipment, EquipmentOrder
from portal.services import payments
from portal.services.enforcement import credit, orders
from tests.conftest import sign_in, statements_unchanged_as_rows_grow
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count, read_outbox

ITEMS = [OrderItem("Firewall FG-60F", 1, 80_000), OrderItem("Switch 24-port", 2, 35_000)]


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def staff(make):
    return make.staff()


@pytest.fixture
def admin(http, staff):
    sign_in(http, staff)
    return http


@pytest.fixture
def portal(http, shop):
    sign_in(http, shop.contact)
    return http


def order_for(session, rt, shop_, staff_, percent="50"):
    return orders.create_order(session, rt, shop_.client.id, items=ITEMS, deposit_percent=Decimal(percent),
                               quote_reference="Q-7", staff=staff_, send=False)


ORDER_FORM = {"quote_reference": "Q-9", "items-0-description": "Firewall", "items-0-quantity": "1",
              "items-0-unit_price": "800.00", "items-1-description": "Switch", "items-1-quantity": "2",
              "items-1-unit_price": "350", "deposit_percent": "50"}


# --- staff: orders --------------------------------------------------------------------------------------------------


def test_the_deposit_offered_is_the_one_the_client_signed(admin, session, shop):
    from tests.enforcement_fixtures import publish_terms, sign_terms

    def offered() -> str:
        page = text(admin.get(f"/admin/clients/{shop.client.id}/orders/new"))
        return re.search(r'name="deposit_percent"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="deposit_percent"',
                         page).group(0)

    assert 'value="50"' in offered()  # no signed terms: the shipped terms' figure
    publish_terms(session, deposit_percent=30)
    sign_terms(session, shop.client, shop.contact)
    assert 'value="30"' in offered()

def test_staff_send_a_deposit_request_and_the_client_is_emailed(admin, session, shop, outbox):
    form_page = admin.get(f"/admin/clients/{shop.client.id}/orders/new")
    assert form_page.status_code == 200 and "No credit limit." in text(form_page)

    response = admin.post(f"/admin/clients/{shop.client.id}/orders/new", data=ORDER_FORM)

    assert response.status_code == 302
    order = session.scalars(select(EquipmentOrder)).one()
    assert (order.total_cents, order.deposit_cents, order.quote_reference) == (150_000, 75_000, "Q-9")
    page = text(admin.get(response.headers["Location"]))
    assert order.reference in page and "Waiting for the client to accept" in page and "Cleared to order" not in page
    [mail] = read_outbox(outbox)
    assert f"/orders/{order.public_id}" in mail.get_body(("plain",)).get_content()
    assert order.reference in text(admin.get("/admin/orders"))
    assert order.reference in text(admin.get(f"/admin/clients/{shop.client.id}?tab=equipment"))  # the client's panel


def test_the_order_list_names_each_client_without_a_statement_per_order(app, admin, session, make, rt, staff):
    """Up to 200 orders, each with its client's name: the clients are read with the orders, not one by one."""
    def grow(n: int) -> None:
        for _ in range(n):
            client = make.client()
            make.contact(client)
            orders.create_order(session, rt, client.id, items=ITEMS, deposit_percent=Decimal(50),
                                quote_reference="Q-1", staff=staff, send=False)

    grow(1)
    [shown] = statements_unchanged_as_rows_grow(app, [lambda: admin.get("/admin/orders")], lambda: grow(4))
    for order in session.scalars(select(EquipmentOrder)):
        assert order.reference in text(shown) and order.client.legal_name in text(shown)


def test_a_request_over_the_credit_limit_is_refused_with_the_figures(admin, session, shop, staff):
    credit.set_limit(session, shop.client.id, 35_000 + 150_000 - 1, staff=staff)
    response = admin.post(f"/admin/clients/{shop.client.id}/orders/new", data=ORDER_FORM)

    assert response.status_code == 400
    assert ("Blocked by the credit limit: open A/R $350.00 plus this order $1,500.00 is $1,850.00, over the limit "
            "of $1,849.99 by $0.01.") in text(response)
    assert count(session, EquipmentOrder) == 0

    credit.set_limit(session, shop.client.id, 35_000 + 150_000, staff=staff)
    assert admin.post(f"/admin/clients/{shop.client.id}/orders/new", data=ORDER_FORM).status_code == 302
    assert count(session, EquipmentOrder) == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"deposit_percent": "abc"}, "is not a percentage"),
    ({"deposit_percent": "0"}, "more than 0%"),
    ({"items-0-unit_price": "-5"}, "price cannot be negative"),
    ({"items-0-unit_price": ""}, "enter the unit price"),
    ({"items-0-description": "", "items-0-quantity": "", "items-0-unit_price": "",
      "items-1-description": "", "items-1-quantity": "", "items-1-unit_price": ""}, "at least one item"),
])
def test_a_bad_deposit_request_is_shown_with_nothing_written(admin, session, shop, change, message):
    response = admin.post(f"/admin/clients/{shop.client.id}/orders/new", data={**ORDER_FORM, **change})
    assert response.status_code == 400 and message in text(response)
    assert count(session, EquipmentOrder) == 0


def test_the_credit_limit_form_sets_and_removes_the_limit(admin, session, shop):
    post = f"/admin/clients/{shop.client.id}/credit-limit"
    saved = admin.post(post, data={"limit": "2,000.00"})
    assert saved.status_code == 302  # back to the tab the form is on
    assert saved.headers["Location"] == f"/admin/clients/{shop.client.id}?tab=equipment#equipment-orders"
    assert session.get(CreditLimit, shop.client.id).limit_cents == 200_000
    page = text(admin.get(f"/admin/clients/{shop.client.id}?tab=equipment"))
    assert "Limit $2,000.00; open A/R $350.00; available for new orders $1,650.00." in page
    admin.post(post, data={"limit": "-1"})
    assert session.get(CreditLimit, shop.client.id).limit_cents == 200_000  # refused, unchanged
    assert "cannot be negative" in text(admin.get(f"/admin/clients/{shop.client.id}?tab=equipment"))
    admin.post(post, data={"limit": ""})
    session.expire_all()
    assert session.get(CreditLimit, shop.client.id) is None
    assert "No limit; open A/R $350.00." in text(admin.get(f"/admin/clients/{shop.client.id}?tab=equipment"))


def test_cleared_to_order_shows_only_once_the_deposit_settled(admin, session, shop, staff, rt, sandbox_gateway):
    from tests.payments_fixtures import runtime_for

    rt = runtime_for(sandbox_gateway)
    order = order_for(session, rt, shop, staff)
    from tests.integration.test_orders import sign

    done = sign(session, rt, shop.contact, order)
    page = text(admin.get(f"/admin/orders/{order.id}"))
    assert "Accepted: deposit not settled yet" in page and "Cleared to order" not in page
    assert done.agreement.reference in page

    payments.pay(session, rt, done.request, token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    page = text(admin.get(f"/admin/orders/{order.id}"))
    assert 'id="cleared-to-order"' in page
    assert "Cleared to order" in text(admin.get("/admin/orders?status=cleared"))


def test_staff_cancel_an_order_with_a_reason(admin, session, shop, staff, rt):
    order = order_for(session, rt, shop, staff)
    admin.post(f"/admin/orders/{order.id}/cancel", data={"reason": ""})
    session.expire_all()
    assert session.get(EquipmentOrder, order.id).status == OrderStatus.REQUESTED
    admin.post(f"/admin/orders/{order.id}/cancel", data={"reason": "Quote expired"})
    session.expire_all()
    assert session.get(EquipmentOrder, order.id).status == OrderStatus.CANCELED


# --- staff: equipment register --------------------------------------------------------------------------------------

EQUIPMENT = {"item": "Firewall FG-60F", "serial_number": "FGT60F-001", "value": "800.00",
             "installed_on": "2026-03-01", "location": "Server room", "owned_until_paid": "y"}


def test_staff_add_and_edit_equipment(admin, session, shop):
    assert admin.post(f"/admin/clients/{shop.client.id}/equipment", data=EQUIPMENT).status_code == 302
    row = session.scalars(select(Equipment)).one()
    assert (row.value_cents, row.location, row.owned_until_paid) == (80_000, "Server room", True)
    page = text(admin.get(f"/admin/clients/{shop.client.id}/equipment"))
    assert "FGT60F-001" in page and "$800.00" in page

    edit = f"/admin/clients/{shop.client.id}/equipment/{row.id}/edit"
    assert 'value="800.00"' in text(admin.get(edit))
    assert admin.post(edit, data={**EQUIPMENT, "location": "Front desk", "owned_until_paid": ""}).status_code == 302
    session.expire_all()
    row = session.get(Equipment, row.id)
    assert (row.location, row.owned_until_paid) == ("Front desk", False)


@pytest.mark.parametrize(("change", "message"), [
    ({"value": "-1.00"}, "Value cannot be negative."),
    ({"value": "12.345"}, "is not an amount"),
    ({"serial_number": "fgt60f-001"}, "Serial number fgt60f-001 is already in this client&#39;s register."),
    ({"item": ""}, "Name the item."),
])
def test_bad_equipment_is_refused_with_nothing_changed(admin, session, shop, change, message):
    admin.post(f"/admin/clients/{shop.client.id}/equipment", data=EQUIPMENT)
    response = admin.post(f"/admin/clients/{shop.client.id}/equipment", data={**EQUIPMENT, **change})
    assert response.status_code == 400 and message in text(response)
    assert count(session, Equipment) == 1


def upload(admin, client_id, content: str | bytes):
    data = content.encode() if isinstance(content, str) else content
    return admin.post(f"/admin/clients/{client_id}/equipment/import",
                      data={"file": (io.BytesIO(data), "equipment.csv")}, content_type="multipart/form-data")


def test_a_good_csv_is_imported(admin, session, shop):
    response = upload(admin, shop.client.id, "Item,Serial Number,Value,Installed On,Location,Owned until paid\n"
                                             "Laptop,SN-1,1200.00,2026-01-10,Office,yes\n"
                                             "Printer,SN-2,300,,Front desk,no\n")
    assert response.status_code == 302
    rows = {r.serial_number: r for r in session.scalars(select(Equipment))}
    assert set(rows) == {"SN-1", "SN-2"} and rows["SN-2"].owned_until_paid is False
    assert rows["SN-1"].value_cents == 120_000


def test_a_malformed_csv_reports_each_line_and_writes_nothing(admin, session, shop):
    admin.post(f"/admin/clients/{shop.client.id}/equipment", data={**EQUIPMENT, "serial_number": "SN-OLD"})
    response = upload(admin, shop.client.id, "item,serial_number,value\n"
                                             "Laptop,SN-1,1200.00\n"
                                             "Router,SN-2,-5\n"
                                             "Switch,SN-1,10\n"
                                             ",SN-4,abc\n"
                                             "Old,SN-OLD,1\n")
    page = text(response)
    assert response.status_code == 400 and "Nothing was imported" in page
    assert "line 3: value cannot be negative" in page
    assert "line 4: serial_number SN-1 is already on line 2" in page
    assert "line 5: item is missing" in page and "line 5: value:" in page
    assert "line 6: serial_number SN-OLD is already in this client&#39;s register" in page
    assert count(session, Equipment) == 1  # only the one added before


def test_an_unusable_csv_header_or_encoding_is_refused(admin, session, shop):
    assert "missing the required column" in text(upload(admin, shop.client.id, "item,value\nLaptop,1\n"))
    assert "not UTF-8" in text(upload(admin, shop.client.id, b"item,serial_number,value\n\xff\xfe,1,2\n"))
    assert count(session, Equipment) == 0


# --- the client -----------------------------------------------------------------------------------------------------

def sign_form(page: str) -> dict:
    sha = re.search(r'name="document_sha256" type="hidden" value="([0-9a-f]{64})"', page).group(1)
    return {"document_sha256": sha, "full_name": "Pat Doe", "title": "Office Manager", "authority": "y",
            "consent": "y", "signature_kind": "typed", "typed_signature": "Pat Doe"}


def test_the_client_accepts_the_deposit_agreement_and_lands_on_the_checkout(portal, session, shop, staff, rt):
    order = order_for(session, rt, shop, staff)
    assert order.reference in text(portal.get("/orders"))
    page = text(portal.get(f"/orders/{order.public_id}"))
    assert "Firewall FG-60F" in page and "$750.00" in page and f"/orders/{order.public_id}/accept" in page

    sign_page = text(portal.get(f"/orders/{order.public_id}/accept"))
    assert "Equipment deposit agreement" in sign_page
    refused = portal.post(f"/orders/{order.public_id}/accept", data={**sign_form(sign_page), "consent": ""})
    assert refused.status_code == 400 and count(session, Agreement) == 0

    response = portal.post(f"/orders/{order.public_id}/accept", data=sign_form(sign_page))
    assert response.status_code == 302
    session.expire_all()
    order = session.get(EquipmentOrder, order.id)
    assert order.status == OrderStatus.ACCEPTED
    assert response.headers["Location"].endswith(f"/pay/{order.request.public_id}")
    assert "$750.00" in text(portal.get(response.headers["Location"]))
    page = text(portal.get(f"/orders/{order.public_id}"))
    assert f"/pay/{order.request.public_id}" in page and order.agreement.reference in page
    again = portal.post(f"/orders/{order.public_id}/accept", data=sign_form(sign_page))
    assert again.headers["Location"].endswith(f"/orders/{order.public_id}")  # the order page says why
    assert "already accepted" in text(portal.get(again.headers["Location"]))
    assert count(session, Agreement) == 1


def test_another_clients_order_is_404_for_a_contact(http, session, shop, staff, rt, make):
    order = order_for(session, rt, shop, staff)
    stranger = make.contact(make.client("Other LLC"), email="eve@other.test")
    sign_in(http, stranger)
    assert http.get(f"/orders/{order.public_id}").status_code == 404
    assert http.get(f"/orders/{order.public_id}/accept").status_code == 404
    assert http.post(f"/orders/{order.public_id}/accept", data={"full_name": "Eve"}).status_code == 404
    assert order.reference not in text(http.get("/orders"))
    session.expire_all()
    assert session.get(EquipmentOrder, order.id).status == OrderStatus.REQUESTED


def test_admin_pages_are_for_staff_only(portal, session, shop, staff, rt):
    order = order_for(session, rt, shop, staff)
    for url in ("/admin/orders", f"/admin/orders/{order.id}", f"/admin/clients/{shop.client.id}/equipment",
                f"/admin/clients/{shop.client.id}/orders/new"):
        assert portal.get(url).status_code in (302, 403), url
    assert portal.post(f"/admin/clients/{shop.client.id}/credit-limit", data={"limit": "1"}).status_code in (302, 403)
    assert session.scalar(select(func.count()).select_from(CreditLimit)) == 0


class TestCsrf:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["WTF_CSRF_ENABLED"] = True
        return app_config

    def test_every_order_and_equipment_form_needs_the_token(self, admin, session, shop, staff, rt):
        cid = shop.client.id
        assert admin.post(f"/admin/clients/{cid}/orders/new", data=ORDER_FORM).status_code == 400
        assert admin.post(f"/admin/clients/{cid}/equipment", data=EQUIPMENT).status_code == 400
        assert upload(admin, cid, "item,serial_number,value\nA,B,1\n").status_code == 400
        admin.post(f"/admin/clients/{cid}/credit-limit", data={"limit": "5"})
        order = order_for(session, rt, shop, staff)
        admin.post(f"/admin/orders/{order.id}/cancel", data={"reason": "x"})
        session.expire_all()
        assert count(session, EquipmentOrder) == 1 and count(session, Equipment) == 0
        assert session.get(CreditLimit, cid) is None
        assert session.get(EquipmentOrder, order.id).status == OrderStatus.REQUESTED

        page = text(admin.get(f"/admin/clients/{cid}/orders/new"))
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        assert admin.post(f"/admin/clients/{cid}/orders/new",
                          data={**ORDER_FORM, "csrf_token": token}).status_code == 302

    def test_accepting_needs_the_token(self, http, session, shop, staff, rt):
        order = order_for(session, rt, shop, staff)
        sign_in(http, shop.contact)
        page = text(http.get(f"/orders/{order.public_id}/accept"))
        forged = http.post(f"/orders/{order.public_id}/accept", data=sign_form(page))
        assert forged.status_code == 400 and count(session, Agreement) == 0
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        real = http.post(f"/orders/{order.public_id}/accept", data={**sign_form(page), "csrf_token": token})
        assert real.status_code == 302 and count(session, Agreement) == 1
