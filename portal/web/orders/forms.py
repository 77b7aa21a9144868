"""Forms of the client's order pages: the deposit agreement's signing form (the signing rules live in the service)."""

from __future__ import annotations

from portal.web.agreements.forms import ConsentSignForm


class AcceptDepositForm(ConsentSignForm):
    """Sign the deposit agreement."""
