"""Forms of the pay pages and the staff's online-payment pages. Shape checks only; the services decide."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

from wtforms import HiddenField, RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from portal.domain.errors import DomainError
from portal.domain.ledger import OpenItem
from portal.domain.money import MAX_CENTS, parse_amount, parse_decimal
from portal.web.forms import PortalForm
from portal.web.params import parse_int


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _digits(value):
    return re.sub(r"[\s-]", "", value) if isinstance(value, str) else value


# --- choosing what to pay ---------------------------------------------------------------------------------------

class ChooseForm(PortalForm):
    """The CSRF token of the choose page; the per-invoice boxes are read with ``parse_choice``."""


def pick_field(invoice_id: int) -> str:
    return f"pay-{invoice_id}"


def amount_field(invoice_id: int) -> str:
    return f"amount-{invoice_id}"


def parse_choice(formdata: Mapping[str, str], items: Sequence[OpenItem]) -> tuple[dict[int, int], dict[int, str]]:
    """The ticked invoices and the amount typed for each (blank: the whole balance); errors by invoice id."""
    chosen: dict[int, int] = {}
    errors: dict[int, str] = {}
    for item in items:
        if not formdata.get(pick_field(item.invoice_id)):
            continue
        raw = (formdata.get(amount_field(item.invoice_id)) or "").strip()
        if not raw:
            chosen[item.invoice_id] = item.balance_cents
            continue
        try:
            chosen[item.invoice_id] = parse_amount(raw)
        except DomainError:
            errors[item.invoice_id] = "Enter an amount such as 125.00."
    return chosen, errors


# --- paying -----------------------------------------------------------------------------------------------------

class PayForm(PortalForm):
    """One payment attempt. ``nonce`` names the payment request and ``attempt`` the try this form makes: posting
    the same form twice names the same attempt, which the server charges only once.

    Stripe mode sends only ``confirmation_token`` (made by Stripe.js in the browser; card data never reaches us).
    SANDBOX mode sends test card or bank numbers, which the server turns into a sandbox token.
    """

    nonce = HiddenField(validators=[DataRequired("This payment form is incomplete. Please reload the page.")])
    attempt = HiddenField(validators=[DataRequired("This payment form is incomplete. Please reload the page.")])
    confirmation_token = HiddenField(filters=(_strip,), validators=[Optional(), Length(max=255)])
    accepted_surcharge = HiddenField(validators=[Optional()])
    method = RadioField("Pay by", choices=[SelectChoice("card", "Card"),
                                           SelectChoice("us_bank_account", "Bank account (ACH)")],
                        default="card", validators=[Optional()])
    card_number = StringField("Card number", filters=(_digits,), validators=[Optional(), Length(max=30)])
    card_expiry = StringField("Expiry (MM/YY)", filters=(_strip,), validators=[Optional(), Length(max=7)])
    card_cvc = StringField("CVC", filters=(_strip,), validators=[Optional(), Length(max=4)])
    routing_number = StringField("Routing number", filters=(_digits,), validators=[Optional(), Length(max=20)])
    account_number = StringField("Account number", filters=(_digits,), validators=[Optional(), Length(max=30)])

    def attempt_number(self) -> int | None:
        return parse_int(self.attempt.data, minimum=1, maximum=9_999)

    def accepted_surcharge_cents(self) -> int | None:
        return parse_int(self.accepted_surcharge.data, minimum=0, maximum=MAX_CENTS)

    def sandbox_details(self, today: date) -> tuple[str, str] | None:
        """(kind, number) typed into the SANDBOX form, or None with the field errors set."""
        if self.method.data == "us_bank_account":
            ok = _check(self.routing_number, r"\d{9}", "Enter the 9-digit routing number.")
            ok &= _check(self.account_number, r"\d{4,17}", "Enter the account number (4 to 17 digits).")
            return ("us_bank_account", self.account_number.data) if ok else None
        ok = _check(self.card_number, r"\d{12,19}", "Enter the card number (12 to 19 digits).")
        ok &= _check(self.card_cvc, r"\d{3,4}", "Enter the 3 or 4 digit security code.")
        ok &= _check_expiry(self.card_expiry, today)
        return ("card", self.card_number.data) if ok else None


def _check(field, pattern: str, message: str) -> bool:
    if not re.fullmatch(pattern, field.data or ""):
        field.errors = [*field.errors, message]
        return False
    return True


def _check_expiry(field, today: date) -> bool:
    match = re.fullmatch(r"(\d{1,2})\s*/\s*(\d{2}|\d{4})", field.data or "")
    if not match or not 1 <= int(match[1]) <= 12:
        field.errors = [*field.errors, "Enter the expiry date as MM/YY."]
        return False
    year = int(match[2]) if len(match[2]) == 4 else 2000 + int(match[2])
    if (year, int(match[1])) < (today.year, today.month):
        field.errors = [*field.errors, "This card has expired."]
        return False
    return True


# --- staff ----------------------------------------------------------------------------------------------------

class OnlineRefundForm(PortalForm):
    nonce = HiddenField(validators=[DataRequired("This form is incomplete. Please reload the page."),
                                    Length(max=64)])
    amount = StringField("Amount to refund", filters=(_strip,), validators=[DataRequired("Enter the amount.")])
    reason = TextAreaField("Reason", filters=(_strip,),
                           validators=[DataRequired("Say why the money is refunded."), Length(max=2000)])

    def amount_cents(self) -> int | None:
        try:
            return parse_amount(self.amount.data or "")
        except DomainError as e:
            self.amount.errors = [*self.amount.errors, str(e)]
            return None


class PaymentSettingsForm(PortalForm):
    surcharge_percent = StringField(
        "Credit card surcharge (%)", filters=(_strip,), validators=[DataRequired("Enter 0 to turn it off.")],
        description="Credit cards only, never debit, prepaid or bank payments. 0 turns it off; at most 3.")
    blocked_regions = StringField(
        "No surcharge for clients billed in", filters=(_strip,), validators=[Length(max=1000)],
        description="States, by code or name, separated by commas (e.g. CT, Massachusetts).")
    partial_minimum = StringField(
        "Smallest part payment", filters=(_strip,), validators=[DataRequired("Enter an amount.")],
        description="Clients may pay part of an invoice, but no less than this (the full balance is always allowed).")

    def surcharge(self) -> Decimal | None:
        try:
            return parse_decimal(self.surcharge_percent.data or "", field="Surcharge")
        except DomainError as e:
            self.surcharge_percent.errors = [*self.surcharge_percent.errors, str(e)]
            return None

    def minimum_cents(self) -> int | None:
        try:
            return parse_amount(self.partial_minimum.data or "")
        except DomainError as e:
            self.partial_minimum.errors = [*self.partial_minimum.errors, str(e)]
            return None

    def validate_blocked_regions(self, field) -> None:
        if field.data and not re.fullmatch(r"[A-Za-z0-9 ,;.-]*", field.data):
            raise ValidationError("Use state codes separated by commas.")
