"""Staff pages of autopay: adoption and the MSP's defaults and incentive, onboarding statuses, the conversion
campaign, the discount export and rate locks, and one client's autopay panel (overrides, lock, onboard/resend)."""

from __future__ import annotations

from decimal import Decimal

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import BooleanField, DateField, RadioField, SelectChoice, StringField
from wtforms.validators import Length, Optional

from portal import db
from portal.clock import today
from portal.domain import autopay as A
from portal.domain.errors import DomainError
from portal.domain.money import parse_amount, parse_decimal
from portal.models import Client
from portal.services.agreements.chain import Meta
from portal.services.autopay import adoption, campaign, enrollment, incentives, methods, onboarding, outlook, rules
from portal.services.settings import get_settings
from portal.web.auth.identity import staff_required
from portal.web.forms import PortalForm
from portal.web.params import parse_int
from portal.web.refusals import flash_refusal, form_refusal
from portal.web.runtime import runtime

from .common import page_arg
from .routes import bp

TIMINGS = [SelectChoice(A.Timing.ON_DUE_DATE, "On the due date"),
           SelectChoice(A.Timing.DAYS_BEFORE_DUE, "Days before the due date"),
           SelectChoice(A.Timing.DAYS_AFTER_DUE, "Days after the due date"),
           SelectChoice(A.Timing.DAY_OF_MONTH, "On a fixed day of the month")]
SCOPES = [SelectChoice(A.Scope.ALL, "All invoices"), SelectChoice(A.Scope.NOT_ON_PLAN, "Not those on a payment plan")]
INCENTIVES = [SelectChoice(A.IncentiveKind.NONE, "None"), SelectChoice(A.IncentiveKind.DISCOUNT, "Discount"),
              SelectChoice(A.IncentiveKind.RATE_LOCK, "Rate lock (next price increase waived)")]


def _int(text: str | None, what: str, *, blank: int | None = None) -> int | None:
    if not (text or "").strip():
        return blank
    number = parse_int(text, minimum=0, maximum=999_999)  # the domain checks the real range with its own message
    if number is None:
        raise DomainError(f"{what} must be a whole number.")
    return number


def _cents(text: str | None) -> int | None:
    return parse_amount(text) if (text or "").strip() else None


class SettingsForm(PortalForm):
    timing = RadioField("Charge", choices=TIMINGS, default=A.Timing.ON_DUE_DATE)
    offset_days = StringField("Days before or after", validators=[Optional(), Length(max=6)])
    day_of_month = StringField("Day of the month (1 to 31; 31 = last day)", validators=[Optional(), Length(max=6)])
    cap = StringField("Limit per invoice (blank: none)", validators=[Optional(), Length(max=20)])
    scope = RadioField("Which invoices", choices=SCOPES, default=A.Scope.ALL)
    cards = BooleanField("Cards", default=True)
    banks = BooleanField("US bank accounts (ACH)", default=True)
    use_fallback = BooleanField("Use the client's fallback method after a hard decline", default=True)
    notice_days = StringField("Pre-charge notice (days before)", validators=[Optional(), Length(max=6)])
    retry_days = StringField("Retry schedule (days between tries)", validators=[Optional(), Length(max=60)])
    required_for_new_clients = BooleanField("Require autopay for new clients")
    incentive_kind = RadioField("Incentive", choices=INCENTIVES, default=A.IncentiveKind.NONE)
    discount_percent = StringField("Discount (%)", validators=[Optional(), Length(max=10)])
    stop_after_failures = StringField("Stop the incentive after failed charges in a row",
                                      validators=[Optional(), Length(max=6)])
    next_increase_on = DateField("Next price increase on", validators=[Optional()])
    next_increase_percent = StringField("Next price increase (%)", validators=[Optional(), Length(max=10)])

    def fill(self, row) -> None:
        self.timing.data, self.offset_days.data = row.timing, str(row.offset_days or "")
        self.day_of_month.data = str(row.day_of_month or "")
        self.cap.data = f"{Decimal(row.cap_cents) / 100:.2f}" if row.cap_cents is not None else ""
        self.scope.data = row.scope
        types = set((row.method_types or "").split(","))
        self.cards.data, self.banks.data = "card" in types, "us_bank_account" in types
        self.use_fallback.data, self.notice_days.data = row.use_fallback, str(row.notice_days)
        self.retry_days.data, self.required_for_new_clients.data = row.retry_days, row.required_for_new_clients
        self.incentive_kind.data = row.incentive_kind
        self.discount_percent.data = format(row.discount_percent.normalize(), "f") if row.discount_percent else ""
        self.stop_after_failures.data = str(row.stop_after_failures)
        self.next_increase_on.data = row.next_increase_on
        self.next_increase_percent.data = (format(row.next_increase_percent.normalize(), "f")
                                           if row.next_increase_percent else "")

    def values(self) -> rules.SettingsInput:
        kinds = frozenset(k for k, on in (("card", self.cards.data), ("us_bank_account", self.banks.data)) if on)
        percent = (self.discount_percent.data or "").strip()
        increase = (self.next_increase_percent.data or "").strip()
        return rules.SettingsInput(
            timing=self.timing.data, offset_days=_int(self.offset_days.data, "The number of days", blank=0),
            day_of_month=_int(self.day_of_month.data, "The day of the month"), cap_cents=_cents(self.cap.data),
            scope=self.scope.data, method_types=kinds, use_fallback=bool(self.use_fallback.data),
            notice_days=_int(self.notice_days.data, "The notice period", blank=0),
            retry_days=self.retry_days.data or "", required_for_new_clients=bool(self.required_for_new_clients.data),
            incentive_kind=self.incentive_kind.data,
            discount_percent=parse_decimal(percent, field="The discount") if percent else None,
            stop_after_failures=_int(self.stop_after_failures.data, "The number of failures", blank=3),
            next_increase_on=self.next_increase_on.data,
            next_increase_percent=parse_decimal(increase, field="The increase") if increase else None)


class ClientRulesForm(PortalForm):
    timing = RadioField("Charge", choices=[SelectChoice("", "As the MSP default"), *TIMINGS], default="",
                        validators=[Optional()])
    offset_days = StringField("Days before or after", validators=[Optional(), Length(max=6)])
    day_of_month = StringField("Day of the month", validators=[Optional(), Length(max=6)])
    cap_override = BooleanField("Own limit for this client")
    cap = StringField("Limit per invoice (blank: none)", validators=[Optional(), Length(max=20)])
    scope = RadioField("Which invoices", choices=[SelectChoice("", "As the MSP default"), *SCOPES], default="",
                       validators=[Optional()])
    notice_days = StringField("Pre-charge notice (days; blank: default)", validators=[Optional(), Length(max=6)])
    locked = BooleanField("Lock autopay (the client cannot switch it off)")

    def values(self) -> rules.OverrideInput:
        return rules.OverrideInput(
            timing=self.timing.data or None, offset_days=_int(self.offset_days.data, "The number of days"),
            day_of_month=_int(self.day_of_month.data, "The day of the month"),
            cap_override=bool(self.cap_override.data), cap_cents=_cents(self.cap.data),
            scope=self.scope.data or None, notice_days=_int(self.notice_days.data, "The notice period"),
            locked=bool(self.locked.data))


class ActionForm(PortalForm):
    """A button: only the CSRF token."""


def _meta() -> Meta:
    return Meta(ip=request.remote_addr or "", user_agent=request.user_agent.string or "",
                staff_id=current_user.record.id)


@bp.route("/autopay", methods=["GET", "POST"])
@staff_required
def autopay():
    session = db.session()
    form = SettingsForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            with form_refusal(session, form.form_errors):
                rules.update_settings(session, form.values())
                flash("Autopay settings saved.", "success")
                return redirect(url_for("admin.autopay")), 303
        status = 400
    else:
        form.fill(rules.autopay_settings(session))
    return render_template("admin/autopay/overview.html", form=form, adoption=adoption.adoption(session),
                           onboarding=onboarding.statuses(session), labels=onboarding.STATUS_LABELS,
                           rate_locks=incentives.rate_locks(session), msp=get_settings(session)), status


@bp.get("/autopay/discounts.csv")
@staff_required
def autopay_discounts_csv():
    session = db.session()
    body = incentives.discounts_csv(session, get_settings(session).currency)
    response = Response(body, mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename="autopay-discounts.csv")
    return response


@bp.route("/autopay/campaign", methods=["GET", "POST"])
@staff_required
def autopay_campaign():
    session = db.session()
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        ids = [i for i in map(parse_int, request.form.getlist("client_id")) if i is not None]
        with flash_refusal(session):
            sent = campaign.send_offers(session, runtime(), ids, staff=current_user.record,
                                        campaign=(request.form.get("campaign") or "")[:100])
            flash(f"Offer sent to {sent} client{'s' if sent != 1 else ''}.", "success")
        return redirect(url_for("admin.autopay_campaign")), 303
    return render_template("admin/autopay/campaign.html", form=form,
                           page=campaign.candidate_page(session, page_arg()), offers=campaign.offers(session),
                           incentive=rules.incentive(rules.autopay_settings(session)))


def _client(client_id: int) -> Client:
    client = db.session().get(Client, client_id)
    if client is None:
        abort(404)
    return client


def _client_action(client_id: int) -> Client:
    """The client a button on its autopay page acts on: 404 when there is no such client, 400 when the button's
    form fails its CSRF check."""
    client = _client(client_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    return client


def _back_to_client(client_id: int):
    return redirect(url_for("admin.client_autopay", client_id=client_id)), 303


@bp.route("/clients/<int:client_id>/autopay", methods=["GET", "POST"])
@staff_required
def client_autopay(client_id: int):
    session = db.session()
    client = _client(client_id)
    form = ClientRulesForm()
    status = 200
    row = rules.enrollment(session, client_id)
    if request.method == "POST":
        if form.validate_on_submit():
            with form_refusal(session, form.form_errors):
                rules.update_client_rules(session, client, form.values())
                flash("Autopay rules saved for this client.", "success")
                return _back_to_client(client_id)
        status = 400
    elif row is not None:
        form.timing.data, form.scope.data = row.timing or "", row.scope or ""
        form.offset_days.data = str(row.offset_days or "") if row.timing else ""
        form.day_of_month.data = str(row.day_of_month or "")
        form.cap_override.data = row.has_cap_override
        form.cap.data = f"{Decimal(row.cap_cents) / 100:.2f}" if row.cap_cents is not None else ""
        form.notice_days.data = "" if row.notice_days is None else str(row.notice_days)
        form.locked.data = row.locked
    saved = methods.methods_of(session, client_id, include_removed=True)
    return render_template(
        "admin/autopay/client.html", client=client, form=form, enrollment=row, methods=saved,
        label=methods.label, effective=rules.rules_for(session, client_id), action_form=ActionForm(),
        invitation=onboarding.for_client(session, client_id), labels=onboarding.STATUS_LABELS,
        invitation_status=(onboarding.progress(session, onboarding.for_client(session, client_id)).status
                           if onboarding.for_client(session, client_id) else None),
        authorizations={m.id: enrollment.authorization_of(session, client_id, m) for m in saved},
        outlook=outlook.client_outlook(session, runtime().gateway.name, client_id, today())), status


@bp.post("/clients/<int:client_id>/autopay/onboard")
@staff_required
def client_onboard(client_id: int):
    session = db.session()
    client = _client_action(client_id)
    with flash_refusal(session):
        invitation = onboarding.onboard(session, runtime(), client, None, staff=current_user.record)
        flash(f"Onboarding email sent to {invitation.contact.email}.", "success")
    return _back_to_client(client_id)


@bp.post("/clients/<int:client_id>/autopay/resend")
@staff_required
def client_onboard_resend(client_id: int):
    session = db.session()
    _client_action(client_id)
    with flash_refusal(session):
        invitation = onboarding.resend(session, runtime(), client_id, staff=current_user.record)
        flash(f"Onboarding email sent again to {invitation.contact.email}.", "success")
    return _back_to_client(client_id)


@bp.post("/clients/<int:client_id>/autopay/off")
@staff_required
def client_autopay_off(client_id: int):
    session = db.session()
    _client_action(client_id)
    with flash_refusal(session):
        enrollment.turn_off(session, runtime(), client_id, meta=_meta(), by_staff=True,
                            reason="switched off by staff")
        flash("Autopay switched off for this client.", "success")
    return _back_to_client(client_id)
