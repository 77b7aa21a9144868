"""Forms of the enforcement pages. Shape checks only; the services (and the domain behind them) decide."""

from __future__ import annotations

from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.domain import charge_authorizations as C
from portal.domain.notices import KIND_TITLES, NoticeKind
from portal.web.agreements.forms import ConsentSignForm
from portal.web.forms import PortalForm


class ChargeAuthorizationSignForm(ConsentSignForm):
    """Sign a one-off charge authorization."""


class NoticeForm(PortalForm):
    kind = SelectField("Notice", choices=[SelectChoice(k.value, KIND_TITLES[k]) for k in NoticeKind],
                       default=NoticeKind.REMOTE_DISABLE.value)


class WithdrawForm(PortalForm):
    reason = TextAreaField("Reason", validators=[DataRequired("Give a reason: it is recorded and the client is told."),
                                                 Length(max=500)])


class ChargeAuthorizationForm(PortalForm):
    amount = StringField("Amount to charge", validators=[DataRequired("Enter the amount to charge."),
                                                         Length(max=20)])
    reason = TextAreaField("What it is for", description="Shown to the client, e.g. the urgent service asked for.",
                           validators=[Optional(), Length(max=500)])
    valid_days = IntegerField("Can be signed for (days)", default=C.DEFAULT_VALID_DAYS,
                              validators=[DataRequired("Enter how many days it stays open."),
                                          NumberRange(1, C.MAX_VALID_DAYS,
                                                      f"From 1 to {C.MAX_VALID_DAYS} days.")])


class DeliverableForm(PortalForm):
    file = FileField("File", validators=[FileRequired("Choose a file to attach.")])
