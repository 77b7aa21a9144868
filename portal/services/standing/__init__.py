"""Client standing: computed live from the ledger (so a payment lifts a hold the moment it is booked), the admin's
overrides, and the changes run-due announces.

The rule is domain.standing.compute; this package gathers its inputs for a page of clients in a fixed number of
grouped queries (past-due balances, current plans, open promises, signed terms, overrides), whatever the page size.
"""

from __future__ import annotations

from .changes import StandingChange, record_changes
from .compute import ClientStandingView, as_json, by_external_id, client_page, for_client, for_clients
from .overrides import PastOverride, active_overrides, end_override, in_force, override_history, set_override

__all__ = [
    "ClientStandingView", "PastOverride", "StandingChange", "active_overrides", "as_json", "by_external_id",
    "client_page", "end_override", "for_client", "for_clients", "in_force", "override_history", "record_changes",
    "set_override",
]
