"""Billing states have one spelling (the USPS code), so a state that bans card surcharges is found however the
client's record spells it."""

from decimal import Decimal

import pytest

from portal.domain.payments import parse_regions, region_blocked, surcharge_for
from portal.domain.regions import US_STATES, normalize_region


@pytest.mark.parametrize(("typed", "code"), [
    ("Connecticut", "CT"), ("connecticut ", "CT"), ("CT", "CT"), (" ct", "CT"), ("New  York", "NY"),
    ("new york", "NY"), ("State of Maine", "ME"), ("District of Columbia", "DC"), ("Washington, D.C.", "DC"),
    ("Puerto Rico", "PR"),
])
def test_a_us_state_name_or_code_becomes_its_code(typed, code):
    assert normalize_region(typed) == code


@pytest.mark.parametrize(("typed", "kept"), [("Ontario", "Ontario"), ("  Bavaria ", "Bavaria"), ("", ""),
                                             (None, ""), ("Conn.", "Conn.")])
def test_anything_else_is_kept_as_typed_but_trimmed(typed, kept):
    assert normalize_region(typed) == kept


def test_every_state_name_maps_back_to_its_code():
    assert all(normalize_region(name) == code for code, name in US_STATES.items())


def _surcharge(region: str, blocked: str) -> int:
    return surcharge_for(10_000, Decimal("3"), method_type="card", card_funding="credit", client_region=region,
                         blocked_regions=parse_regions(blocked)).cents


def test_a_client_in_connecticut_spelled_out_is_not_surcharged():
    assert _surcharge("Connecticut", "CT, MA") == 0
    assert _surcharge("CT", "Connecticut") == 0
    assert _surcharge("Ohio", "CT, MA") == 300


def test_the_pay_page_and_the_charge_agree_on_a_blocked_state():
    assert region_blocked("connecticut", parse_regions("CT")) and region_blocked("CT", ["Connecticut"])
    assert not region_blocked("Ohio", parse_regions("CT, MA")) and not region_blocked("", parse_regions("CT"))
