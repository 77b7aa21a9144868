"""Magic-link rules: expiry, validity, what counts as an open, when an email may be (re)sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from portal.domain import links as rules
from portal.domain.errors import InvalidTransition

NOW = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)


def facts(**kw) -> rules.LinkFacts:
    base = dict(expires_at=NOW + timedelta(days=1), revoked=False, replaced=False, contact_at_client=True,
                contact_has_access=True, invoice_status="open")
    return rules.LinkFacts(**(base | kw))


# --- expiry ------------------------------------------------------------------------------------------------------

def test_a_link_lasts_until_the_end_of_due_date_plus_the_configured_days():
    expires = rules.link_expires_at(date(2026, 4, 15), NOW, 30)
    assert expires == datetime(2026, 5, 16, 0, 0, tzinfo=UTC)  # the whole of May 15 (= Apr 15 + 30) is included


def test_the_number_of_days_is_configurable():
    assert rules.link_expires_at(date(2026, 4, 15), NOW, 7) == datetime(2026, 4, 23, tzinfo=UTC)


def test_an_overdue_invoice_sent_today_still_gets_the_full_period_from_now():
    long_overdue = date(2025, 12, 1)
    assert rules.link_expires_at(long_overdue, NOW, 30) == NOW + timedelta(days=30)


@pytest.mark.parametrize("days", [0, -5])
def test_zero_or_negative_days_are_refused(days):
    with pytest.raises(ValueError):
        rules.link_expires_at(date(2026, 4, 15), NOW, days)


# --- state -------------------------------------------------------------------------------------------------------

def test_a_fresh_link_to_an_open_or_paid_invoice_is_active():
    assert rules.link_state(facts(), NOW) == rules.ACTIVE
    assert rules.link_state(facts(invoice_status="paid"), NOW) == rules.ACTIVE


def test_a_link_expires_at_the_exact_instant():
    at = NOW + timedelta(hours=2)
    assert rules.link_state(facts(expires_at=at), at - timedelta(seconds=1)) == rules.ACTIVE
    assert rules.link_state(facts(expires_at=at), at) == rules.EXPIRED


@pytest.mark.parametrize(("kw", "state"), [
    ({"revoked": True}, rules.REVOKED),
    ({"replaced": True}, rules.REPLACED),
    ({"invoice_status": "void"}, rules.VOID),
    ({"invoice_status": "draft"}, rules.VOID),
    ({"contact_at_client": False}, rules.NO_ACCESS),
    ({"contact_has_access": False}, rules.NO_ACCESS),
])
def test_each_reason_a_link_stops_working(kw, state):
    assert rules.link_state(facts(**kw), NOW) == state


def test_a_contact_who_left_learns_nothing_not_even_that_the_invoice_was_voided():
    gone = facts(contact_at_client=False, invoice_status="void", revoked=True, expires_at=NOW - timedelta(days=1))
    assert rules.link_state(gone, NOW) == rules.NO_ACCESS


def test_revoked_wins_over_replaced_and_expired():
    assert rules.link_state(facts(revoked=True, replaced=True, expires_at=NOW), NOW) == rules.REVOKED
    assert rules.link_state(facts(replaced=True, expires_at=NOW), NOW) == rules.REPLACED


# --- opens -------------------------------------------------------------------------------------------------------

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def test_a_browser_get_is_an_open():
    assert rules.counts_as_open("GET", BROWSER)
    assert rules.counts_as_open("get", BROWSER)


def test_head_is_never_an_open():
    assert not rules.counts_as_open("HEAD", BROWSER)


@pytest.mark.parametrize("agent", [
    "", None, "   ",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; BingPreview/1.0b)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1",
    "Microsoft Office Existence Discovery",
    "Mozilla/5.0 Proofpoint URL Defense",
    "Barracuda Sentinel (EE)",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Go-http-client/1.1",
])
def test_scanners_previews_and_scripts_are_not_opens(agent):
    assert rules.is_link_scanner(agent)
    assert not rules.counts_as_open("GET", agent)


# --- sending -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["open", "paid"])
def test_issued_invoices_can_be_sent(status):
    rules.check_sendable(status, rules.INVOICE)
    rules.check_sendable(status, rules.FRESH_LINK)


@pytest.mark.parametrize(("status", "message"), [("draft", "Issue the invoice"), ("void", "void invoice")])
def test_drafts_and_void_invoices_cannot_be_sent(status, message):
    with pytest.raises(InvalidTransition, match=message):
        rules.check_sendable(status, rules.INVOICE)


def test_a_reminder_needs_money_owing():
    rules.check_sendable("open", rules.REMINDER)
    with pytest.raises(InvalidTransition, match="nothing to remind"):
        rules.check_sendable("paid", rules.REMINDER)


def test_an_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        rules.check_sendable("open", "newsletter")


def test_only_failed_or_stuck_emails_can_be_retried():
    rules.check_retryable("failed", NOW, False, False, NOW)
    rules.check_retryable("sending", NOW - rules.STUCK_AFTER, False, False, NOW)
    with pytest.raises(InvalidTransition, match="Only an email that failed"):
        rules.check_retryable("accepted", NOW, False, False, NOW)
    with pytest.raises(InvalidTransition, match="Only an email that failed"):
        rules.check_retryable("sending", NOW - timedelta(minutes=1), False, False, NOW)
    with pytest.raises(InvalidTransition, match="already sent again"):
        rules.check_retryable("failed", NOW, True, False, NOW)


def test_an_email_superseded_by_a_newer_send_is_not_retried():
    with pytest.raises(InvalidTransition, match="newer email"):
        rules.check_retryable("failed", NOW, False, True, NOW)


def test_fresh_links_are_capped_per_window():
    recent = [NOW - timedelta(hours=h) for h in range(rules.FRESH_LINKS_PER_LINK)]
    assert rules.fresh_link_allowed(recent[:-1], NOW)
    assert not rules.fresh_link_allowed(recent, NOW)
    old = [NOW - rules.FRESH_LINK_WINDOW - timedelta(minutes=1)] * 10
    assert rules.fresh_link_allowed(old, NOW)


def test_default_recipients_are_billing_contacts_with_access():
    contacts = [rules.ContactFacts(1, True, True), rules.ContactFacts(2, False, True),
                rules.ContactFacts(3, True, False), rules.ContactFacts(4, True, True)]
    assert rules.pick_recipients(contacts) == [1, 4]
