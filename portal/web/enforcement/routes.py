"""Client pages of enforcement: the formal notice (linked from its email; opening it is recorded on the terms'
evidence chain), the banner while a notice is live, the charge-authorization signing page (which charges at once),
and deliverable downloads (released once the invoice is paid with settled money).

Every id is looked up within the signed-in contact's client: another client's is 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from portal import db
from portal.domain import charge_authorizations as C
from portal.domain import deliverables as D
from portal.domain import notices as N
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.extensions import limiter
from portal.models import EnforcementNotice, Invoice
from portal.services import agreements
from portal.services.enforcement import charge_authorizations, deliverables, notices
from portal.services.errors import NotFound
from portal.web.agreements.common import request_meta
from portal.web.auth.identity import contact_required
from portal.web.runtime import runtime

from .forms import ChargeAuthorizationSignForm

bp = Blueprint("enforcement", __name__)


@bp.app_template_global("my_live_notices")
def my_live_notices() -> list[EnforcementNotice]:
    """For the portal banner: the signed-in contact's own client's live notices."""
    if not current_user.is_authenticated or not current_user.is_contact:
        return []
    return notices.live_notices(db.session(), current_user.client_id)


@bp.app_template_global("invoice_deliverables")
def invoice_deliverables(invoice: Invoice) -> tuple[list, bool]:
    """The files attached to an invoice and whether they are released (for the client's and the staff's page)."""
    session = db.session()
    return deliverables.of_invoice(session, invoice.id), deliverables.released(session, invoice)


@bp.get("/notices/<public_id>", endpoint="notice")
@contact_required
def notice_page(public_id: str):
    try:
        notice = notices.record_opening(db.session(), runtime(), current_user.record, public_id, request_meta())
    except NotFound:
        abort(404)
    return render_template("enforcement/notice.html", notice=notice, title=N.KIND_TITLES[N.NoticeKind(notice.kind)],
                           equipment=N.equipment_from_json(notice.equipment),
                           live=notice.status == N.NoticeStatus.ISSUED)


@bp.route("/authorizations/<public_id>", methods=["GET", "POST"], endpoint="charge_authorization")
@contact_required
@limiter.limit("30 per hour", methods=["POST"])
def charge_authorization(public_id: str):
    session = db.session()
    rt = runtime()
    try:
        row = charge_authorizations.for_contact(session, current_user.record, public_id)
    except NotFound:
        abort(404)
    form = ChargeAuthorizationSignForm()
    status = 200
    if form.validate_on_submit():
        signed = form.signed_by()
        try:
            outcome = charge_authorizations.sign(session, rt, current_user.record, public_id, signed,
                                                 meta=request_meta())
        except NotFound:
            abort(404)
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            if outcome.attempt is None:
                flash("Signed. Enter the card to charge now.", "success")
                return redirect(url_for("payments.checkout", public_id=outcome.request.public_id), 303)
            if outcome.charged:
                flash("Signed and charged. Thank you: your account is updated.", "success")
            return redirect(url_for("enforcement.charge_authorization", public_id=public_id), 303)
        status = 400
    elif request.method == "POST":
        status = 400
    row = charge_authorizations.for_contact(session, current_user.record, public_id)
    shown = charge_authorizations.shown_status(row)
    card = charge_authorizations.card_on_file(session, rt, row.client_id)
    document = None
    if shown == C.ChargeAuthorizationStatus.SENT:
        charge_authorizations.ensure_published(session)
        document = charge_authorizations.document(session, rt, row, card)
        form.document_sha256.data = document.sha256
    attempt = None
    if row.request_id is not None:
        row = charge_authorizations.sync(session, rt, row.id)
        shown = row.status
        attempt = charge_authorizations.latest_attempt(session, row)
    return render_template("enforcement/charge_authorization.html", authorization=row, shown=shown, form=form,
                           document=document, card=card, attempt=attempt, rules=rules,
                           labels=C.LABELS, consent_statement=agreements.consent_statement(session),
                           disclosure=agreements.disclosure_document(session)[1] if document else None), status


@bp.get("/invoices/<int:invoice_id>/files/<int:deliverable_id>", endpoint="download")
@contact_required
@limiter.limit("120 per hour")
def download(invoice_id: int, deliverable_id: int):
    session = db.session()
    try:
        found = deliverables.for_client(session, runtime(), current_user.client_id, invoice_id, deliverable_id)
    except NotFound:
        abort(404)
    except DomainError as e:
        return render_template("enforcement/locked.html", message=str(e), invoice_id=invoice_id,
                               locked=D.LOCKED_MESSAGE), 403
    response = send_file(found.path, mimetype=found.content_type, as_attachment=True, download_name=found.filename,
                         max_age=0, conditional=False, etag=False)
    response.headers["Cache-Control"] = "private, no-store"
    return response
