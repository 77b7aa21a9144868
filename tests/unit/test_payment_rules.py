"""Rules of online payments (portal/domain/payments.py): state machine, surcharges, what a client may pay."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import payments as rules
from portal.domain.errors import AllocationError, DomainError, InvalidAmount, InvalidTransition
from portal.domain.ledger import OpenItem

ALL = sorted(rules._RANK)

# --- state machine -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "reported", "expected"), [
    ("created", "processing", "processing"),
    ("created", "succeeded", "succeeded"),
    ("unknown", "failed", "failed"),
    ("processing", "succeeded", "succeeded"),
    ("processing", "failed", "failed"),
    ("requires_action", "succeeded", "succeeded"),
    ("requires_action", "canceled", "canceled"),
    ("pending", "requires_action", "requires_action"),
    # late or duplicated reports never move a payment backwards
    ("succeeded", "processing", "succeeded"),
    ("succeeded", "failed", "succeeded"),
    ("failed", "succeeded", "failed"),
    ("canceled", "processing", "canceled"),
    ("processing", "requires_action", "processing"),
    ("processing", "processing", "processing"),
])
def test_advance_moves_only_forward(current, reported, expected):
    assert rules.advance(current, reported) == expected


@given(st.lists(st.sampled_from(["processing", "succeeded", "requires_action"]), min_size=1, max_size=8))
def test_any_order_of_the_same_events_ends_in_the_same_state(events):
    # succeeded, processing and requires_action reports for one ACH payment, delivered in any order and repeated
    state = "created"
    for event in events:
        state = rules.advance(state, event)
    expected = "succeeded" if "succeeded" in events else ("processing" if "processing" in events else
                                                          "requires_action")
    assert state == expected


@given(st.sampled_from(sorted(rules.FINAL)), st.lists(st.sampled_from(ALL), max_size=6))
def test_final_states_absorb_everything(final, later):
    state = final
    for reported in later:
        state = rules.advance(state, reported)
    assert state == final


def test_unknown_statuses_are_refused():
    with pytest.raises(InvalidTransition):
        rules.advance("created", "exploded")
    with pytest.raises(InvalidTransition):
        rules.attempt_status_for("requires_capture")


def test_gateway_statuses_map_to_ours():
    assert [rules.attempt_status_for(s) for s in ("succeeded", "processing", "requires_action", "failed",
                                                  "canceled")] == ["succeeded", "processing", "requires_action",
                                                                   "failed", "canceled"]


def test_ledger_status_exists_only_once_money_is_on_its_way():
    assert rules.payment_status_for("created") is None
    assert rules.payment_status_for("unknown") is None
    assert rules.payment_status_for("requires_action") is None
    assert rules.payment_status_for("failed") == "failed"
    assert rules.payment_status_for("processing") == "processing"
    assert rules.payment_status_for("succeeded") == "succeeded"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"refunded_cents": 0, "open_dispute": False}, "succeeded"),
    ({"refunded_cents": 400, "open_dispute": False}, "partially refunded"),
    ({"refunded_cents": 1000, "open_dispute": False}, "refunded"),
    ({"refunded_cents": 0, "open_dispute": True}, "disputed"),
    ({"refunded_cents": 1000, "open_dispute": False, "lost_dispute": True}, "dispute lost"),
])
def test_display_state(kwargs, expected):
    assert rules.display_state("succeeded", amount_cents=1000, **kwargs) == expected
    assert rules.display_state("processing", amount_cents=1000, **kwargs) == "processing"


def test_a_closed_dispute_never_reopens():
    assert rules.advance_dispute(None, "needs_response") == "needs_response"
    assert rules.advance_dispute("needs_response", "under_review") == "under_review"
    assert rules.advance_dispute("under_review", "lost") == "lost"
    assert rules.advance_dispute("lost", "needs_response") == "lost"
    assert rules.advance_dispute("won", "under_review") == "won"
    assert rules.is_open_dispute("warning_needs_response") and not rules.is_open_dispute("won")


# --- surcharges --------------------------------------------------------------------------------------------------

THREE = Decimal("3")


def surcharge(base=10_000, rate=THREE, method="card", funding="credit", region="NY", blocked=()):
    return rules.surcharge_for(base, rate, method_type=method, card_funding=funding, client_region=region,
                               blocked_regions=blocked)


def test_credit_cards_are_surcharged():
    quote = surcharge()
    assert quote.applies and quote.cents == 300 and quote.rate == THREE


@pytest.mark.parametrize("funding", ["debit", "prepaid", "unknown", None])
def test_debit_prepaid_and_unknown_cards_are_never_surcharged(funding):
    assert surcharge(funding=funding).cents == 0


def test_bank_payments_are_never_surcharged():
    quote = surcharge(method="us_bank_account", funding=None)
    assert quote.cents == 0 and "ACH" in quote.reason


def test_no_surcharge_in_blocked_billing_states_whatever_the_case():
    assert surcharge(region="ct", blocked=rules.parse_regions("CT, ma")).cents == 0
    assert surcharge(region="MA ", blocked=["ma"]).cents == 0
    assert surcharge(region="NY", blocked=["CT"]).cents == 300


def test_surcharge_off_by_default():
    assert surcharge(rate=Decimal("0")).cents == 0


def test_surcharge_is_capped_even_if_a_larger_rate_reaches_it():
    assert surcharge(rate=Decimal("4.5")).cents == 300


def test_surcharge_rounds_half_up_once():
    assert surcharge(base=12_345, rate=Decimal("2.9")).cents == 358  # 357.995 -> 358
    assert surcharge(base=50, rate=Decimal("1")).cents == 1  # 0.5 -> 1


@pytest.mark.parametrize("text", ["3.01", "4", "-1", "2.555", "NaN"])
def test_surcharge_setting_is_checked(text):
    with pytest.raises(InvalidAmount):
        rules.check_surcharge_percent(Decimal(text))


def test_surcharge_setting_accepts_zero_to_the_cap():
    assert rules.check_surcharge_percent(Decimal("0")) == 0
    assert rules.check_surcharge_percent(Decimal("2.75")) == Decimal("2.75")
    assert rules.check_surcharge_percent(Decimal("3")) == THREE


def test_regions_are_parsed_loosely():
    assert rules.parse_regions(" ct; Ma,\nny ,, ") == frozenset({"CT", "MA", "NY"})
    assert rules.parse_regions("") == frozenset()


@given(st.integers(1, 10**8), st.integers(0, 10**6), st.lists(st.integers(1, 10**8), min_size=1, max_size=6))
def test_refunding_everything_in_parts_returns_exactly_the_surcharge(base, surcharge_cents, parts):
    # scale the parts so they add up to the whole base amount
    total = sum(parts)
    amounts = [base * p // total for p in parts]
    amounts[-1] += base - sum(amounts)
    returned = refunded = 0
    for amount in amounts:
        share = rules.surcharge_refund_cents(surcharge_cents=surcharge_cents, base_cents=base,
                                             refunded_before=refunded, refunding=amount)
        assert share >= 0
        returned += share
        refunded += amount
    assert returned == surcharge_cents


def test_partial_refund_takes_a_proportional_surcharge():
    assert rules.surcharge_refund_cents(surcharge_cents=300, base_cents=10_000, refunded_before=0,
                                        refunding=2_500) == 75
    assert rules.surcharge_refund_cents(surcharge_cents=0, base_cents=10_000, refunded_before=0, refunding=1) == 0


def test_base_part_of_a_charge():
    assert rules.base_part_of_charge(charged_cents=10_300, base_cents=10_000, gateway_cents=10_300) == 10_000
    assert rules.base_part_of_charge(charged_cents=10_300, base_cents=10_000, gateway_cents=5_150) == 5_000
    assert rules.base_part_of_charge(charged_cents=10_000, base_cents=10_000, gateway_cents=99_999) == 10_000


# --- choosing what to pay -------------------------------------------------------------------------------------

ITEMS = [OpenItem(1, 10_000, "INV-1"), OpenItem(2, 25_000, "INV-2"), OpenItem(3, 300, "INV-3")]


def test_full_and_partial_payments_of_several_invoices():
    assert rules.choose_amounts({1: 10_000, 2: 5_000}, ITEMS, partial_minimum_cents=1_000) == {1: 10_000, 2: 5_000}


def test_paying_a_small_balance_in_full_is_allowed_below_the_minimum():
    assert rules.choose_amounts({3: 300}, ITEMS, partial_minimum_cents=1_000) == {3: 300}


def test_a_part_payment_below_the_minimum_is_refused():
    with pytest.raises(InvalidAmount, match=r"at least \$10\.00"):
        rules.choose_amounts({2: 999}, ITEMS, partial_minimum_cents=1_000)


def test_overpayment_is_impossible():
    with pytest.raises(AllocationError, match="more than is owed on INV-1"):
        rules.choose_amounts({1: 10_001}, ITEMS, partial_minimum_cents=1_000)


@pytest.mark.parametrize("amounts", [{}, {9: 100}, {1: 0}, {1: -5}])
def test_bad_choices_are_refused(amounts):
    with pytest.raises(DomainError):
        rules.choose_amounts(amounts, ITEMS, partial_minimum_cents=1_000)


def test_the_total_must_reach_the_card_networks_minimum():
    with pytest.raises(InvalidAmount, match=r"\$0\.50"):
        rules.choose_amounts({3: 40}, [OpenItem(3, 40, "INV-3")], partial_minimum_cents=10)


def test_money_in_flight_is_not_payable_again():
    payable = rules.payable_items(ITEMS, {1: 10_000, 2: 5_000})
    assert payable == [OpenItem(2, 20_000, "INV-2"), OpenItem(3, 300, "INV-3")]
    with pytest.raises(AllocationError):
        rules.choose_amounts({1: 100}, payable, partial_minimum_cents=10)


def test_allocation_on_arrival_is_capped_at_what_is_still_owed():
    # a check for INV-1 arrived while the card payment was on its way: the rest becomes credit
    plan = rules.allocation_on_arrival({1: 10_000, 2: 5_000}, [OpenItem(1, 4_000), OpenItem(2, 25_000)])
    assert plan == {1: 4_000, 2: 5_000}
    assert rules.allocation_on_arrival({1: 10_000}, []) == {}


def test_the_domain_module_is_pure():
    tree = ast.parse(Path(rules.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in {"flask", "sqlalchemy", "stripe", "portal"}}
