"""Client pages of autopay: the saved methods (``autopay.methods``, the page emails link to for "update your payment
method"), adding a method, verifying microdeposits, signing the authorization, switching autopay off; and the
links emailed to clients: onboarding (``autopay.welcome`` -> ``autopay.onboarding``) and campaign offers.

Every method id is looked up within the signed-in contact's client: another client's id is 404.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask import session as web_session
from flask_login import current_user

from portal import db
from portal.clock import now, today
from portal.domain import autopay as A
from portal.domain.authorizations import method_description
from portal.domain.errors import DomainError
from portal.extensions import limiter
from portal.gateways.payments import MandateAcceptance, sandbox_token
from portal.services import agreements
from portal.services.autopay import campaign, enrollment, incentives, methods, onboarding, rules
from portal.services.errors import NotFound
from portal.services.settings import get_settings
from portal.web.agreements.common import request_meta
from portal.web.auth.forms import UseLinkForm
from portal.web.auth.identity import Identity, contact_required
from portal.web.auth.routes import _start_session
from portal.web.refusals import flash_refusal
from portal.web.runtime import runtime

from .forms import (
    ActionForm,
    AuthorizeForm,
    CompleteSetupForm,
    RoleForm,
    SandboxAuthenticationForm,
    SetupForm,
    VerifyForm,
)

bp = Blueprint("autopay", __name__)

TEST_CARDS = (
    ("4242 4242 4242 4242", "Visa, saves and pays"),
    ("5555 5555 5555 4444", "Mastercard, saves and pays"),
    ("4000 0000 0000 9995", "saves, then declines for insufficient funds"),
    ("4000 0027 6000 3184", "asks for 3-D Secure when saved (and on every payment)"),
    ("4000 0000 0000 0002", "declined when saved"),
)
TEST_BANK_ACCOUNTS = (
    ("000123456789", "succeeds (choose microdeposits to try verification: amounts 32 and 45)"),
    ("000222222227", "saves, then returns for insufficient funds"),
)
ONBOARDING_RETURN = "onboarding_return"


def _client_id() -> int:
    return current_user.client_id


def _method_or_404(method_id: int):
    try:
        return methods.method_of(db.session(), _client_id(), method_id)
    except NotFound:
        abort(404)


@bp.get("/autopay", endpoint="methods")
@contact_required
def methods_page():
    session = db.session()
    client_id = _client_id()
    row = rules.enrollment(session, client_id)
    settings = rules.autopay_settings(session)
    saved = methods.methods_of(session, client_id)
    return render_template(
        "autopay/methods.html", methods=saved, enrollment=row, rules=rules.rules_for(session, client_id),
        incentive=rules.incentive(settings), savings=incentives.yearly_savings(session, client_id),
        expiry={m.id: methods.expiry(m, today()) for m in saved}, label=methods.label, Expiry=A.Expiry,
        pending=methods.PENDING, active=methods.ACTIVE, action_form=ActionForm(), msp=get_settings(session),
        currency=get_settings(session).currency, authorizations={
            m.id: enrollment.authorization_of(session, client_id, m) for m in saved})


def _sandbox_token(form: SetupForm) -> str | None:
    details = form.sandbox_card_or_bank(today())
    if details is None:
        return None
    kind, number, expiry = details
    try:
        if expiry is None:
            return sandbox_token(kind, number)
        return sandbox_token(kind, number, exp_month=expiry[0], exp_year=expiry[1])
    except ValueError:
        form.card_number.errors = [*form.card_number.errors, "Enter the number using digits only."]
        return None


def _token(form: SetupForm) -> str | None:
    gateway = runtime().gateway
    token = form.confirmation_token.data or ""
    if token:
        return token  # a forged or replayed one is refused by the gateway, and the service says so
    if not gateway.is_sandbox:
        form.form_errors.append("Enter your card or bank details above.")
        return None
    return _sandbox_token(form)


@bp.route("/autopay/methods/new", methods=["GET", "POST"])
@contact_required
@limiter.limit("20 per hour", methods=["POST"])  # slows down anyone testing stolen card numbers
def new_method():
    form = SetupForm()
    rt = runtime()
    if form.validate_on_submit():
        token = _token(form)
        if token is not None:
            acceptance = MandateAcceptance(ip_address=request.remote_addr or "unknown",
                                           user_agent=request.user_agent.string or "unknown", accepted_at=now())
            verification = form.bank_verification.data if rt.gateway.is_sandbox else "automatic"
            try:
                saved = methods.save(db.session(), rt, current_user.record,
                                     methods.NewMethod(token=token, nonce=form.nonce.data or "",
                                                       bank_verification=verification or "automatic"), acceptance)
            except DomainError as e:
                form.form_errors.append(str(e))
            else:
                if isinstance(saved, methods.NeedsAuthentication):
                    return _authenticate(saved)
                return _saved(saved)
        status = 400
    else:
        status = 400 if request.method == "POST" else 200
    form.nonce.data = secrets.token_urlsafe(24)
    form.confirmation_token.data = ""
    return render_template("autopay/new_method.html", form=form, gateway=rt.gateway, test_cards=TEST_CARDS,
                           test_bank_accounts=TEST_BANK_ACCOUNTS,
                           return_url=url_for("autopay.setup_return", _external=True)), status


def _saved(saved):
    if saved.status == methods.PENDING:
        flash("Bank account added. It shows as pending until you confirm the two small deposits "
              "we send it (1 to 2 business days).", "success")
        return redirect(url_for("autopay.methods"))
    flash(f"{methods.label(saved)} saved. Sign the autopay authorization to use it for autopay.", "success")
    return redirect(url_for("autopay.authorize", method_id=saved.id))


def _authenticate(needed: methods.NeedsAuthentication):
    """The card's bank asks for 3-D Secure: Stripe.js runs the challenge on a page of ours; the sandbox has its own
    stand-in page. Either way the setup id comes back to ``setup_complete`` or ``setup_return``."""
    if runtime().gateway.is_sandbox:
        return redirect(url_for("autopay.sandbox_authentication", setup_intent=needed.setup_id), 303)
    form = CompleteSetupForm(formdata=None, setup_intent=needed.setup_id)
    return render_template("autopay/authenticate.html", form=form, gateway=runtime().gateway,
                           client_secret=needed.client_secret)


def _finish_setup(setup_id: str):
    """Save the card once its setup succeeded at the gateway (the id is read back there, never trusted)."""
    try:
        saved = methods.complete_setup(db.session(), runtime(), current_user.record, setup_id)
    except DomainError as e:
        flash(str(e), "error")
        return redirect(url_for("autopay.new_method"), 303)
    return _saved(saved)


@bp.post("/autopay/methods/complete")
@contact_required
@limiter.limit("30 per hour")
def setup_complete():
    """The 3-D Secure page posts the setup id back once the bank's challenge is over (passed or not)."""
    form = CompleteSetupForm()
    if not form.validate_on_submit():
        abort(400)
    return _finish_setup(form.setup_intent.data or "")


@bp.get("/autopay/methods/return")
@contact_required
@limiter.limit("30 per hour")
def setup_return():
    """Where the gateway sends the client back after confirming a setup (a 3-D Secure redirect, bank login), and
    where the sandbox's stand-in challenge lands."""
    return _finish_setup(request.args.get("setup_intent", ""))


@bp.route("/autopay/methods/sandbox-authentication", methods=["GET", "POST"])
@contact_required
def sandbox_authentication():
    """SANDBOX: the stand-in for the bank's 3-D Secure challenge on a card being saved."""
    rt = runtime()
    if not rt.gateway.is_sandbox:
        abort(404)
    form = SandboxAuthenticationForm()
    setup_id = (form.setup_intent.data if request.method == "POST" else request.args.get("setup_intent")) or ""
    session = db.session()
    try:
        if form.validate_on_submit():
            new_id = methods.sandbox_authenticate(session, rt, current_user.record, setup_id,
                                                  passed=form.outcome.data == "pass")
            return redirect(url_for("autopay.setup_return", setup_intent=new_id), 303)
        if request.method == "POST":
            abort(400)
        setup = methods.awaiting_sandbox_authentication(session, rt, current_user.record, setup_id)
    except NotFound:
        abort(404)
    except DomainError as e:
        flash(str(e), "error")
        return redirect(url_for("autopay.new_method"), 303)
    form.setup_intent.data = setup_id
    card = setup.method
    return render_template("autopay/sandbox_authentication.html", form=form, card=method_description(
        "card", brand=card.brand, last4=card.last4, bank_name=None) if card else "your card")


@bp.route("/autopay/methods/<int:method_id>/verify", methods=["GET", "POST"])
@contact_required
@limiter.limit("10 per hour", methods=["POST"])
def verify(method_id: int):
    method = _method_or_404(method_id)
    form = VerifyForm()
    status = 200
    if form.validate_on_submit():
        amounts, code = form.amounts(), (form.descriptor_code.data or "").strip() or None
        if (amounts is None) == (code is None):
            form.form_errors.append("Enter the two deposit amounts in cents, or the 6-character code.")
        else:
            try:
                methods.verify(db.session(), runtime(), _client_id(), method_id, amounts=amounts,
                               descriptor_code=code)
            except DomainError as e:
                form.form_errors.append(str(e))
            else:
                flash("Bank account verified. Sign the autopay authorization to use it for autopay.", "success")
                return redirect(url_for("autopay.authorize", method_id=method_id))
        status = 400
    elif request.method == "POST":
        status = 400
    return render_template("autopay/verify.html", form=form, method=method, label=methods.label(method)), status


@bp.route("/autopay/methods/<int:method_id>/authorize", methods=["GET", "POST"])
@contact_required
def authorize(method_id: int):
    session = db.session()
    rt = runtime()
    method = _method_or_404(method_id)
    form = AuthorizeForm()
    status = 200
    if form.validate_on_submit():
        signed = form.signed_by()
        try:
            agreement = enrollment.authorize(session, rt, current_user.record, method_id, signed,
                                             meta=request_meta(), role=form.role.data)
        except NotFound:
            abort(404)
        except DomainError as e:
            form.form_errors.append(str(e))
        else:
            flash(f"Autopay is on. Your signed authorization {agreement.reference} is on its way to your inbox.",
                  "success")
            return redirect(web_session.pop(ONBOARDING_RETURN, None) or url_for("autopay.methods"))
        status = 400
    elif request.method == "POST":
        status = 400
    method = _method_or_404(method_id)
    try:
        enrollment._check_usable(session, _client_id(), method)
        document = enrollment.document(session, rt, method.client, method)
    except DomainError as e:
        flash(str(e), "error")
        return redirect(url_for("autopay.methods"))
    form.document_sha256.data = document.sha256
    if rules.is_enrolled(session, _client_id()) and request.method == "GET" and not method.is_default:
        form.role.data = A.FALLBACK
    return render_template("autopay/authorize.html", form=form, method=method, label=methods.label(method),
                           document=document, consent_statement=agreements.consent_statement(session),
                           disclosure=agreements.disclosure_document(session)[1],
                           savings=incentives.yearly_savings(session, _client_id()),
                           incentive=rules.incentive(rules.autopay_settings(session))), status


@bp.post("/autopay/methods/<int:method_id>/role")
@contact_required
def set_role(method_id: int):
    _method_or_404(method_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose default, fallback or neither.", "error")
        return redirect(url_for("autopay.methods")), 303
    session = db.session()
    with flash_refusal(session):
        methods.set_role(session, _client_id(), method_id, form.role.data)
        flash("Saved.", "success")
    return redirect(url_for("autopay.methods")), 303


@bp.post("/autopay/methods/<int:method_id>/remove")
@contact_required
def remove(method_id: int):
    method = _method_or_404(method_id)
    label = methods.label(method)
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db.session()
    with flash_refusal(session):
        enrollment.remove(session, runtime(), _client_id(), method_id, meta=request_meta())
        flash(f"{label} removed.", "success")
    return redirect(url_for("autopay.methods")), 303


@bp.post("/autopay/off")
@contact_required
def turn_off():
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db.session()
    with flash_refusal(session):
        enrollment.turn_off(session, runtime(), _client_id(), meta=request_meta())
        flash("Autopay is off. Your invoices will be emailed to you to pay by hand.", "success")
    return redirect(url_for("autopay.methods")), 303


# --- onboarding -----------------------------------------------------------------------------------------------------


@bp.route("/welcome/<token>", methods=["GET", "POST"])
@limiter.limit("20 per 15 minutes", methods=["POST"])
def welcome(token: str):
    """GET shows a button (mail scanners prefetch links); the POST signs the contact in and starts the flow."""
    session = db.session()
    form = UseLinkForm()
    try:
        if form.validate_on_submit():
            contact = onboarding.open_link(session, token)
            _start_session(Identity(contact))
            return redirect(url_for("autopay.onboarding"))
        invitation = onboarding.by_token(session, token)
    except DomainError as e:
        return render_template("auth/link_invalid.html", message=str(e)), 400
    return render_template("autopay/welcome.html", form=form, contact=invitation.contact,
                           client=invitation.client, msp=get_settings(session))


@bp.get("/onboarding", endpoint="onboarding")
@contact_required
def onboarding_page():
    session = db.session()
    state = onboarding.refresh(session, _client_id())
    if state is None:
        return redirect(url_for("autopay.methods"))
    web_session[ONBOARDING_RETURN] = url_for("autopay.onboarding")
    saved = methods.methods_of(session, _client_id())
    return render_template("autopay/onboarding.html", state=state, methods=saved, label=methods.label,
                           pending=methods.PENDING, active=methods.ACTIVE, action_form=ActionForm(),
                           labels=onboarding.STATUS_LABELS, COMPLETE=onboarding.COMPLETE,
                           savings=incentives.yearly_savings(session, _client_id()),
                           incentive=rules.incentive(rules.autopay_settings(session)))


@bp.post("/onboarding/skip")
@contact_required
def skip_autopay():
    if not ActionForm().validate_on_submit():
        abort(400)
    session = db.session()
    with flash_refusal(session):
        onboarding.skip_autopay(session, _client_id())
        web_session.pop(ONBOARDING_RETURN, None)
        flash("You are all set. You can turn on autopay at any time from the Autopay page.", "success")
    return redirect(url_for("autopay.onboarding")), 303


@bp.get("/autopay/offer/<token>")
def offer(token: str):
    """A campaign email's link: counted as opened, then on to the autopay page (sign-in first if needed)."""
    campaign.open_offer(db.session(), token)
    return redirect(url_for("autopay.methods"))
