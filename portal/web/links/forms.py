"""Forms of the magic-link feature. Most are a CSRF token plus where to go back to; the services decide the rest."""

from __future__ import annotations

from wtforms import HiddenField, SelectMultipleField
from wtforms.validators import DataRequired
from wtforms.widgets import CheckboxInput, ListWidget

from portal.web.forms import PortalForm


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ActionForm(PortalForm):
    """A button that changes one thing (revoke, retry, sign out everywhere, issue and send)."""

    next = HiddenField()


class SendInvoiceForm(ActionForm):
    """Who gets the invoice. No choice at all means the client's billing contacts."""

    contact_ids = MultiCheckboxField("Send to", coerce=int)


class BulkSendForm(ActionForm):
    # choices are not fixed (the invoice list may post any ids); the service reports the ones it cannot send
    invoice_ids = MultiCheckboxField(
        "Invoices", coerce=int, validate_choice=False,
        validators=[DataRequired(message="Tick at least one invoice to send.")],
    )


class FreshLinkForm(PortalForm):
    """Asks for a fresh link. Deliberately no email field: it goes only to the address on file."""
