"""Helpers for the pay-page tests: read pages as a person would, fill the sandbox pay form."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest

from tests.conftest import sign_in
from tests.payments_fixtures import *  # noqa: F403


def text(response) -> str:
    """The page's HTML with entities decoded, so assertions read like the text on screen."""
    return html.unescape(response.get_data(as_text=True))


def words(response) -> str:
    """The page as plain text on one line: tags dropped, whitespace collapsed (for sentences that wrap in HTML)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text(response))).strip()


def value_of(page: str, name: str) -> str | None:
    """The value of the input named ``name`` on the page (attribute order does not matter)."""
    for tag in re.findall(r"<input[^>]*>", page):
        if f'name="{name}"' in tag:
            found = re.search(r'value="([^"]*)"', tag)
            return found.group(1) if found else ""
    return None


def location(response) -> str:
    return urlsplit(response.headers["Location"]).path


def card_form(public_id: str, number: str = "4242424242424242", *, attempt: int = 1, **extra) -> dict:
    return {"nonce": public_id, "attempt": str(attempt), "method": "card", "card_number": number,
            "card_expiry": "12/30", "card_cvc": "123", **extra}


def bank_form(public_id: str, account: str = "000123456789", *, attempt: int = 1) -> dict:
    return {"nonce": public_id, "attempt": str(attempt), "method": "us_bank_account",
            "routing_number": "110000000", "account_number": account}


def row(page: str, attribute: str, value: object) -> str:
    match = re.search(rf'<tr[^>]*data-{attribute}="{value}"[^>]*>(.*?)</tr>', page, re.S)
    assert match, f"no row with data-{attribute}={value}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


@pytest.fixture
def contact_http(http, shop, sandbox_gateway):
    """A browser signed in as the shop's contact, the app on the sandbox gateway."""
    sign_in(http, shop.contact)
    return http


def start_payment(http, amounts: dict[int, str]) -> str:
    """Choose invoices and amounts on /pay; returns the new checkout's public id."""
    data = {}
    for invoice_id, amount in amounts.items():
        data[f"pay-{invoice_id}"] = "1"
        data[f"amount-{invoice_id}"] = amount
    response = http.post("/pay", data=data)
    assert response.status_code == 302, text(response)
    path = location(response)
    assert path.startswith("/pay/")
    return path.removeprefix("/pay/")
