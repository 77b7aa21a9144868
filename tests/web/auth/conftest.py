"""Helpers for sign-in tests: read the emails the app wrote to the outbox folder and pull out the link."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

LINK = re.compile(r"http://localhost(/login/link/[A-Za-z0-9._-]+)")


def read_outbox(outbox: Path) -> list[EmailMessage]:
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]


def link_path(message: EmailMessage) -> str:
    """The sign-in link's path, taken from the plain-text part (the HTML part must carry the same link)."""
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    [url] = set(LINK.findall(text))
    assert url in html
    return urlsplit("http://localhost" + url).path


@pytest.fixture
def client_co(make):
    return make.client("Acme Dental LLC")


@pytest.fixture
def contact(make, client_co):
    return make.contact(client_co, email="pat@acme-dental.test", name="Pat Doe")


def request_link(http, email: str):
    """POST the form and close the response, as a server does once it is sent: the email goes out then."""
    response = http.post("/login", data={"email": email})
    response.close()
    return response


@pytest.fixture
def emailed_link(http, contact, outbox) -> str:
    """Ask for a link for `contact` and return the path the email points to."""
    assert request_link(http, contact.email).status_code == 302
    [message] = read_outbox(outbox)
    return link_path(message)


def is_signed_in_as_contact(http) -> bool:
    response = http.get("/")
    if response.status_code == 302:
        assert urlsplit(response.headers["Location"]).path == "/login"
        return False
    assert response.status_code == 200
    return True
