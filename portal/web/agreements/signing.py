"""The contact side: the client's agreements, and the signing flow of one agreement in steps
(consent → read and acknowledge → sign). The page shows the step the service says the contact is at; each step
is a POST that the service checks again, so skipping a page in the browser skips nothing. A step the service
refuses (out of order, or the invitation closed meanwhile) always answers the same way: 400, the page of the
step the contact is really at, with the reason above it.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask import session as web_session
from flask_login import current_user

from portal import db
from portal.domain import evidence
from portal.domain.errors import DomainError
from portal.domain.terms import CLAUSE_KEYS
from portal.models import Agreement
from portal.services import agreements as svc
from portal.services.scope import ClientScope
from portal.web.auth.identity import contact_required
from portal.web.runtime import runtime

from .common import pdf_response, request_meta
from .forms import AcknowledgeForm, ConsentForm, DeclineForm, SignForm
from .routes import bp

REF = "<reference>"  # AGR-XXXX-XXXX-XXXX; anything else is simply not found


def _agreement(reference: str) -> Agreement:
    """This client's agreement, or 404 whoever else's it is."""
    return ClientScope(db.session(), current_user.client_id).agreement(reference.upper())


def _to_sign_page(agreement: Agreement, **url_args: str):
    return redirect(url_for("agreements.sign_page", reference=agreement.reference, **url_args))


@bp.get("/agreements/")
@contact_required
def mine():
    return render_template("agreements/list.html",
                           agreements=svc.client_agreements(db.session(), current_user.client_id))


@bp.get("/agreements/terms")
@contact_required
def current_terms():
    agreement = svc.terms_for_contact(db.session(), runtime(), current_user.record, meta=request_meta())
    if agreement is None:
        flash("There are no payment terms to sign at the moment.", "success")
        return redirect(url_for("client.dashboard"))
    return _to_sign_page(agreement)


@bp.get(f"/agreements/{REF}")
@contact_required
def sign_page(reference: str):
    return _render(_agreement(reference))


def _render(agreement: Agreement, *, consent_form: ConsentForm | None = None, ack_form: AcknowledgeForm | None = None,
            sign_form: SignForm | None = None, status: int = 200):
    """The page for wherever this contact stands; a form passed in is re-shown with its errors."""
    session, contact = db.session(), current_user.record
    context: dict = {"agreement": agreement, "decline_form": DeclineForm(), "step": agreement.status}
    if agreement.status == svc.OPEN:
        meta, rt = request_meta(), runtime()
        svc.record_open(session, rt, agreement, contact, meta=meta)
        state = svc.progress(session, agreement, contact)
        context["step"] = state.step
        if state.step == "consent":
            disclosure, disclosure_html = svc.disclosure_document(session)
            context.update(disclosure=disclosure, disclosure_html=disclosure_html,
                           consent_statement=svc.consent_statement(session),
                           consent_form=consent_form or ConsentForm(disclosure_version_id=str(disclosure.id)))
        else:
            try:
                svc.record_view(session, rt, agreement, contact, meta=meta)
            except DomainError as e:  # e.g. a newer version was published a moment ago
                flash(str(e), "error")
                return redirect(url_for("agreements.current_terms"))
            previous = svc.previous_signed(session, agreement)
            context.update(
                previous=previous,
                diff=evidence.line_diff(previous.document_text, agreement.document_text) if previous else None,
                diff_html=evidence.to_html,
                statements=svc.clause_statements(agreement),
                acknowledged=state.acknowledged,
                ack_form=ack_form or AcknowledgeForm(),
                authority_statement=svc.authority_statement(agreement),
                sign_form=sign_form or SignForm(document_sha256=agreement.document_sha256, full_name=contact.name,
                                                title=contact.title),
            )
    return render_template("agreements/sign.html", **context), status


def _refused(agreement: Agreement, error: DomainError, **forms):
    """One answer for every refused step: nothing recorded, 400, the reason shown above the page of the step the
    contact is really at (a form passed in keeps what was typed)."""
    db.session().rollback()
    flash(str(error), "error")
    return _render(db.session().get(Agreement, agreement.id), status=400, **forms)


@bp.post(f"/agreements/{REF}/consent")
@contact_required
def consent(reference: str):
    agreement = _agreement(reference)
    form = ConsentForm()
    if not form.validate_on_submit():
        return _render(agreement, consent_form=form, status=400)
    try:
        svc.consent(db.session(), runtime(), agreement, current_user.record,
                    disclosure_version_id=int(form.disclosure_version_id.data), meta=request_meta())
    except DomainError as e:
        return _refused(agreement, e)
    return _to_sign_page(agreement)


@bp.post(f"/agreements/{REF}/acknowledge")
@contact_required
def acknowledge(reference: str):
    agreement = _agreement(reference)
    form = AcknowledgeForm()
    if not form.validate_on_submit():
        return _render(agreement, ack_form=form, status=400)
    try:
        svc.acknowledge(db.session(), runtime(), agreement, current_user.record, list(CLAUSE_KEYS),
                        meta=request_meta())
    except DomainError as e:
        return _refused(agreement, e)
    return _to_sign_page(agreement, _anchor="sign")


@bp.post(f"/agreements/{REF}/sign")
@contact_required
def sign(reference: str):
    agreement = _agreement(reference)
    form = SignForm()
    if not form.validate_on_submit():
        # hidden fields have no place to show an error of their own
        if form.document_sha256.errors:
            form.form_errors.append("This page is out of date. Reload it and review the terms again.")
        if form.drawn_signature.errors:
            form.form_errors.append("The drawn signature is too large. Clear it and draw it again.")
        return _render(agreement, sign_form=form, status=400)
    signature = svc.Signature(kind=form.signature_kind.data, typed=form.typed_signature.data or "",
                              drawn_data_url=form.drawn_signature.data or "")
    try:
        svc.sign(db.session(), runtime(), agreement, current_user.record, full_name=form.full_name.data,
                 title=form.title.data, authority_confirmed=form.authority.data, signature=signature,
                 document_sha256=form.document_sha256.data, meta=request_meta())
    except DomainError as e:
        return _refused(agreement, e, sign_form=form)
    flash("Signed. A copy is on its way to your inbox, and you can download it here at any time.", "success")
    if web_session.get("onboarding_return"):  # signing the terms is step 1 of onboarding: back to the next step
        return redirect(web_session["onboarding_return"])
    return _to_sign_page(agreement)


@bp.post(f"/agreements/{REF}/decline")
@contact_required
def decline(reference: str):
    agreement = _agreement(reference)
    form = DeclineForm()
    if not form.validate_on_submit():
        flash("Keep the reason under 2,000 characters.", "error")
        return _to_sign_page(agreement)
    try:
        svc.decline(db.session(), runtime(), agreement, current_user.record, reason=form.reason.data or "",
                    meta=request_meta())
    except DomainError as e:
        return _refused(agreement, e)
    flash("You declined the terms. We will be in touch to talk them through.", "success")
    return _to_sign_page(agreement)


@bp.get(f"/agreements/{REF}/pdf")
@contact_required
def pdf(reference: str):
    agreement = _agreement(reference)
    if agreement.signed_pdf is None:
        return _to_sign_page(agreement)
    return pdf_response(agreement.signed_pdf, svc.pdf_filename(agreement))
