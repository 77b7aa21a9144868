"""Sign-in forms. Validation here is about shape only; whether the person may sign in is the services' call."""

from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, Length, Regexp

from portal.web.forms import PortalForm

# Deliberately loose: wtforms' Email() refuses internal and special-use domains (.local, .test) that an MSP's
# clients may really use; a wrong address simply gets no email.
_EMAIL = [DataRequired("Enter your email address."), Length(max=320),
          Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter a valid email address.")]


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value



class StaffLoginForm(PortalForm):
    email = EmailField("Email", validators=_EMAIL, filters=[_strip])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1024)])
    submit = SubmitField("Sign in")


class LinkRequestForm(PortalForm):
    email = EmailField("Email", validators=_EMAIL, filters=[_strip])
    submit = SubmitField("Email me a sign-in link")


class ContactPasswordLoginForm(PortalForm):
    """Shares the /login page with LinkRequestForm, so views build it with prefix="pw" (distinct field names)."""

    email = EmailField("Email", validators=_EMAIL, filters=[_strip])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1024)])
    submit = SubmitField("Sign in with password")


class UseLinkForm(PortalForm):
    """The landing page's button: only a POST (with its CSRF token) uses up the link."""

    submit = SubmitField("Sign in")
