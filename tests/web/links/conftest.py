"""Fixtures for the magic-link pages: an MSP, a client with billing contacts, an invoice emailed to Pat."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from portal.domain.invoices import LineInput
from portal.services import clients, delivery
from portal.services.settings import update_settings
from portal.web.runtime import runtime


@pytest.fixture
def msp(session):
    return update_settings(session, name="Acme IT", email="billing@acme-it.test", phone="555-0100",
                           payment_instructions="Mail a check to Acme IT, 1 Main St, Springfield.")


@pytest.fixture
def northwind(make, msp):
    client = make.client("Northwind Traders", address_line1="9 Harbor Rd", city="Portland", region="OR")
    make.contact(client, "pat@northwind.test", name="Pat Payable")
    make.contact(client, "kim@northwind.test", name="Kim Ledger")
    return client


@pytest.fixture
def invoice(make, northwind):
    lines = [LineInput("Managed endpoint protection", Decimal(12), 4_150), LineInput("Backup storage 2 TB",
                                                                                     Decimal(1), 7_120)]
    return make.invoice(northwind, lines=lines, due_date=date(2026, 4, 15))


@pytest.fixture
def pat(session, northwind):
    return clients.find_contact_by_email(session, "pat@northwind.test")


@pytest.fixture
def link(session, invoice, pat, rt):
    """Pat's link to the invoice, emailed through the outbox."""
    [sent] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    return sent.link


def path_of(link) -> str:
    return delivery.link_url(runtime(), link).removeprefix("http://localhost")


def assert_shows_nothing_of(response, invoice) -> None:
    """A rejected link: none of the invoice's or the client's details may be on the page."""
    body = response.get_data(as_text=True)
    for secret in (invoice.number, invoice.client.legal_name, "Harbor Rd", "Managed endpoint protection",
                   "$569.20", "569.20", "pat@northwind.test", "Pat Payable", "Mail a check"):
        assert secret not in body, secret
