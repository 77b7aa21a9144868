"""Asking for a fresh link from a dead one: CSRF-protected, rate-limited, and only ever to the address on file."""

from __future__ import annotations

import re
from datetime import date
from email import policy
from email.parser import BytesParser

import pytest

from portal.domain import links as rules

from .conftest import path_of

SENT = "a fresh link is on its way"


def emails(outbox):
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]


@pytest.fixture
def expired(link, clock, outbox):
    clock.set(date(2026, 6, 1))
    for eml in outbox.glob("*.eml"):  # forget the original invoice email
        eml.unlink()
    return link


def test_a_fresh_link_is_emailed_to_the_contact_on_file_and_opens_the_invoice(http, expired, outbox, invoice):
    response = http.post(path_of(expired) + "/new-link", data={"email": "attacker@evil.test"})

    assert response.status_code == 200 and SENT in response.text
    [message] = emails(outbox)
    assert message["To"] == "pat@northwind.test"  # the typed address is ignored: there is no such field
    assert "attacker" not in message.as_string()
    path = re.search(r"http://localhost(/i/\S+)", message.get_body(("plain",)).get_content()).group(1)
    assert path != path_of(expired)
    page = http.get(path)
    assert page.status_code == 200 and invoice.number in page.text


def test_a_tampered_token_gets_the_same_answer_and_no_email(http, expired, outbox):
    response = http.post(path_of(expired)[:-4] + "AAAA/new-link")

    assert response.status_code == 200 and SENT in response.text
    assert emails(outbox) == []


def test_the_per_link_cap_stops_a_flood(http, expired, outbox):
    for _ in range(rules.FRESH_LINKS_PER_LINK + 2):
        assert SENT in http.post(path_of(expired) + "/new-link").text

    assert len(emails(outbox)) == rules.FRESH_LINKS_PER_LINK


def test_new_link_is_post_only(http, expired, outbox):
    assert http.get(path_of(expired) + "/new-link").status_code == 405
    assert emails(outbox) == []


class TestWithCsrfAndRateLimits:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["WTF_CSRF_ENABLED"] = True
        app_config["RATELIMIT_ENABLED"] = True
        return app_config

    def test_a_post_without_the_csrf_token_changes_nothing(self, http, expired, outbox):
        response = http.post(path_of(expired) + "/new-link")

        assert response.status_code == 400
        assert emails(outbox) == []

    def test_the_form_on_the_expired_page_works_and_is_rate_limited_per_visitor(self, http, expired, outbox):
        page = http.get(path_of(expired))
        assert page.status_code == 410
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)

        answers = [http.post(path_of(expired) + "/new-link", data={"csrf_token": token}).status_code
                   for _ in range(6)]

        assert answers == [200] * 5 + [429]
        assert len(emails(outbox)) == rules.FRESH_LINKS_PER_LINK
