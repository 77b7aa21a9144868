"""Forms of the client's order pages: the deposit agreement's signing form (the signing rules live in the service)."""

from __future__ import annotations

from wtforms import BooleanField
from wtforms.validators import DataRequired

from portal.web.agreements.forms import SignForm


class AcceptDepositForm(SignForm):
    consent = BooleanField(validators=[DataRequired("Please agree to do business electronically first.")])
