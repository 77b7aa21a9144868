"""Clients: the list with balances, one client's account, create/edit, contacts, statement, applying credit."""

from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for

from portal import db
from portal.clock import today
from portal.domain.aging import BUCKETS
from portal.domain.statements import Statement
from portal.models import Client, Contact
from portal.services import clients as client_service
from portal.services import ledger, payments, reports, statements
from portal.services.errors import Conflict, NotFound
from portal.web.auth.identity import staff_required
from portal.web.params import choice_arg
from portal.web.refusals import flash_refusal, form_refusal
from portal.web.runtime import runtime

from .common import PAGE_SIZE, get_or_404, money_text, page_arg, pdf_available, pdf_documents, send_pdf
from .forms import STATUS_LABELS, ClientForm, ConfirmForm, ContactForm, StatementForm
from .routes import bp


@bp.get("/clients")
@staff_required
def clients():
    q = request.args.get("q", "").strip()
    status = choice_arg("status", STATUS_LABELS, "")
    sort = choice_arg("sort", reports.CLIENT_SORTS, "name")
    page = reports.client_page(db.session(), today(), q=q, status=status, sort=sort, page=page_arg(),
                               per_page=PAGE_SIZE)
    return render_template("admin/clients/list.html", page=page, q=q, status=status, sort=sort,
                           statuses=STATUS_LABELS)


# The client page's tabs (?tab=), in the order shown. The view reads what the first three show; the panels on the
# others (and the payments tab's online payments) read their own data.
CLIENT_TABS = {"overview": "Overview", "invoices": "Invoices", "payments": "Payments", "plans": "Plans",
               "collections": "Collections", "equipment": "Equipment and enforcement"}


@bp.get("/clients/<int:client_id>")
@staff_required
def client_detail(client_id: int):
    """One client's account, a tab at a time: each tab reads only what it shows (a page of every panel at once ran
    about thirty statements; issue 14)."""
    tab = choice_arg("tab", CLIENT_TABS, "overview")
    session = db.session()
    client = client_service.with_contacts(session, client_id) if tab == "overview" else get_or_404(Client, client_id)
    if client is None:
        raise NotFound()
    shown = {}
    if tab == "overview":
        shown = {"summary": ledger.client_summary(session, client.id, today()), "statuses": STATUS_LABELS,
                 "buckets": BUCKETS}
    elif tab == "invoices":
        shown = {"invoices": reports.client_invoices(session, client.id), "today": today()}
    elif tab == "payments":
        shown = {"payments": reports.client_payments(session, client.id)}
    return render_template("admin/clients/detail.html", client=client, tab=tab, tabs=CLIENT_TABS, **shown)


@bp.route("/clients/new", methods=["GET", "POST"])
@staff_required
def client_new():
    form = ClientForm()
    if form.validate_on_submit():
        client = _save_client(form, None)
        if client is not None:
            flash(f"Client {client.legal_name} created.", "success")
            return redirect(url_for("admin.client_detail", client_id=client.id))
    return render_template("admin/clients/form.html", form=form, client=None)


@bp.route("/clients/<int:client_id>/edit", methods=["GET", "POST"])
@staff_required
def client_edit(client_id: int):
    client = get_or_404(Client, client_id)
    form = ClientForm(obj=client)
    if form.validate_on_submit() and _save_client(form, client) is not None:
        flash("Client details saved.", "success")
        return redirect(url_for("admin.client_detail", client_id=client.id))
    return render_template("admin/clients/form.html", form=form, client=client)


def _save_client(form: ClientForm, client: Client | None) -> Client | None:
    """Create or update; a rule the service refuses becomes a form error and nothing is saved."""
    session = db.session()
    # the only clash on a client is its external id: shown on that field; any other refusal above the form
    with form_refusal(session, form.form_errors), form_refusal(session, form.external_id.errors, Conflict):
        if client is None:
            return client_service.create_client(session, **form.values())
        return client_service.update_client(session, client, **form.values())
    return None


@bp.route("/clients/<int:client_id>/contacts/new", methods=["GET", "POST"])
@staff_required
def contact_new(client_id: int):
    client = get_or_404(Client, client_id)
    form = ContactForm()
    if form.validate_on_submit():
        contact = _save_contact(form, client, None)
        if contact is not None:
            flash(f"Contact {contact.name} added.", "success")
            return redirect(url_for("admin.client_detail", client_id=client.id))
    return render_template("admin/clients/contact_form.html", form=form, client=client, contact=None)


@bp.route("/clients/<int:client_id>/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@staff_required
def contact_edit(client_id: int, contact_id: int):
    client = get_or_404(Client, client_id)
    contact = get_or_404(Contact, contact_id)
    if contact.client_id != client.id:
        raise NotFound()
    form = ContactForm(obj=contact)
    if form.validate_on_submit() and _save_contact(form, client, contact) is not None:
        flash(f"Contact {contact.name} saved.", "success")
        return redirect(url_for("admin.client_detail", client_id=client.id))
    return render_template("admin/clients/contact_form.html", form=form, client=client, contact=contact)


def _save_contact(form: ContactForm, client: Client, contact: Contact | None) -> Contact | None:
    session = db.session()
    # the only clash on a contact is its email: shown on that field; any other refusal above the form
    with form_refusal(session, form.form_errors), form_refusal(session, form.email.errors, Conflict):
        if contact is None:
            return client_service.add_contact(session, client, **form.values())
        return client_service.update_contact(session, contact, **form.values())
    return None


@bp.post("/clients/<int:client_id>/apply-credit")
@staff_required
def client_apply_credit(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    if not ConfirmForm().validate_on_submit():
        flash("Your form expired. Please try again.", "error")
        return redirect(url_for("admin.client_detail", client_id=client.id))
    with flash_refusal(session):
        applied = payments.apply_credit(session, client)
        if applied:
            flash(f"Applied {money_text(applied)} of credit to open invoices, oldest first.", "success")
        else:
            flash("Nothing to apply: there is no credit or nothing is owed.", "warning")
    return redirect(url_for("admin.client_detail", client_id=client.id))


@bp.get("/clients/<int:client_id>/statement")
@staff_required
def client_statement(client_id: int):
    client = get_or_404(Client, client_id)
    form, statement = _statement(client)
    return render_template("admin/clients/statement.html", client=client, statement=statement, form=form,
                           pdf_available=pdf_available())


@bp.get("/clients/<int:client_id>/statement.pdf")
@staff_required
def client_statement_pdf(client_id: int):
    client = get_or_404(Client, client_id)
    documents = pdf_documents()
    _form, statement = _statement(client)
    pdf = documents.statement_pdf(db.session(), runtime(), client, statement)
    return send_pdf(pdf, f"statement-{client.id}-{statement.start:%Y%m%d}-{statement.end:%Y%m%d}.pdf")


def _statement(client: Client) -> tuple[StatementForm, Statement]:
    form = StatementForm(formdata=request.args)
    form.validate()  # a date that does not parse shows its error and falls back to the default period
    default_start, default_end = _default_period(today())
    start, end = form.start.data or default_start, form.end.data or default_end
    statement = statements.client_statement(db.session(), client.id, start, end)
    form.start.data, form.end.data = statement.start, statement.end
    return form, statement


def _default_period(on: date) -> tuple[date, date]:
    """The current month and the two before it: the span MSPs usually send a statement for."""
    month, year = on.month - 2, on.year
    if month < 1:
        month, year = month + 12, year - 1
    return date(year, month, 1), on
