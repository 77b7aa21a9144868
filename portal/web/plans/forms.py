"""Plan forms: a client's payment toward a plan, and a check (or wire) the admin records toward one. They check the
shape of the input; what a payment may be is the services' decision."""

from __future__ import annotations

from wtforms import DateField, HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from portal.domain.errors import DomainError
from portal.domain.money import check_amount, parse_amount
from portal.web.forms import PortalForm

PAY_KINDS = ("next", "amount", "payoff")
CHECK_METHODS = [SelectChoice(value, label) for value, label in (
    ("check", "Check"), ("wire", "Wire transfer"), ("ach", "ACH / bank transfer"), ("cash", "Cash"),
    ("other", "Other"))]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _cents(field) -> int | None:
    try:
        cents = check_amount(parse_amount(field.data or ""))
    except DomainError as e:
        field.errors = [*field.errors, str(e)]
        return None
    if cents <= 0:
        field.errors = [*field.errors, "Enter an amount above zero."]
        return None
    return cents


class PlanPayForm(PortalForm):
    kind = HiddenField(validators=[AnyOf(PAY_KINDS, message="Choose what to pay.")])
    amount = StringField("Amount", filters=(_strip,), validators=[Optional(), Length(max=20)])

    def amount_cents(self) -> int | None:
        if not self.amount.data:
            self.amount.errors = [*self.amount.errors, "Enter the amount to pay."]
            return None
        return _cents(self.amount)


class PlanCheckForm(PortalForm):
    amount = StringField("Amount received", filters=(_strip,),
                         validators=[DataRequired("Enter the amount."), Length(max=20)])
    method = SelectField("Method", choices=CHECK_METHODS, default="check")
    received_on = DateField("Received on", validators=[Optional()], description="Blank: today.")
    reference = StringField("Reference", filters=(_strip,), validators=[Length(max=100)],
                            description="Check number, wire reference ...")
    memo = TextAreaField("Memo", validators=[Length(max=2000)])

    def amount_cents(self) -> int | None:
        return _cents(self.amount)
