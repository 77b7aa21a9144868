"""Helpers for the staff-area tests: read pages as a person would, pick rows out of tables."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from portal.clock import now
from portal.models import StaffUser
from tests.conftest import sign_in


def page(response) -> str:
    """The page's HTML with entities decoded, so assertions read like the text on screen."""
    return html.unescape(response.get_data(as_text=True))


def row(text: str, attribute: str, value: object) -> str:
    """The <tr data-ATTRIBUTE="VALUE"> ... </tr> block of a table."""
    match = re.search(rf'<tr[^>]*data-{attribute}="{value}"[^>]*>(.*?)</tr>', text, re.S)
    assert match, f"no row with data-{attribute}={value}"
    return match.group(1)


def value_of(text: str, name: str) -> str:
    """The value attribute of the <input name=NAME> on the page."""
    match = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*>', text)
    assert match, f"no input named {name}"
    found = re.search(r'\bvalue="([^"]*)"', match.group(0))
    return found.group(1) if found else ""


def count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def staff_user(session):
    """A staff row without a password: these tests sign in through the session, and scrypt costs ~0.5 s."""
    user = StaffUser(email="billing@msp.test", name="Bea Billing", password_hash="!", role="admin", is_active=True,
                     created_at=now())
    session.add(user)
    session.commit()
    return user


@pytest.fixture
def admin(http, staff_user):
    """A browser signed in as staff."""
    sign_in(http, staff_user)
    return http
