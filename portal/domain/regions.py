"""Billing states as one spelling: the two-letter USPS code. Rules that depend on the client's state (a state
that bans card surcharges, say) compare codes, so "Connecticut", "connecticut " and "CT" must all become "CT"."""

from __future__ import annotations

import re

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan",
    "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas",
    "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington", "WV": "West Virginia",
    "WI": "Wisconsin", "WY": "Wyoming",
    "AS": "American Samoa", "GU": "Guam", "MP": "Northern Mariana Islands", "PR": "Puerto Rico",
    "VI": "U.S. Virgin Islands",
}
_BY_NAME = {re.sub(r"[^a-z]", "", name.lower()): code for code, name in US_STATES.items()}
_BY_NAME.update({"virginislands": "VI", "usvirginislands": "VI", "washingtondc": "DC"})


def normalize_region(text: str | None) -> str:
    """A US state's name or code as its code ("Connecticut" -> "CT", " ct" -> "CT", "Conn." stays as typed);
    anything else (a province, a region abroad) trimmed, with its spaces collapsed, as typed."""
    cleaned = " ".join((text or "").split())
    if cleaned.upper() in US_STATES:
        return cleaned.upper()
    key = re.sub(r"[^a-z]", "", cleaned.lower())
    key = key.removeprefix("stateof")
    return _BY_NAME.get(key, cleaned)
