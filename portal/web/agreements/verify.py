"""The public verification page: anyone holding a signed PDF or a reference can check it, without signing in.

It answers whether the file matches a stored agreement byte for byte, who signed which version and when (as the
evidence chain recorded it, never as the agreement row says), whether the chain is intact and vouched for by the
portal's key, and which stored field, if any, disagrees with the chain. Rate-limited: references are
unguessable, and this keeps it that way.
"""

from __future__ import annotations

from flask import render_template

from portal import db
from portal.extensions import limiter
from portal.services import agreements as svc
from portal.web.runtime import runtime

from .forms import VerifyReferenceForm, VerifyUploadForm
from .routes import bp

LIMIT = "20 per minute;200 per day"  # one budget per IP for both kinds of lookup
_limited = limiter.shared_limit(LIMIT, scope="agreement-verification")
MAX_PDF = 15 * 1024 * 1024  # under the app's 16 MB request limit


def _page(*, reference_form=None, upload_form=None, result=None, checked=None, status=200):
    return render_template("agreements/verify.html", reference_form=reference_form or VerifyReferenceForm(),
                           upload_form=upload_form or VerifyUploadForm(), result=result, checked=checked,
                           labels=svc.EVENT_LABELS), status


@bp.get("/verify")
def verify():
    return _page()


@bp.post("/verify/reference")
@_limited
def verify_reference():
    form = VerifyReferenceForm()
    if not form.validate_on_submit():
        return _page(reference_form=form, status=400)
    result = svc.verify_reference(db.session(), runtime(), form.reference.data)
    return _page(reference_form=form, result=result, checked="reference")


@bp.post("/verify/file")
@_limited
def verify_file():
    form = VerifyUploadForm()
    if not form.validate_on_submit():
        return _page(upload_form=form, status=400)
    data = form.pdf.data.read(MAX_PDF + 1)
    if len(data) > MAX_PDF:
        form.pdf.errors = ["That file is too large to be one of our signed agreements."]
        return _page(upload_form=form, status=400)
    result = svc.verify_pdf(db.session(), runtime(), data)
    return _page(upload_form=form, result=result, checked="file")
