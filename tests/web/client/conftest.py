"""A believable client account: overdue, open, paid and draft invoices, payments, and credit on account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from portal.domain.invoices import LineInput
from portal.models import Client, Contact, Invoice, Payment
from portal.services.settings import update_settings
from tests.conftest import sign_in


@dataclass
class Account:
    client: Client
    contact: Contact
    overdue: Invoice  # $100.00, $30.00 paid, due Feb 9: $70.00 overdue
    current: Invoice  # $250.00 open, due Mar 31
    paid: Invoice  # $50.00 paid in full
    draft: Invoice  # the MSP's work in progress: never shown to the client
    partial_payment: Payment  # $30.00 check on Feb 1
    overpayment: Payment  # $80.00 wire on Mar 12: $50.00 to `paid`, $30.00 left as credit


def build_account(make, name: str, prefix: str, check_ref: str = "CHK 5521", wire_ref: str = "WIRE 77") -> Account:
    client = make.client(name, address_line1="12 Main St", city="Springfield", region="IL", postal_code="62701")
    contact = make.contact(client, email=f"ap@{prefix.lower()}.test", name=f"{name} AP")
    overdue = make.invoice(client, 10_000, issue_date=date(2026, 1, 10), due_date=date(2026, 2, 9),
                           number=f"{prefix}-1001")
    current = make.invoice(client, 25_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31),
                           number=f"{prefix}-1002")
    paid = make.invoice(client, 5_000, issue_date=date(2026, 3, 10), due_date=date(2026, 4, 9),
                        number=f"{prefix}-1003")
    draft = make.invoice(client, 99_900, issue=False, issue_date=date(2026, 3, 14), number=f"{prefix}-DRAFT")
    partial = make.payment(client, 3_000, method="check", received_on=date(2026, 2, 1), reference=check_ref,
                           allocations={overdue.id: 3_000})
    over = make.payment(client, 8_000, method="wire", received_on=date(2026, 3, 12), reference=wire_ref,
                        allocations={paid.id: 5_000})
    return Account(client, contact, overdue, current, paid, draft, partial, over)


@pytest.fixture
def account(make, session) -> Account:
    update_settings(session, name="Northwind IT", legal_name="Northwind IT Services LLC",
                    address="400 Harbor Rd\nPortland, OR 97201",
                    payment_instructions="Pay by ACH to Northwind IT, routing 011000015, account 12345678.")
    return build_account(make, "Acme Dental LLC", "ACME")


@pytest.fixture
def other(make) -> Account:
    return build_account(make, "Bayside Law PC", "BAYS", check_ref="CHK 8800", wire_ref="WIRE 99")


@pytest.fixture
def portal(http, account):
    """A test client signed in as the account's contact."""
    sign_in(http, account.contact)
    return http


TAXED_LINES = [
    LineInput("Managed workstation", Decimal(2), 15_000, taxable=True),
    LineInput("Offsite backup", Decimal("1.5"), 6_666, taxable=False),
]
