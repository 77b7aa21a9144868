"""A client's standing on the staff client page (the panel and its override form) and on the client's own dashboard
(``my_standing``). The panels are template globals, so the client pages need only an include."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user
from wtforms import DateField, SelectChoice, SelectField, TextAreaField
from wtforms.validators import Length, Optional

from portal import db
from portal.clock import today
from portal.domain.standing import LABELS, Standing, StandingResult
from portal.models import Client, StandingOverride
from portal.services import standing
from portal.web.auth.identity import staff_required
from portal.web.forms import PortalForm
from portal.web.refusals import flash_refusal

from .common import current_staff, get_or_404
from .forms import ConfirmForm

bp = Blueprint("standing_admin", __name__, url_prefix="/admin/clients")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class OverrideForm(PortalForm):
    standing = SelectField("Standing", choices=[SelectChoice(s.value, LABELS[s]) for s in Standing],
                           default=Standing.GOOD.value)
    reason = TextAreaField("Reason", filters=(_strip,), validators=[Length(max=500)])
    ends_on = DateField("Until (inclusive)", validators=[Optional()])


@dataclass(frozen=True)
class StandingPanel:
    result: StandingResult
    history: list[StandingOverride]
    form: OverrideForm
    confirm: ConfirmForm


@bp.app_template_global("client_standing")
def client_standing(client: Client) -> StandingPanel:
    """For the staff client page: the standing, why, what lifts it, and the overrides."""
    session = db.session()
    return StandingPanel(standing.for_client(session, client, today()), standing.override_history(session, client),
                         OverrideForm(formdata=None), ConfirmForm(formdata=None))


@bp.app_template_global("my_standing")
def my_standing() -> StandingResult | None:
    """For the client's dashboard: its own standing (the signed-in contact's client, never another)."""
    if not current_user.is_authenticated or not current_user.is_contact:
        return None
    return standing.for_client(db.session(), current_user.record.client, today())


@bp.post("/<int:client_id>/standing/override")
@staff_required
def override(client_id: int):
    client = get_or_404(Client, client_id)
    form = OverrideForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
    else:
        with flash_refusal(db.session()):
            row = standing.set_override(db.session(), client, standing=form.standing.data, reason=form.reason.data,
                                        ends_on=form.ends_on.data, staff=current_staff(), today=today())
            flash(f"Standing set to {LABELS[Standing(row.standing)].lower()} until {row.ends_on:%B %-d, %Y}.",
                  "success")
    return redirect(url_for("admin.client_detail", client_id=client.id, _anchor="standing"))


@bp.post("/<int:client_id>/standing/override/<int:override_id>/end")
@staff_required
def end_override(client_id: int, override_id: int):
    client = get_or_404(Client, client_id)
    if ConfirmForm().validate_on_submit():
        standing.end_override(db.session(), client, override_id, current_staff())
        flash("Override ended: the standing follows the terms again.", "success")
    return redirect(url_for("admin.client_detail", client_id=client.id, _anchor="standing"))
