"""A client's standing on the staff client page (the panel, and the override form on a page of its own) and on the
client's own dashboard (``my_standing``). The panels are template globals, so the client pages need only an
include."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from wtforms import DateField, SelectChoice, SelectField, TextAreaField
from wtforms.validators import Length, Optional

from portal import db
from portal.clock import today
from portal.domain.standing import LABELS, Standing, StandingResult
from portal.models import Client
from portal.services import standing
from portal.web.auth.identity import staff_required
from portal.web.forms import PortalForm
from portal.web.refusals import form_refusal

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
    history: list[standing.PastOverride]


@bp.app_template_global("client_standing")
def client_standing(client: Client) -> StandingPanel:
    """For the staff client page: the standing, why, what lifts it, and the overrides. The override form has its own
    page (``override``): building and drawing it was a sixth of the client page's work, on every view, for a form
    rarely used (bench/README.md)."""
    session, on = db.session(), today()
    history = standing.override_history(session, client)
    found = standing.in_force(history, on)  # the history says which is in force: no read of its own
    view = standing.for_clients(session, [client], on, overrides={client.id: found} if found else {})[0]
    return StandingPanel(view.result, history)


@bp.app_template_global("my_standing")
def my_standing() -> StandingResult | None:
    """For the client's dashboard: its own standing (the signed-in contact's client, never another)."""
    if not current_user.is_authenticated or not current_user.is_contact:
        return None
    return standing.for_client(db.session(), current_user.record.client, today())


@bp.route("/<int:client_id>/standing/override", methods=["GET", "POST"])
@staff_required
def override(client_id: int):
    """The override form, with the standing it overrides; shown again with what was typed when it is refused."""
    session = db.session()
    client = get_or_404(Client, client_id)
    form = OverrideForm()
    if form.validate_on_submit():
        with form_refusal(session, form.form_errors):
            row = standing.set_override(session, client, standing=form.standing.data, reason=form.reason.data,
                                        ends_on=form.ends_on.data, staff=current_staff(), today=today())
            flash(f"Standing set to {LABELS[Standing(row.standing)].lower()} until {row.ends_on:%B %-d, %Y}.",
                  "success")
            return redirect(url_for("admin.client_detail", client_id=client.id, _anchor="standing"))
    return render_template("admin/clients/standing_override.html", client=client, form=form,
                           result=standing.for_client(session, client, today()))


@bp.post("/<int:client_id>/standing/override/<int:override_id>/end")
@staff_required
def end_override(client_id: int, override_id: int):
    client = get_or_404(Client, client_id)
    if ConfirmForm().validate_on_submit():
        standing.end_override(db.session(), client, override_id, current_staff())
        flash("Override ended: the standing follows the terms again.", "success")
    return redirect(url_for("admin.client_detail", client_id=client.id, _anchor="standing"))
