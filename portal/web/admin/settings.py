"""The MSP's own details and logo. The logo is served publicly: sign-in pages and PDFs show it."""

from __future__ import annotations

from pathlib import Path

from flask import Response, current_app, flash, redirect, render_template, request, url_for

from portal import db
from portal.services import branding
from portal.services.errors import NotFound
from portal.services.settings import get_settings, update_settings
from portal.web.auth.identity import staff_required
from portal.web.refusals import form_refusal

from .forms import ConfirmForm, LogoForm, SettingsForm
from .routes import bp


def _uploads() -> Path:
    return Path(current_app.instance_path) / "uploads"


@bp.route("/settings", methods=["GET", "POST"])
@staff_required
def settings():
    session = db.session()
    form = SettingsForm(obj=get_settings(session))
    if form.validate_on_submit():
        with form_refusal(session, form.form_errors):
            update_settings(session, **form.values())
            flash("Settings saved.", "success")
            return redirect(url_for("admin.settings"))
    return _render(form=form)


def _render(*, form: SettingsForm | None = None, logo_form: LogoForm | None = None):
    return render_template("admin/settings.html", form=form or SettingsForm(obj=get_settings(db.session())),
                           logo_form=logo_form or LogoForm(formdata=None), confirm=ConfirmForm(),
                           max_logo_kb=branding.MAX_LOGO_BYTES // 1024)


@bp.post("/settings/logo")
@staff_required
def settings_logo():
    session = db.session()
    form = LogoForm()
    if form.validate_on_submit():
        # read one byte past the limit: enough to know it is too large without holding a huge upload
        data = form.logo.data.stream.read(branding.MAX_LOGO_BYTES + 1)
        with form_refusal(session, form.logo.errors):
            branding.save_logo(session, _uploads(), data)
            flash("Logo updated.", "success")
            return redirect(url_for("admin.settings"))
    return _render(form=SettingsForm(obj=get_settings(session), formdata=None), logo_form=form)


@bp.post("/settings/logo/remove")
@staff_required
def settings_logo_remove():
    if ConfirmForm().validate_on_submit():
        branding.remove_logo(db.session(), _uploads())
        flash("Logo removed.", "success")
    return redirect(url_for("admin.settings"))


@bp.get("/logo")
def logo():
    """Public on purpose: the logo appears on sign-in pages, emails and PDFs."""
    path = branding.logo_path(db.session(), _uploads())
    if path is None:
        raise NotFound()
    # at most 1 MB, so read it whole rather than hold a file open for the life of the response
    response = Response(path.read_bytes(), mimetype=branding.MIMETYPES[path.suffix.lstrip(".")])
    # the URL stays the same when the logo changes: let browsers keep it but revalidate (cheap 304 by ETag)
    response.headers["Cache-Control"] = "no-cache"
    response.add_etag()
    return response.make_conditional(request)
