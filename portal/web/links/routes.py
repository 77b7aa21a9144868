"""Magic links: the public pages a client contact reaches from an invoice email, with no account and no session.

A link opens exactly one invoice (view, PDF, how to pay). Anything wrong with a link shows a clear page that says
nothing about the invoice; a token that does not verify gets the very same page as one that names no link.
The staff views of this feature (send, retry, revoke ...) register on the same blueprint from ``admin.py``.
"""

from __future__ import annotations

from io import BytesIO

from flask import Blueprint, render_template, request, send_file
from flask_login import current_user

from portal import db
from portal.clock import today
from portal.domain import links as rules
from portal.extensions import limiter
from portal.services import delivery, documents, ledger, payments
from portal.web.runtime import runtime

from .forms import FreshLinkForm

bp = Blueprint("links", __name__)


@bp.after_request
def _keep_out_of_search(response):
    # a forwarded or pasted link must never end up in a search index
    response.headers.setdefault("X-Robots-Tag", "noindex, nofollow")
    return response


@bp.get("/i/<token>")
def invoice(token: str):
    session = db.session()
    access = delivery.resolve_link(session, runtime(), token)
    if not access.ok:
        return _unavailable(token, access.state)
    delivery.record_open(session, access.link, method=request.method, user_agent=request.user_agent.string,
                         by_staff=current_user.is_authenticated and current_user.is_staff)
    figures = ledger.invoice_figures(session, access.invoice, today())
    invoice = access.invoice
    in_flight = payments.payments_in_flight(session, invoice.client_id, [invoice.id]).get(invoice.id, [])
    return render_template(
        "links/invoice.html", invoice=invoice, token=token, paid_cents=figures.paid_cents,
        balance_cents=figures.balance_cents, status=figures.status, num=documents.number_text,
        in_flight=in_flight, payable_cents=max(0, figures.balance_cents - sum(p.cents for p in in_flight)),
    )


@bp.get("/i/<token>/pdf")
def invoice_pdf(token: str):
    session = db.session()
    rt = runtime()
    access = delivery.resolve_link(session, rt, token)
    if not access.ok:
        return _unavailable(token, access.state)
    pdf = documents.invoice_pdf(session, rt, access.invoice)
    return send_file(BytesIO(pdf), mimetype="application/pdf", as_attachment=True,
                     download_name=f"{access.invoice.number}.pdf")


@bp.post("/i/<token>/new-link")
@limiter.limit("5 per hour;20 per day")
def new_link(token: str):
    form = FreshLinkForm()
    if form.validate_on_submit():
        delivery.request_fresh_link(db.session(), runtime(), token)
    # The same answer whatever happened: it must not tell a visitor whether the link or the address exists.
    return render_template("links/fresh_link_sent.html")


def _unavailable(token: str, state: str):
    # A tampered token, an unknown link and a contact who lost access all look alike (404, no reason given);
    # the holder of a genuine link that expired or was revoked or replaced is told so (410).
    reason = state if state in (rules.EXPIRED, rules.REVOKED, rules.REPLACED, rules.VOID) else None
    code = 410 if reason else 404
    return render_template("links/unavailable.html", token=token, reason=reason, form=FreshLinkForm()), code


from . import admin  # noqa: E402, F401  (staff views register on bp)
