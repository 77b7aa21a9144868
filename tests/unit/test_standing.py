"""The standing rule (domain.standing): thresholds from the signed terms, what counts as past due, overrides."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal.domain import standing as S
from portal.domain.errors import DomainError

TODAY = date(2026, 3, 16)
SIGNED = S.thresholds_from({"hold_days": "10"}, "AGR-1")


def item(days_past_due: int, cents: int = 10_000, invoice_id: int = 1, **kw) -> S.PastDueItem:
    return S.PastDueItem(invoice_id, f"INV-{invoice_id}", TODAY - timedelta(days=days_past_due), cents, **kw)


@pytest.mark.parametrize(("days", "expected"), [
    (0, S.Standing.GOOD),  # due today is not past due
    (1, S.Standing.GOOD),
    (2, S.Standing.GOOD),
    (3, S.Standing.WARNING),  # hold_days - WARNING_LEAD_DAYS
    (9, S.Standing.WARNING),  # hold_days - 1
    (10, S.Standing.WARNING),  # hold_days: "more than 10 days past due" is not yet
    (11, S.Standing.ON_HOLD),  # hold_days + 1
    (200, S.Standing.ON_HOLD),
])
def test_the_thresholds_come_from_the_signed_terms(days, expected):
    result = S.compute([item(days)], [], SIGNED, TODAY)
    assert result.standing == expected
    assert result.basis == S.StandingBasis.SIGNED_TERMS and result.terms_reference == "AGR-1"
    assert result.hold_days == 10 and result.warning_days == 3


def test_without_signed_terms_the_template_default_applies_and_says_so():
    default = S.thresholds_from(None)
    assert default.hold_days == 15 and default.basis == S.StandingBasis.DEFAULT_TERMS
    assert S.compute([item(15)], [], default, TODAY).standing == S.Standing.WARNING
    held = S.compute([item(16)], [], default, TODAY)
    assert held.standing == S.Standing.ON_HOLD and "default terms" in held.reason
    # a signed agreement whose variables lack the parameter (an old version) falls back the same way
    assert S.thresholds_from({"grace_days": "5"}).basis == S.StandingBasis.DEFAULT_TERMS


def test_what_lifts_the_hold_is_the_balance_past_the_threshold():
    items = [item(30, 5_000, 1), item(5, 7_000, 2), item(1, 9_000, 3), item(-3, 4_000, 4)]
    result = S.compute(items, [], SIGNED, TODAY)
    assert result.standing == S.Standing.ON_HOLD
    assert result.to_lift_cents == 5_000  # paying the 30-day invoice lifts the hold ...
    assert result.to_good_cents == 12_000  # ... the 5-day one must go too for good standing
    assert result.past_due_cents == 21_000  # the invoice not yet due is not past due
    assert result.days_past_due == 30
    assert result.hold_from == TODAY - timedelta(days=30) + timedelta(days=11)
    after_paying = S.compute(items[1:], [], SIGNED, TODAY)
    assert (after_paying.standing, after_paying.to_lift_cents) == (S.Standing.WARNING, 7_000)
    assert S.compute(items[2:], [], SIGNED, TODAY).standing == S.Standing.GOOD


def test_a_current_plan_counts_as_good():
    assert S.compute([item(60, on_current_plan=True)], [], SIGNED, TODAY).standing == S.Standing.GOOD
    both = S.compute([item(60, 1_000, 1, on_current_plan=True), item(20, 2_000, 2)], [], SIGNED, TODAY)
    assert (both.standing, both.to_lift_cents, both.days_past_due) == (S.Standing.ON_HOLD, 2_000, 20)


def test_an_open_promise_covers_what_it_promises():
    assert S.compute([item(20, 5_000, 7)], [S.Promise(7, 5_000)], SIGNED, TODAY).standing == S.Standing.GOOD
    part = S.compute([item(20, 5_000, 7)], [S.Promise(7, 2_000)], SIGNED, TODAY)
    assert (part.standing, part.to_lift_cents) == (S.Standing.ON_HOLD, 3_000)
    # a promise of an amount (no invoice) covers the oldest first
    loose = S.compute([item(20, 5_000, 1), item(4, 5_000, 2)], [S.Promise(None, 5_000)], SIGNED, TODAY)
    assert (loose.standing, loose.days_past_due, loose.to_lift_cents) == (S.Standing.WARNING, 4, 5_000)


def test_an_override_wins_until_its_end_date():
    override = S.Override(S.Standing.GOOD, "Paying by wire this week", TODAY + timedelta(days=2))
    lifted = S.compute([item(30)], [], SIGNED, TODAY, override)
    assert lifted.standing == S.Standing.GOOD and lifted.basis == S.StandingBasis.OVERRIDE
    assert "Paying by wire this week" in lifted.reason and lifted.override_ends_on == override.ends_on
    assert lifted.to_lift_cents == 0 and lifted.past_due_cents == 10_000  # the money is still owed
    assert S.compute([item(32)], [], SIGNED, TODAY + timedelta(days=2), override).standing == S.Standing.GOOD
    after = S.compute([item(33)], [], SIGNED, TODAY + timedelta(days=3), override)
    assert after.standing == S.Standing.ON_HOLD and after.basis == S.StandingBasis.SIGNED_TERMS
    held = S.compute([], [], SIGNED, TODAY, S.Override(S.Standing.ON_HOLD, "Disputed chargeback", TODAY))
    assert held.standing == S.Standing.ON_HOLD


@pytest.mark.parametrize(("standing", "reason", "ends_on", "message"), [
    ("suspended", "x", TODAY, "Choose good, warning or on hold."),
    ("good", "   ", TODAY, "Give a reason"),
    ("good", "x" * 501, TODAY, "500 characters"),
    ("good", "ok", None, "Give an end date"),
    ("good", "ok", TODAY - timedelta(days=1), "in the past"),
    ("good", "ok", TODAY + timedelta(days=91), "at most 90 days"),
])
def test_a_bad_override_is_refused_with_a_clear_message(standing, reason, ends_on, message):
    with pytest.raises(DomainError, match=message):
        S.check_override(standing, reason, ends_on, TODAY)


def test_a_good_override_is_normalized():
    assert S.check_override("on_hold", "  Called,  no answer ", TODAY, TODAY) == (
        S.Standing.ON_HOLD, "Called, no answer", TODAY)
