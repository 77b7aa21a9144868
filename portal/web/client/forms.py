"""Client portal forms."""

from wtforms import DateField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from portal.services.staff import MIN_PASSWORD
from portal.web.forms import PortalForm


class PasswordForm(PortalForm):
    password = PasswordField("New password", validators=[
        DataRequired("Enter a password."),
        Length(min=MIN_PASSWORD, max=1024, message=f"Use a password of at least {MIN_PASSWORD} characters."),
    ])
    confirm = PasswordField("Repeat the new password", validators=[
        DataRequired("Repeat the password."), EqualTo("password", message="The two passwords do not match."),
    ])
    submit = SubmitField("Save password")


class StatementRangeForm(PortalForm):
    """Read from the query string (a GET form: nothing changes, so no CSRF token)."""

    class Meta:
        csrf = False

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])
    submit = SubmitField("Show")

    def validate_end(self, field) -> None:
        if self.start.data and field.data and field.data < self.start.data:
            raise ValidationError("The end date must be on or after the start date.")
