"""Autopay rules (portal/domain/autopay.py) and declines (portal/domain/declines.py): when an invoice is charged,
for how much, on which method, what a decline leads to, and what autopay earns the client."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from portal.domain import autopay as ap
from portal.domain import declines as dc
from portal.domain.autopay import (
    INHERIT,
    AutopayRules,
    ChargeSchedule,
    ClientOverride,
    DueItem,
    Incentive,
    IncentiveKind,
    SavedMethod,
    Scope,
    Skip,
    Timing,
)
from portal.domain.declines import AUTHENTICATION_REQUIRED, HARD, SOFT, FailedAttempt, GiveUp
from portal.domain.errors import DomainError, InvalidAmount

DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
NO_NOTICE = AutopayRules(notice_days=0)


def before(n):
    return ChargeSchedule(Timing.DAYS_BEFORE_DUE, days=n)


def after(n):
    return ChargeSchedule(Timing.DAYS_AFTER_DUE, days=n)


def monthly(day):
    return ChargeSchedule(Timing.DAY_OF_MONTH, day_of_month=day)


# --- when to charge --------------------------------------------------------------------------------------------------


def test_charge_dates_relative_to_the_due_date():
    due = date(2025, 3, 10)
    assert ChargeSchedule().charge_date(due) == due
    assert before(5).charge_date(due) == date(2025, 3, 5)
    assert after(3).charge_date(due) == date(2025, 3, 13)
    assert before(10).charge_date(date(2025, 3, 1)) == date(2025, 2, 19)  # across a month boundary


@pytest.mark.parametrize(("day", "due", "expected"), [
    (15, date(2025, 3, 10), date(2025, 3, 15)),   # later this month
    (15, date(2025, 3, 15), date(2025, 3, 15)),   # the due date itself
    (1, date(2025, 3, 10), date(2025, 4, 1)),     # never before the due date: next month
    (31, date(2025, 2, 3), date(2025, 2, 28)),    # clamped to February's last day
    (31, date(2024, 2, 3), date(2024, 2, 29)),    # leap year
    (30, date(2025, 2, 28), date(2025, 2, 28)),
    (31, date(2025, 4, 1), date(2025, 4, 30)),
    (29, date(2025, 1, 30), date(2025, 2, 28)),   # past the 29th in January: February has no 29th in 2025
    (5, date(2025, 12, 20), date(2026, 1, 5)),    # over the year end
])
def test_fixed_day_of_month_clamps_to_the_month_end(day, due, expected):
    assert monthly(day).charge_date(due) == expected


@given(DAYS, st.integers(min_value=1, max_value=31))
def test_fixed_day_is_the_first_matching_day_on_or_after(start, day):
    result = ap.next_day_of_month(start, day)
    last = calendar.monthrange(result.year, result.month)[1]
    assert result >= start
    assert result.day == min(day, last)
    assert (result - start).days <= 31
    # no earlier day qualifies
    probe = start
    while probe < result:
        assert probe.day != min(day, calendar.monthrange(probe.year, probe.month)[1])
        probe += timedelta(days=1)


@given(DAYS, st.integers(min_value=1, max_value=ap.MAX_OFFSET_DAYS))
def test_offsets_move_the_charge_exactly_that_many_days(due, n):
    assert (due - before(n).charge_date(due)).days == n
    assert (after(n).charge_date(due) - due).days == n


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"timing": Timing.DAY_OF_MONTH, "day_of_month": 0}, "between 1 and 31"),
    ({"timing": Timing.DAY_OF_MONTH, "day_of_month": 32}, "between 1 and 31"),
    ({"timing": Timing.DAY_OF_MONTH}, "Choose the day"),
    ({"timing": Timing.DAYS_BEFORE_DUE, "days": 0}, "between 1 and 30 days before"),
    ({"timing": Timing.DAYS_AFTER_DUE, "days": 31}, "between 1 and 30 days after"),
    ({"timing": Timing.DAYS_AFTER_DUE, "days": -2}, "between 1 and 30 days after"),
    ({"timing": Timing.ON_DUE_DATE, "days": 3}, "only applies"),
    ({"timing": Timing.DAYS_AFTER_DUE, "days": 3, "day_of_month": 4}, "only applies"),
    ({"timing": Timing.DAYS_AFTER_DUE, "days": True}, "whole number"),
    ({"timing": Timing.DAY_OF_MONTH, "day_of_month": "15"}, "whole number"),
    ({"timing": "weekly"}, "Choose when"),
])
def test_out_of_range_schedules_are_refused(kwargs, message):
    with pytest.raises(DomainError, match=message):
        ChargeSchedule(**kwargs)


def test_schedule_accepts_the_stored_string_and_describes_itself():
    assert ChargeSchedule("days_after_due", days=2).timing is Timing.DAYS_AFTER_DUE
    assert ChargeSchedule().describe() == "on each invoice's due date"
    assert before(1).describe() == "1 day before each invoice's due date"
    assert after(7).describe() == "7 days after each invoice's due date"
    assert monthly(31).describe() == "on the last day of the month, on or after each invoice's due date"
    assert monthly(30).describe().startswith("on the 30th day of the month (or the month's last day, if shorter)")
    assert monthly(2).describe().startswith("on the 2nd day of the month")
    assert monthly(11).describe().startswith("on the 11th day")
    assert monthly(23).describe().startswith("on the 23rd day")


# --- rules and overrides ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cap_cents": 0}, "at least \\$0.50"),
    ({"cap_cents": -100}, "at least \\$0.50"),
    ({"cap_cents": 49}, "at least \\$0.50"),
    ({"cap_cents": 10**14}, "cannot be more than"),
    ({"cap_cents": 12.5}, "whole number"),
    ({"notice_days": -1}, "between 0 and 30"),
    ({"notice_days": 31}, "between 0 and 30"),
    ({"method_types": frozenset()}, "at least one kind"),
    ({"method_types": frozenset({"card", "paypal"})}, "cards and US bank accounts only"),
    ({"retry_days": (3, 0)}, "between 1 and 30 days"),
    ({"retry_days": (31,)}, "between 1 and 30 days"),
    ({"retry_days": (1,) * 7}, "at most 6 times"),
    ({"retry_days": (30, 30, 1)}, "within 60 days"),
    ({"scope": "some"}, "which invoices"),
    ({"schedule": "on_due_date"}, "Choose when"),
])
def test_out_of_range_rules_are_refused(kwargs, message):
    with pytest.raises(DomainError, match=message):
        AutopayRules(**kwargs)


def test_rules_accept_their_boundaries():
    rules = AutopayRules(cap_cents=50, notice_days=30, retry_days=(30, 30), method_types={"us_bank_account"},
                         scope="not_on_plan")
    assert rules.scope is Scope.NOT_ON_PLAN
    assert rules.method_types == frozenset({"us_bank_account"})
    assert AutopayRules(retry_days=[]).retry_days == ()


def test_a_client_override_replaces_only_what_it_sets():
    msp = AutopayRules(cap_cents=500_00, notice_days=5, required_for_new_clients=True)
    assert ap.rules_for_client(msp, None) is msp
    assert ap.rules_for_client(msp, ClientOverride()) == msp
    client = ap.rules_for_client(msp, ClientOverride(schedule=after(2), locked=True))
    assert client.schedule == after(2)
    assert client.locked
    assert client.cap_cents == 500_00 and client.notice_days == 5 and client.required_for_new_clients
    # None is a real override: this client has no cap even though the MSP has one
    assert ap.rules_for_client(msp, ClientOverride(cap_cents=None)).cap_cents is None
    assert ClientOverride().cap_cents is INHERIT


def test_an_override_is_validated_with_the_rules_it_lands_on():
    with pytest.raises(DomainError, match="at least"):
        ap.rules_for_client(AutopayRules(), ClientOverride(cap_cents=10))
    with pytest.raises(TypeError):  # requiring autopay for new clients is MSP-wide, not per client
        ClientOverride(required_for_new_clients=False)


def test_a_locked_client_cannot_switch_autopay_off():
    ap.check_can_turn_off(AutopayRules())
    with pytest.raises(DomainError, match="locked on your account. Contact Acme IT"):
        ap.check_can_turn_off(AutopayRules(locked=True), "Acme IT")


# --- is it charged today? --------------------------------------------------------------------------------------------


def test_charged_on_the_due_date_after_the_notice():
    rules = AutopayRules(notice_days=3)
    item = DueItem(date(2025, 5, 20), 120_00)
    early = ap.charge_decision(item, rules, date(2025, 5, 10))
    assert (early.skip, early.charge_on, early.notice_on) == (Skip.NOT_DUE_YET, date(2025, 5, 20), date(2025, 5, 17))
    notice_day = ap.charge_decision(item, rules, date(2025, 5, 17))
    assert (notice_day.skip, notice_day.charge_on) == (Skip.NOTICE_PENDING, date(2025, 5, 20))
    sent = DueItem(date(2025, 5, 20), 120_00, notice_sent_on=date(2025, 5, 17))
    assert ap.charge_decision(sent, rules, date(2025, 5, 19)).skip is Skip.NOT_DUE_YET
    due = ap.charge_decision(sent, rules, date(2025, 5, 20))
    assert due.charge_now and due.charge_on == date(2025, 5, 20) and due.charge_cents == 120_00
    assert due.notice_on is None


def test_an_invoice_issued_too_late_for_the_notice_is_charged_later_not_without_warning():
    rules = AutopayRules(notice_days=3)
    item = DueItem(date(2025, 5, 20), 120_00)
    decision = ap.charge_decision(item, rules, date(2025, 5, 19))
    assert (decision.skip, decision.charge_on, decision.notice_on) == (Skip.NOTICE_PENDING, date(2025, 5, 22),
                                                                       date(2025, 5, 19))
    sent_late = DueItem(date(2025, 5, 20), 120_00, notice_sent_on=date(2025, 5, 19))
    assert ap.charge_decision(sent_late, rules, date(2025, 5, 21)).skip is Skip.NOT_DUE_YET
    assert ap.charge_decision(sent_late, rules, date(2025, 5, 22)).charge_now


def test_a_missed_run_catches_up():
    decision = ap.charge_decision(DueItem(date(2025, 5, 20), 80_00), NO_NOTICE, date(2025, 5, 23))
    assert decision.charge_now and decision.charge_on == date(2025, 5, 20)


def test_before_after_and_fixed_day_schedules_decide_the_day():
    today = date(2025, 5, 15)
    item = DueItem(date(2025, 5, 20), 80_00)
    assert ap.charge_decision(item, AutopayRules(schedule=before(5), notice_days=0), today).charge_now
    assert ap.charge_decision(item, AutopayRules(schedule=before(4), notice_days=0), today).skip is Skip.NOT_DUE_YET
    late = ap.charge_decision(item, AutopayRules(schedule=after(2), notice_days=0), today)
    assert late.charge_on == date(2025, 5, 22)
    fixed = ap.charge_decision(item, AutopayRules(schedule=monthly(31), notice_days=0), today)
    assert fixed.charge_on == date(2025, 5, 31)


@pytest.mark.parametrize(("item", "rules", "skip"), [
    (DueItem(date(2025, 5, 1), 0), NO_NOTICE, Skip.NOTHING_OWED),
    (DueItem(date(2025, 5, 1), -5_00), NO_NOTICE, Skip.NOTHING_OWED),
    (DueItem(date(2025, 5, 1), 100_00, in_flight_cents=100_00), NO_NOTICE, Skip.PAYMENT_IN_FLIGHT),
    (DueItem(date(2025, 5, 1), 100_00, disputed=True), NO_NOTICE, Skip.DISPUTED),
    (DueItem(date(2025, 5, 1), 100_00, on_plan=True), AutopayRules(scope=Scope.NOT_ON_PLAN, notice_days=0),
     Skip.ON_PAYMENT_PLAN),
    (DueItem(date(2025, 5, 1), 100_01), AutopayRules(cap_cents=100_00, notice_days=0), Skip.OVER_CAP),
    (DueItem(date(2025, 5, 1), 49), NO_NOTICE, Skip.BELOW_GATEWAY_MINIMUM),
    (DueItem(date(2025, 5, 1), 100_00, in_flight_cents=99_60), NO_NOTICE, Skip.BELOW_GATEWAY_MINIMUM),
])
def test_skip_reasons(item, rules, skip):
    decision = ap.charge_decision(item, rules, date(2025, 5, 10))
    assert decision.skip is skip
    assert not decision.charge_now and not decision.autopay_will_charge


@pytest.mark.parametrize(("item", "rules", "cents"), [
    (DueItem(date(2025, 5, 1), 100_00, on_plan=True), NO_NOTICE, 100_00),  # scope "all" includes plans
    (DueItem(date(2025, 5, 1), 100_00), AutopayRules(cap_cents=100_00, notice_days=0), 100_00),  # cap inclusive
    (DueItem(date(2025, 5, 1), 900_00, approved_over_cap=True), AutopayRules(cap_cents=100_00, notice_days=0),
     900_00),
    (DueItem(date(2025, 5, 1), 100_00, in_flight_cents=40_00), NO_NOTICE, 60_00),  # only what is not on its way
    (DueItem(date(2025, 5, 1), 50), NO_NOTICE, 50),
])
def test_charged_amounts(item, rules, cents):
    decision = ap.charge_decision(item, rules, date(2025, 5, 10))
    assert decision.charge_now and decision.charge_cents == cents and decision.discount_cents == 0


def test_the_cap_is_checked_on_what_is_owed_not_on_the_discounted_charge():
    rules = AutopayRules(cap_cents=100_00, notice_days=0)
    item = DueItem(date(2025, 5, 1), 104_00)  # 5% off would bring it under the cap
    assert ap.charge_decision(item, rules, date(2025, 5, 1), discount_percent=Decimal("5")).skip is Skip.OVER_CAP


def test_a_discount_that_takes_the_charge_below_the_gateway_minimum_skips_it():
    item = DueItem(date(2025, 5, 1), 52)
    decision = ap.charge_decision(item, NO_NOTICE, date(2025, 5, 1), discount_percent=Decimal("5"))
    assert decision.skip is Skip.BELOW_GATEWAY_MINIMUM


def test_retries_follow_the_retry_step():
    item = DueItem(date(2025, 5, 1), 100_00)
    today = date(2025, 5, 4)
    waiting = ap.charge_decision(item, NO_NOTICE, today, retry=dc.RetryStep(date(2025, 5, 6)))
    assert (waiting.skip, waiting.charge_on, waiting.autopay_will_charge) == (Skip.RETRY_SCHEDULED, date(2025, 5, 6),
                                                                              True)
    assert ap.charge_decision(item, NO_NOTICE, today, retry=dc.RetryStep(date(2025, 5, 4))).charge_now
    gave_up = ap.charge_decision(item, NO_NOTICE, today, retry=dc.RetryStep(None, GiveUp.SCHEDULE_EXHAUSTED))
    assert gave_up.skip is Skip.GAVE_UP and not gave_up.autopay_will_charge
    client = ap.charge_decision(item, NO_NOTICE, today, retry=dc.RetryStep(None, GiveUp.AWAITING_CLIENT))
    assert client.skip is Skip.AWAITING_CLIENT
    # a retry needs no second pre-charge notice: the failure email told the client
    notice = AutopayRules(notice_days=10)
    assert ap.charge_decision(item, notice, today, retry=dc.RetryStep(date(2025, 5, 4))).charge_now


@given(due=DAYS, today=DAYS, notice_days=st.integers(min_value=0, max_value=30),
       sent_offset=st.none() | st.integers(min_value=-40, max_value=40),
       schedule=st.sampled_from([ChargeSchedule(), before(7), after(3), monthly(31), monthly(1)]))
def test_never_charged_early_and_never_without_notice(due, today, notice_days, sent_offset, schedule):
    sent = None if sent_offset is None else today + timedelta(days=sent_offset)
    assume(sent is None or sent <= today)  # a notice is sent in the past
    rules = AutopayRules(schedule=schedule, notice_days=notice_days)
    decision = ap.charge_decision(DueItem(due, 100_00, notice_sent_on=sent), rules, today)
    assert decision.charge_on >= schedule.charge_date(due)
    if decision.charge_now:
        assert decision.charge_on <= today
        if notice_days:
            assert sent is not None and (decision.charge_on - sent).days >= notice_days
    else:
        assert decision.charge_on > today and decision.autopay_will_charge
        if decision.skip is Skip.NOTICE_PENDING:
            assert decision.notice_on <= today


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**12),
       st.none() | st.decimals(min_value=Decimal("0.01"), max_value=Decimal("25"), places=2))
def test_what_is_charged_plus_the_discount_is_what_is_payable(balance, in_flight, percent):
    decision = ap.charge_decision(DueItem(date(2025, 5, 1), balance, in_flight_cents=in_flight), NO_NOTICE,
                                  date(2025, 5, 1), discount_percent=percent)
    if decision.charge_now:
        assert decision.charge_cents + decision.discount_cents == balance - in_flight
        assert decision.charge_cents >= ap.GATEWAY_MINIMUM_CENTS


def test_pre_charge_notice_date():
    assert ap.notice_date(date(2025, 3, 2), 3) == date(2025, 2, 27)
    assert ap.notice_date(date(2025, 3, 2), 0) == date(2025, 3, 2)


# --- saved methods and card expiry -----------------------------------------------------------------------------------

VISA = SavedMethod("pm_visa", "card", role="default", exp_month=12, exp_year=2030)
BANK = SavedMethod("pm_bank", "us_bank_account", role="fallback")


def test_default_first_then_fallback():
    assert ap.usable_methods([BANK, VISA], AutopayRules(), date(2025, 1, 1)) == [VISA, BANK]
    assert ap.usable_methods([BANK, VISA], AutopayRules(use_fallback=False), date(2025, 1, 1)) == [VISA]
    spare = SavedMethod("pm_spare", "card", role="other")
    assert ap.usable_methods([spare], AutopayRules(), date(2025, 1, 1)) == []


@pytest.mark.parametrize("unusable", [
    SavedMethod("pm_x", "us_bank_account", role="default", verified=False),  # microdeposits pending
    SavedMethod("pm_x", "card", role="default", authorized=False),  # authorization revoked
    SavedMethod("pm_x", "card", role="default", retired=True),  # hard-declined
    SavedMethod("pm_x", "card", role="default", exp_month=1, exp_year=2025),  # expired before the charge date
])
def test_methods_autopay_must_not_charge(unusable):
    assert ap.usable_methods([unusable, BANK], AutopayRules(), date(2025, 2, 1)) == [BANK]


def test_the_msp_can_refuse_cards_for_autopay():
    assert ap.usable_methods([VISA, BANK], AutopayRules(method_types={"us_bank_account"}), date(2025, 1, 1)) == [BANK]


def test_a_card_expiring_this_month_is_still_charged():
    card = SavedMethod("pm_x", "card", role="default", exp_month=2, exp_year=2025)
    assert ap.usable_methods([card], AutopayRules(), date(2025, 2, 28)) == [card]


@pytest.mark.parametrize(("month", "year", "today", "expected"), [
    (1, 2025, date(2025, 2, 1), ap.Expiry.EXPIRED),
    (1, 2025, date(2025, 1, 31), ap.Expiry.EXPIRING),  # valid through the last day of the month
    (2, 2025, date(2025, 1, 30), ap.Expiry.EXPIRING),  # 29 days left
    (2, 2025, date(2025, 1, 29), ap.Expiry.VALID),  # exactly 30 days left
    (12, 2030, date(2025, 1, 1), ap.Expiry.VALID),
    (2, 2024, date(2024, 2, 29), ap.Expiry.EXPIRING),
])
def test_card_expiry(month, year, today, expected):
    assert ap.card_expiry(month, year, today) is expected


@pytest.mark.parametrize(("month", "year"), [(0, 2025), (13, 2025), (1, 25), (1, 99999)])
def test_impossible_expiry_dates_are_refused(month, year):
    with pytest.raises(DomainError):
        ap.card_expiry(month, year, date(2025, 1, 1))


# --- declines --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("failure_code", "decline_code", "kind"), [
    ("card_declined", "lost_card", HARD),
    ("card_declined", "stolen_card", HARD),
    ("card_declined", "pickup_card", HARD),
    ("card_declined", "fraudulent", HARD),
    ("expired_card", None, HARD),  # Stripe sends some as the error code, with no decline code
    ("card_declined", "expired_card", HARD),
    ("incorrect_number", None, HARD),
    ("card_declined", "do_not_honor", SOFT),
    ("card_declined", "insufficient_funds", SOFT),
    ("processing_error", None, SOFT),
    ("card_declined", "try_again_later", SOFT),
    ("card_declined", "generic_decline", SOFT),
    ("card_declined", None, SOFT),
    ("card_declined", "something_new", SOFT),
    ("card_declined", "authentication_required", AUTHENTICATION_REQUIRED),
    ("authentication_required", None, AUTHENTICATION_REQUIRED),
    ("card_declined", "Lost_Card ", HARD),
])
def test_card_declines(failure_code, decline_code, kind):
    decline = dc.classify(method_type="card", failure_code=failure_code, decline_code=decline_code)
    assert decline.kind is kind
    assert decline.stops_method is (kind is HARD)


def test_a_revoked_card_authorization_voids_the_autopay_authorization():
    revoked = dc.classify(method_type="card", failure_code="card_declined", decline_code="revocation_of_authorization")
    assert revoked.kind is HARD and revoked.revokes_authorization
    lost = dc.classify(method_type="card", failure_code="card_declined", decline_code="lost_card")
    assert not lost.revokes_authorization


@pytest.mark.parametrize(("code", "kind", "revokes"), [
    ("R01", SOFT, False), ("R09", SOFT, False), ("r01", SOFT, False),
    ("R02", HARD, False), ("R03", HARD, False), ("R04", HARD, False), ("R08", HARD, False),
    ("R16", HARD, False), ("R20", HARD, False),
    ("R05", HARD, True), ("R07", HARD, True), ("R10", HARD, True), ("R29", HARD, True),
    ("R99", HARD, False),
    # Stripe's names for the same returns
    ("insufficient_funds", SOFT, False), ("account_closed", HARD, False), ("no_account", HARD, False),
    ("invalid_account_number", HARD, False), ("debit_not_authorized", HARD, True), ("account_frozen", HARD, False),
    ("bank_account_restricted", HARD, False),
    ("payment_method_unknown_problem", HARD, False),  # unknown ACH failures are never re-presented
])
def test_ach_returns(code, kind, revokes):
    decline = dc.classify(method_type="us_bank_account", failure_code=code, decline_code=None)
    assert (decline.kind, decline.revokes_authorization) == (kind, revokes)


def test_ach_return_codes_are_reported_as_r_codes():
    nsf = dc.classify(method_type="us_bank_account", failure_code="insufficient_funds", decline_code=None)
    assert nsf.code == "R01"
    assert dc.classify(method_type="us_bank_account", failure_code=None, decline_code=None).kind is HARD


def attempts(*pairs):
    return [FailedAttempt(on, kind) for on, kind in pairs]


def test_soft_declines_retry_on_the_schedule_then_stop():
    d0 = date(2025, 6, 1)
    first = dc.next_retry(attempts((d0, SOFT)), (3, 5, 7), method_type="card")
    assert first.retry_on == date(2025, 6, 4) and first.retrying
    second = dc.next_retry(attempts((d0, SOFT), (date(2025, 6, 4), SOFT)), (3, 5, 7), method_type="card")
    assert second.retry_on == date(2025, 6, 9)
    # a late run pushes the next retry back instead of crowding it
    late = dc.next_retry(attempts((d0, SOFT), (date(2025, 6, 6), SOFT)), (3, 5, 7), method_type="card")
    assert late.retry_on == date(2025, 6, 11)
    done = dc.next_retry(attempts((d0, SOFT), (date(2025, 6, 4), SOFT), (date(2025, 6, 9), SOFT),
                                  (date(2025, 6, 16), SOFT)), (3, 5, 7), method_type="card")
    assert (done.retry_on, done.gave_up) == (None, GiveUp.SCHEDULE_EXHAUSTED)
    assert dc.next_retry(attempts((d0, SOFT)), (), method_type="card").gave_up is GiveUp.SCHEDULE_EXHAUSTED


def test_hard_and_authentication_declines_are_not_retried():
    d0 = date(2025, 6, 1)
    assert dc.next_retry(attempts((d0, HARD)), (3, 5, 7), method_type="card").gave_up is GiveUp.HARD_DECLINE
    after_soft = attempts((d0, SOFT), (date(2025, 6, 4), HARD))
    assert dc.next_retry(after_soft, (3, 5, 7), method_type="card").gave_up is GiveUp.HARD_DECLINE
    step = dc.next_retry(attempts((d0, AUTHENTICATION_REQUIRED)), (3, 5, 7), method_type="card")
    assert (step.retry_on, step.gave_up) == (None, GiveUp.AWAITING_CLIENT)


def test_ach_is_re_presented_at_most_twice_and_within_180_days():
    d0 = date(2025, 1, 1)
    two = attempts((d0, SOFT), (date(2025, 1, 4), SOFT), (date(2025, 1, 9), SOFT))
    assert dc.next_retry(two, (3, 5, 7), method_type="us_bank_account").gave_up is GiveUp.ACH_RETRY_LIMIT
    assert dc.next_retry(two, (3, 5, 7), method_type="card").retry_on == date(2025, 1, 16)
    stale = attempts((d0, SOFT), (date(2025, 6, 27), SOFT))  # the second try ran very late
    assert dc.next_retry(stale, (3, 5), method_type="us_bank_account").gave_up is GiveUp.ACH_RETRY_LIMIT


def test_bad_retry_input_is_refused():
    with pytest.raises(DomainError, match="no failed attempt"):
        dc.next_retry([], (3,), method_type="card")
    with pytest.raises(DomainError, match="oldest first"):
        dc.next_retry(attempts((date(2025, 1, 5), SOFT), (date(2025, 1, 1), SOFT)), (3, 5), method_type="card")
    with pytest.raises(DomainError, match="between 1 and 30"):
        dc.check_retry_schedule((3, "5"))


@given(start=DAYS, schedule=st.lists(st.integers(min_value=1, max_value=10), max_size=6),
       lateness=st.lists(st.integers(min_value=0, max_value=4), min_size=6, max_size=6),
       method_type=st.sampled_from(["card", "us_bank_account"]))
def test_retry_dates_strictly_increase_and_end(start, schedule, lateness, method_type):
    history = attempts((start, SOFT))
    retries = []
    for late in lateness + [0] * 2:
        step = dc.next_retry(history, schedule, method_type=method_type)
        if not step.retrying:
            assert step.gave_up in (GiveUp.SCHEDULE_EXHAUSTED, GiveUp.ACH_RETRY_LIMIT)
            break
        assert step.retry_on > history[-1].on
        retries.append(step.retry_on)
        history.append(FailedAttempt(step.retry_on + timedelta(days=late), SOFT))  # cron may run late
    else:
        pytest.fail("the retries never ended")
    limit = len(schedule) if method_type == "card" else min(len(schedule), dc.ACH_MAX_RETRIES)
    assert len(retries) == limit
    assert retries == sorted(set(retries))
    if not any(lateness):
        assert all(r <= start + timedelta(days=sum(schedule)) for r in retries)


def test_consecutive_failures():
    assert dc.consecutive_failures([]) == 0
    assert dc.consecutive_failures([False, False, True]) == 0
    assert dc.consecutive_failures([True, False, False]) == 2
    assert dc.consecutive_failures([False, False, False]) == 3


# --- incentives ------------------------------------------------------------------------------------------------------

FIVE = Incentive(IncentiveKind.DISCOUNT, Decimal("5"))


@pytest.mark.parametrize(("balance", "percent", "discount"), [
    (100_00, Decimal("5"), 5_00),
    (10, Decimal("5"), 1),  # 0.5 cent rounds half up
    (9, Decimal("5"), 0),  # 0.45 cent
    (1, Decimal("2.5"), 0),
    (333_33, Decimal("2.5"), 8_33),  # 833.325 cents
    (0, Decimal("5"), 0),
    (123_45, Decimal("25"), 30_86),  # 3086.25
])
def test_autopay_discount(balance, percent, discount):
    split = ap.split_discount(balance, percent)
    assert split.discount_cents == discount
    assert split.charge_cents == balance - discount


@given(st.integers(min_value=0, max_value=10**14 - 1),
       st.decimals(min_value=Decimal("0.01"), max_value=Decimal("25"), places=2))
def test_discount_plus_charge_is_the_balance_exactly(balance, percent):
    split = ap.split_discount(balance, percent)
    assert split.discount_cents + split.charge_cents == balance
    assert 0 <= split.discount_cents <= balance
    exact = (Decimal(balance) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert split.discount_cents == int(exact)  # rounded once, half up


def test_a_negative_balance_is_not_discounted():
    with pytest.raises(InvalidAmount):
        ap.split_discount(-1, Decimal("5"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": IncentiveKind.DISCOUNT}, "above 0"),
    ({"kind": IncentiveKind.DISCOUNT, "discount_percent": Decimal("0")}, "above 0"),
    ({"kind": IncentiveKind.DISCOUNT, "discount_percent": Decimal("-1")}, "above 0"),
    ({"kind": IncentiveKind.DISCOUNT, "discount_percent": Decimal("NaN")}, "above 0"),
    ({"kind": IncentiveKind.DISCOUNT, "discount_percent": 5}, "above 0"),
    ({"kind": IncentiveKind.DISCOUNT, "discount_percent": Decimal("25.01")}, "more than 25%"),
    ({"kind": IncentiveKind.DISCOUNT, "discount_percent": Decimal("2.555")}, "two decimals"),
    ({"kind": IncentiveKind.RATE_LOCK, "discount_percent": Decimal("5")}, "only applies"),
    ({"kind": IncentiveKind.RATE_LOCK, "stop_after_failures": 0}, "1 to 10"),
    ({"kind": IncentiveKind.RATE_LOCK, "stop_after_failures": 11}, "1 to 10"),
    ({"kind": "cashback"}, "Choose an autopay incentive"),
])
def test_out_of_range_incentives_are_refused(kwargs, message):
    with pytest.raises(DomainError, match=message):
        Incentive(**kwargs)


def test_yearly_savings_from_a_full_year_or_annualised():
    assert ap.yearly_savings(FIVE, billed_cents=24_000_00, months_of_history=12) == 1_200_00
    assert ap.yearly_savings(FIVE, billed_cents=24_000_00, months_of_history=30) == 1_200_00  # only 12 count
    assert ap.yearly_savings(FIVE, billed_cents=6_000_00, months_of_history=3) == 1_200_00  # 24,000 a year
    # rounded once: 4 cents over 5 months is 9.6 a year, 5% of that is 0.48 -> 0 (rounding 9.6 to 10 first gives 1)
    assert ap.yearly_savings(FIVE, billed_cents=4, months_of_history=5) == 0
    assert ap.yearly_savings(FIVE, billed_cents=0, months_of_history=12) == 0
    assert ap.yearly_savings(FIVE, billed_cents=5_000_00, months_of_history=0) is None
    assert ap.yearly_savings(Incentive(), billed_cents=5_000_00, months_of_history=12) is None
    lock = Incentive(IncentiveKind.RATE_LOCK)
    assert ap.yearly_savings(lock, billed_cents=12_000_00, months_of_history=12) is None
    assert ap.yearly_savings(lock, billed_cents=12_000_00, months_of_history=12,
                             next_increase_percent=Decimal("7.5")) == 900_00
    with pytest.raises(InvalidAmount):
        ap.yearly_savings(FIVE, billed_cents=-1, months_of_history=12)


@pytest.mark.parametrize(("first", "today", "months"), [
    (None, date(2025, 6, 15), 0),
    (date(2025, 7, 1), date(2025, 6, 15), 0),
    (date(2025, 6, 1), date(2025, 6, 15), 1),
    (date(2025, 1, 31), date(2025, 6, 1), 6),
    (date(2024, 7, 1), date(2025, 6, 30), 12),
    (date(2020, 1, 1), date(2025, 6, 30), 12),
])
def test_months_of_history(first, today, months):
    assert ap.months_of_history(first, today) == months


def test_the_incentive_stops_when_the_client_leaves_or_the_method_keeps_failing():
    assert ap.incentive_stop(FIVE, on_autopay=True, failures_in_a_row=2) is None
    assert ap.incentive_stop(FIVE, on_autopay=True, failures_in_a_row=3) is ap.IncentiveStop.METHOD_FAILING
    assert ap.incentive_stop(FIVE, on_autopay=False, failures_in_a_row=0) is ap.IncentiveStop.LEFT_AUTOPAY
    strict = Incentive(IncentiveKind.RATE_LOCK, stop_after_failures=1)
    assert ap.incentive_stop(strict, on_autopay=True, failures_in_a_row=1) is ap.IncentiveStop.METHOD_FAILING
    assert ap.incentive_stop(Incentive(), on_autopay=False, failures_in_a_row=9) is None


def test_a_rate_lock_waives_the_next_increase_only():
    increases = [date(2026, 1, 1), date(2025, 1, 1), date(2025, 7, 1)]
    assert ap.waived_increase(increases, locked_on=date(2025, 3, 1)) == date(2025, 7, 1)
    assert ap.waived_increase(increases, locked_on=date(2025, 7, 1)) == date(2025, 7, 1)
    assert ap.waived_increase(increases, locked_on=date(2026, 2, 1)) is None
