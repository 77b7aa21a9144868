"""A client's standing with the MSP. Pure standard library."""

from __future__ import annotations

from enum import StrEnum


class ClientStatus(StrEnum):
    """Active clients are billed as usual; on hold ones are kept but flagged; inactive ones drop out of lists."""

    ACTIVE = "active"
    ON_HOLD = "on_hold"
    INACTIVE = "inactive"


CLIENT_STATUSES = tuple(ClientStatus)
