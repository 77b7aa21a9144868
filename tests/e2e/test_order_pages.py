"""The client's equipment order pages in a real browser: the list, the order, and the deposit agreement's signing
page pass axe-core's WCAG 2.1 A/AA rules at desktop and phone widths; signing leads to the deposit's checkout."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from portal.domain.orders import OrderItem
from portal.services import sign_in
from portal.services.enforcement import orders

from .a11y import assert_accessible
from .test_accessibility import PASSWORD, sign_in_with_password

pytestmark = pytest.mark.e2e


def test_a_contact_reads_signs_and_reaches_the_deposit_checkout(page, live_server, session, rt, make):
    admin = make.staff()
    client = make.client("Harbor Dental Group LLC")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    sign_in.set_password(session, contact, PASSWORD)
    order = orders.create_order(session, rt, client.id, items=[OrderItem("Firewall FG-60F", 1, 80_000),
                                                               OrderItem("Switch, 24 ports", 2, 35_000)],
                                deposit_percent=Decimal(50), quote_reference="Q-7", staff=admin, send=False)
    session.commit()

    sign_in_with_password(page, "dana@harbor.test")
    page.goto("/orders")
    assert_accessible(page, "orders")
    page.goto(f"/orders/{order.public_id}")
    assert_accessible(page, "order")
    page.locator("#accept-link").click()
    page.wait_for_selector("#sign-form")
    assert_accessible(page, "deposit agreement")
    page.locator("#consent").check()
    page.get_by_label("Your full name", exact=True).fill("Dana Whitfield")
    page.get_by_label("Your title", exact=True).fill("Office Manager")
    page.get_by_label(re.compile("authorized to sign on behalf of")).check()
    page.get_by_label("Type my name").check()
    page.locator("input[name=typed_signature]").fill("Dana Whitfield")
    page.locator("#sign-button").click()
    page.wait_for_url(re.compile(r"/pay/"))
    assert "$750.00" in page.content()
