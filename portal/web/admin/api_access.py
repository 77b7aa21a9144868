"""Admin > API access: help-desk tokens (created and shown once, revoked, last used), webhook endpoints (added with
a signing secret shown once and revealable, disabled, enabled) and the delivery log with "resend"."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from wtforms import SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from portal import db
from portal.domain.webhooks import EventType, WebhookDeliveryStatus
from portal.services import api_tokens, outbound_webhooks
from portal.services.api_tokens import SCOPE_LABELS
from portal.web import params
from portal.web.auth.identity import staff_required
from portal.web.forms import PortalForm
from portal.web.refusals import flash_refusal, form_refusal

from .common import current_staff, page_arg
from .forms import ConfirmForm

bp = Blueprint("api_admin", __name__, url_prefix="/admin/api")

EVENT_LABELS = {EventType.STANDING_CHANGED: "Client standing changed", EventType.PAYMENT_RECEIVED: "Payment received",
                EventType.AGREEMENT_SIGNED: "Agreement signed", EventType.PLAN_DEFAULTED: "Payment plan defaulted",
                EventType.ORDER_CLEARED: "Equipment order cleared to buy (deposit settled)"}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class TokenForm(PortalForm):
    name = StringField("Name", filters=(_strip,), validators=[DataRequired("Name the token (which system uses it)."),
                                                             Length(max=100)])
    scopes = Checkboxes("Allowed to", choices=[SelectChoice(s.value, label) for s, label in SCOPE_LABELS.items()],
                        default=[api_tokens.Scope.STANDING_READ.value])


class EndpointForm(PortalForm):
    url = StringField("Endpoint URL", filters=(_strip,), validators=[DataRequired("Enter the URL."), Length(max=500)])
    description = StringField("Description", filters=(_strip,), validators=[Length(max=200)])
    events = Checkboxes("Events", default=[EventType.STANDING_CHANGED.value],
                        choices=[SelectChoice(e.value, f"{label} ({e.value})") for e, label in EVENT_LABELS.items()])


def _page(*, token_form=None, endpoint_form=None, created_secret=None, revealed=None, status=200):
    session = db.session()
    response = make_response(render_template(
        "admin/api/index.html", tokens=api_tokens.tokens(session), endpoints=outbound_webhooks.endpoints(session),
        token_form=token_form or TokenForm(formdata=None), endpoint_form=endpoint_form or EndpointForm(formdata=None),
        confirm=ConfirmForm(formdata=None), created_secret=created_secret, revealed=revealed,
        scope_labels=SCOPE_LABELS, event_labels=EVENT_LABELS), status)
    if created_secret or revealed:
        response.headers["Cache-Control"] = "no-store"  # a secret must not stay in a cache or the back button
    return response


@bp.get("/")
@staff_required
def index():
    return _page()


@bp.post("/tokens")
@staff_required
def token_create():
    form = TokenForm()
    if form.validate_on_submit():
        with form_refusal(db.session(), form.form_errors):
            created = api_tokens.create(db.session(), name=form.name.data, scopes=form.scopes.data or [],
                                        staff=current_staff())
            # 201, not a redirect: the secret is shown in this answer only and never stored (not even in a flash)
            return _page(created_secret=("token", created.token.name, created.secret), status=201)
    return _page(token_form=form, status=400)


@bp.post("/tokens/<int:token_id>/revoke")
@staff_required
def token_revoke(token_id: int):
    if ConfirmForm().validate_on_submit():
        token = api_tokens.revoke(db.session(), token_id)
        flash(f"Token “{token.name}” revoked: requests with it now get 401.", "success")
    return redirect(url_for("api_admin.index"))


@bp.post("/endpoints")
@staff_required
def endpoint_create():
    form = EndpointForm()
    if form.validate_on_submit():
        with form_refusal(db.session(), form.form_errors):
            endpoint = outbound_webhooks.add_endpoint(db.session(), url=form.url.data, events=form.events.data or [],
                                                      description=form.description.data or "")
            return _page(created_secret=("endpoint", endpoint.url, endpoint.secret), status=201)
    return _page(endpoint_form=form, status=400)


@bp.post("/endpoints/<int:endpoint_id>/secret")
@staff_required
def endpoint_secret(endpoint_id: int):
    """Reveal the signing secret again (the portal keeps it: it signs with it)."""
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("api_admin.index"))
    return _page(revealed=outbound_webhooks.endpoint(db.session(), endpoint_id))


@bp.post("/endpoints/<int:endpoint_id>/disable")
@staff_required
def endpoint_disable(endpoint_id: int):
    if ConfirmForm().validate_on_submit():
        endpoint = outbound_webhooks.set_active(db.session(), endpoint_id, False)
        flash(f"Endpoint {endpoint.url} disabled: nothing is sent to it until it is enabled.", "success")
    return redirect(url_for("api_admin.index"))


@bp.post("/endpoints/<int:endpoint_id>/enable")
@staff_required
def endpoint_enable(endpoint_id: int):
    if ConfirmForm().validate_on_submit():
        endpoint = outbound_webhooks.set_active(db.session(), endpoint_id, True)
        flash(f"Endpoint {endpoint.url} enabled.", "success")
    return redirect(url_for("api_admin.index"))


@bp.get("/deliveries")
@staff_required
def deliveries():
    endpoint_id = params.id_arg("hook")
    page = outbound_webhooks.delivery_log(db.session(), page=page_arg(), endpoint_id=endpoint_id)
    return render_template("admin/api/deliveries.html", page=page, confirm=ConfirmForm(formdata=None),
                           endpoint_id=endpoint_id)


@bp.post("/deliveries/<int:delivery_id>/resend")
@staff_required
def delivery_resend(delivery_id: int):
    if ConfirmForm().validate_on_submit():
        with flash_refusal(db.session()):
            delivery = outbound_webhooks.resend(db.session(), delivery_id)
            if delivery.status == WebhookDeliveryStatus.DELIVERED:
                flash(f"Event {delivery.event.event_id} delivered again.", "success")
            else:
                flash(f"Event {delivery.event.event_id} resent: the endpoint did not acknowledge it "
                      f"({delivery.last_error}); run-due tries again.", "error")
    return redirect(url_for("api_admin.deliveries"))
