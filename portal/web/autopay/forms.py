"""Forms of the autopay pages. Shape checks only; the services (and the domain behind them) decide."""

from __future__ import annotations

import re
from datetime import date

from wtforms import HiddenField, RadioField, SelectChoice, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from portal.domain import autopay as A
from portal.web.agreements.forms import ConsentSignForm
from portal.web.forms import PortalForm
from portal.web.params import parse_int
from portal.web.payments.forms import PayForm


class SetupForm(PayForm):
    """Save a card or bank account. Stripe mode posts only ``confirmation_token`` (made by Stripe.js in setup
    mode); the SANDBOX form posts test numbers. ``nonce`` makes the gateway call idempotent (a replayed form
    saves nothing twice). ``attempt`` of the pay form does not apply."""

    attempt = HiddenField(validators=[Optional()])
    bank_verification = RadioField(
        "Verify the bank account", default="automatic", validators=[Optional()],
        choices=[SelectChoice("automatic", "Instantly, through online banking"),
                 SelectChoice("microdeposits", "With two small deposits (1 to 2 business days)")])

    def expiry(self) -> tuple[int, int] | None:
        match = re.fullmatch(r"(\d{1,2})\s*/\s*(\d{2}|\d{4})", self.card_expiry.data or "")
        if not match:
            return None
        year = int(match[2]) if len(match[2]) == 4 else 2000 + int(match[2])
        return int(match[1]), year

    def sandbox_card_or_bank(self, today: date) -> tuple[str, str, tuple[int, int] | None] | None:
        details = self.sandbox_details(today)
        if details is None:
            return None
        return details[0], details[1], self.expiry() if details[0] == "card" else None


class CompleteSetupForm(PortalForm):
    """Hands the setup id back once the bank's 3-D Secure challenge is over. Only a claim: the service reads the
    setup from the gateway and checks whose it is."""

    setup_intent = HiddenField(validators=[DataRequired("This form is incomplete. Please reload the page."),
                                           Length(max=255)])


_CHOOSE_OUTCOME = "Choose to complete or fail the authentication."


class SandboxAuthenticationForm(CompleteSetupForm):
    """SANDBOX: the stand-in for the bank's challenge; its two buttons post ``outcome``."""

    outcome = StringField(validators=[DataRequired(_CHOOSE_OUTCOME), AnyOf(("pass", "fail"), message=_CHOOSE_OUTCOME)])


class VerifyForm(PortalForm):
    amount_1 = StringField("First deposit (cents)", validators=[Optional(), Length(max=4)])
    amount_2 = StringField("Second deposit (cents)", validators=[Optional(), Length(max=4)])
    descriptor_code = StringField("Or the 6-character code", validators=[Optional(), Length(max=10)])

    def amounts(self) -> tuple[int, int] | None:
        a, b = (self.amount_1.data or "").strip(), (self.amount_2.data or "").strip()
        first, second = parse_int(a, minimum=0, maximum=9999), parse_int(b, minimum=0, maximum=9999)
        return (first, second) if first is not None and second is not None else None


class AuthorizeForm(ConsentSignForm):
    role = RadioField("Use this method as", default=A.DEFAULT, validators=[DataRequired("Choose how to use it.")],
                      choices=[SelectChoice(A.DEFAULT, "My autopay method"),
                               SelectChoice(A.FALLBACK, "The fallback, if my autopay method fails")])


class RoleForm(PortalForm):
    role = RadioField(choices=[SelectChoice(A.DEFAULT, "Default"), SelectChoice(A.FALLBACK, "Fallback"),
                               SelectChoice(A.OTHER, "Neither")], validators=[DataRequired("Choose a role.")])


class ActionForm(PortalForm):
    """A button that changes something: only the CSRF token."""
