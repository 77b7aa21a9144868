"""Staff pages: the terms templates and their versions, who is on which version, reminders, and one client's
agreements with the evidence timeline (resend, void, download)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectChoice

from portal import db
from portal.clock import today
from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.errors import DomainError
from portal.models import Agreement, Client
from portal.services import agreements as svc
from portal.services import terms
from portal.services.errors import NotFound
from portal.services.settings import get_settings
from portal.web.admin.common import PAGE_SIZE, page_arg
from portal.web.auth.identity import staff_required
from portal.web.params import choice_arg
from portal.web.refusals import flash_refusal
from portal.web.runtime import runtime

from .common import pdf_response, request_meta
from .forms import ActionForm, InviteForm, PublishForm, ResendForm, VoidForm, template_form
from .routes import bp

ID = "int(max=2147483647)"
KIND = "kind"  # terms | esign_disclosure (anything else: 404)


def _kind(kind: str) -> str:
    if kind not in T.TEMPLATE_KINDS:
        raise NotFound()
    return kind


def _client(client_id: int) -> Client:
    client = db.session().get(Client, client_id)
    if client is None:
        raise NotFound()
    return client


def _to_client(client: Client):
    return redirect(url_for("agreements.admin_client", client_id=client.id))


def _to_agreement(agreement: Agreement):
    return redirect(url_for("agreements.admin_agreement", agreement_id=agreement.id))


def _flash_errors(form: FlaskForm) -> None:
    for errors in form.errors.values():
        for message in errors:
            flash(message, "error")


@bp.get("/admin/agreements/")
@staff_required
def admin_overview():
    session = db.session()
    wanted = choice_arg("status", tuple(T.TermsStanding), "")
    # a page at a time: all of an MSP's 10,000 clients in one table took half a second to draw
    counts, page = terms.overview(session, wanted, page_arg(), PAGE_SIZE)
    return render_template("agreements/admin/overview.html", page=page, counts=counts, wanted=wanted,
                           current=terms.current_version(session, T.TERMS), remind_form=ActionForm())


@bp.post("/admin/agreements/remind")
@staff_required
def admin_remind():
    if not ActionForm().validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return redirect(url_for("agreements.admin_overview"))
    with flash_refusal(db.session()):
        run = svc.remind_outstanding(db.session(), runtime(), meta=request_meta())
        flash(f"Reminders sent: {run.sent}. Not sent: {run.failed} failed, {run.skipped} skipped "
              "(no contact with portal access, or reminded in the last 3 days).",
              "error" if run.failed else "success")
    return redirect(url_for("agreements.admin_overview"))


# ---------------------------------------------------------------------------------------------------- templates

def _sample_preview(kind: str, text: str, parameters: dict[str, str]) -> tuple[str, str]:
    """The draft merged with the MSP's details and a sample client, and an error if it cannot be merged."""
    settings = get_settings(db.session())
    variables = T.sample_variables(kind, msp_legal_name=settings.legal_name or settings.name,
                                   msp_email=settings.reply_to or settings.email, net_days=settings.default_net_days,
                                   parameters=parameters, portal_url=runtime().base_url, effective_date=today())
    try:
        return evidence.to_html(evidence.merge(text, variables)), ""
    except DomainError as e:
        return "", str(e)


@bp.route(f"/admin/agreements/templates/<{KIND}>", methods=["GET", "POST"])
@staff_required
def admin_template(kind: str):
    session = db.session()
    kind = _kind(kind)
    template = terms.get_template(session, kind)
    form = template_form(kind, template.draft_text, terms.draft_parameters(template))
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            parameters = {p.name: getattr(form, p.name).data for p in T.PARAMETERS} if kind == T.TERMS else {}
            try:
                terms.save_draft(session, kind, text=form.body.data, parameters=parameters, staff=current_user.record)
                flash("Draft saved. Clients see nothing until you publish it.", "success")
                return redirect(url_for("agreements.admin_template", kind=kind))
            except DomainError as e:  # shown with the form, which keeps what was typed
                session.rollback()
                form.form_errors.append(str(e))
        status = 400
    preview, preview_error = _sample_preview(kind, template.draft_text, terms.draft_parameters(template))
    current = terms.current_version(session, kind)
    published_draft = current is not None and current.sha256 == terms.version_hash(
        template.draft_text, _publishable(kind, terms.draft_parameters(template)))
    return render_template("agreements/admin/template.html", kind=kind, template=template, form=form,
                           publish_form=PublishForm(), preview=preview, preview_error=preview_error,
                           versions=terms.versions(session, kind), current=current, variables=T.variables_for(kind),
                           published_draft=published_draft, parameters=T.PARAMETERS if kind == T.TERMS else ()), status


def _publishable(kind: str, parameters: dict[str, str]) -> dict[str, str]:
    try:
        return T.parse_parameters(parameters) if kind == T.TERMS else {}
    except DomainError:
        return parameters


@bp.post(f"/admin/agreements/templates/<{KIND}>/publish")
@staff_required
def admin_publish(kind: str):
    kind = _kind(kind)
    form = PublishForm()
    if not form.validate_on_submit():
        _flash_errors(form)
        return redirect(url_for("agreements.admin_template", kind=kind))
    with flash_refusal(db.session()):
        version = svc.publish(db.session(), runtime(), kind, staff=current_user.record,
                              summary=form.summary.data or "")
        flash(f"Version {version.number} published. Clients on an older version are marked outdated.", "success")
        return redirect(url_for("agreements.admin_version", version_id=version.id))
    return redirect(url_for("agreements.admin_template", kind=kind))


@bp.get(f"/admin/agreements/versions/<{ID}:version_id>")
@staff_required
def admin_version(version_id: int):
    session = db.session()
    version = terms.get_version(session, version_id)
    if version is None:
        raise NotFound()
    previous = terms.previous_version(session, version)
    diff, changes = terms.compare(previous, version)
    return render_template("agreements/admin/version.html", version=version, previous=previous, diff=diff,
                           changes=changes, parameters=terms.version_parameters(version),
                           labels={p.name: p.label for p in T.PARAMETERS})


# ---------------------------------------------------------------------------------------------------- per client

@bp.get(f"/admin/agreements/clients/<{ID}:client_id>")
@staff_required
def admin_client(client_id: int):
    session = db.session()
    client = _client(client_id)
    form = InviteForm()
    form.contact_id.choices = [SelectChoice(c.id, f"{c.name} <{c.email}>") for c in client.contacts if c.portal_access]
    return render_template("agreements/admin/client.html", client=client, form=form,
                           status=terms.client_status(session, client),
                           agreements=svc.client_agreements(session, client.id),
                           current=terms.current_version(session, T.TERMS))


@bp.post(f"/admin/agreements/clients/<{ID}:client_id>/invite")
@staff_required
def admin_invite(client_id: int):
    session = db.session()
    client = _client(client_id)
    form = InviteForm()
    form.contact_id.choices = [SelectChoice(c.id, c.email) for c in client.contacts if c.portal_access]
    if not form.validate_on_submit():
        flash("Choose a contact of this client who can sign in to the portal.", "error")
        return _to_client(client)
    contact = next(c for c in client.contacts if c.id == form.contact_id.data)
    with flash_refusal(session):
        agreement = svc.invite(session, runtime(), client, contact, meta=request_meta())
        last = svc.events(session, agreement)[-1]
        if last.kind == "email_sent":
            flash(f"Invitation {agreement.reference} emailed to {contact.email}.", "success")
        else:
            flash(f"Invitation {agreement.reference} created, but the email to {contact.email} failed: "
                  f"{svc.event_data(last).get('error', '')}", "error")
        return _to_agreement(agreement)
    return _to_client(client)


@bp.get(f"/admin/agreements/<{ID}:agreement_id>")
@staff_required
def admin_agreement(agreement_id: int):
    session = db.session()
    agreement = svc.get(session, agreement_id)
    rows = svc.events(session, agreement)
    resend_form = ResendForm()
    contacts = [c for c in agreement.client.contacts if c.portal_access]
    return render_template("agreements/admin/agreement.html", agreement=agreement, events=rows,
                           data_of=svc.event_data, labels=svc.EVENT_LABELS,
                           chain=svc.verify_events(session, runtime(), agreement),
                           resend_form=resend_form, void_form=VoidForm(), contacts=contacts)


@bp.post(f"/admin/agreements/<{ID}:agreement_id>/resend")
@staff_required
def admin_resend(agreement_id: int):
    session = db.session()
    agreement = svc.get(session, agreement_id)
    form = ResendForm()
    if not form.validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return _to_agreement(agreement)
    contact = next((c for c in agreement.client.contacts if c.id == form.contact_id.data), None)
    if form.contact_id.data and contact is None:
        flash("Choose a contact of this client.", "error")
        return _to_agreement(agreement)
    with flash_refusal(session):
        delivery = svc.resend(session, runtime(), agreement, meta=request_meta(), contact=contact)
        if delivery.ok:
            flash(f"Invitation sent again to {', '.join(delivery.recipients)}.", "success")
        else:
            flash(f"The email could not be delivered: {delivery.error}", "error")
    return _to_agreement(agreement)


@bp.post(f"/admin/agreements/<{ID}:agreement_id>/void")
@staff_required
def admin_void(agreement_id: int):
    session = db.session()
    agreement = svc.get(session, agreement_id)
    form = VoidForm()
    if not form.validate_on_submit():
        _flash_errors(form)
        return _to_agreement(agreement)
    with flash_refusal(session):
        svc.void(session, runtime(), agreement, reason=form.reason.data, meta=request_meta())
        flash(f"Invitation {agreement.reference} voided.", "success")
    return _to_agreement(agreement)


@bp.get(f"/admin/agreements/<{ID}:agreement_id>/pdf")
@staff_required
def admin_pdf(agreement_id: int):
    agreement = svc.get(db.session(), agreement_id)
    if agreement.signed_pdf is None:
        raise NotFound()
    return pdf_response(agreement.signed_pdf, svc.pdf_filename(agreement))
