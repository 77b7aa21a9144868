"""A contact sees its own client's records only: anything else is a plain 404 that gives nothing away."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.conftest import sign_in


def _leaks(body: str, other) -> list[str]:
    secrets = [other.client.legal_name, other.overdue.number, other.current.number, other.paid.number,
               other.draft.number, other.partial_payment.reference, other.overpayment.reference]
    return [s for s in secrets if s in body]


def _foreign_urls(other) -> list[str]:
    return [
        f"/invoices/{other.overdue.id}",
        f"/invoices/{other.current.id}",
        f"/invoices/{other.paid.id}",
        f"/invoices/{other.draft.id}",
        f"/invoices/{other.overdue.id}.pdf",
        f"/invoices/{other.draft.id}.pdf",
        f"/payments/{other.partial_payment.id}",
        f"/payments/{other.overpayment.id}",
        "/invoices/999999",
        "/payments/999999",
        "/invoices/99999999999999999999",  # beyond the database's integer range
    ]


def test_other_clients_records_by_id_are_404(portal, account, other):
    for url in _foreign_urls(other):
        response = portal.get(url)
        assert response.status_code == 404, url
        body = response.get_data(as_text=True)
        assert "We could not find that page." in body
        assert _leaks(body, other) == [], url


def test_foreign_404_looks_like_a_missing_record(portal, account, other):
    """Same body for someone else's invoice and for an id that does not exist (but for the sign-out form's CSRF
    token, which carries the second it was made: two requests a second apart differ there, whatever they show)."""
    def body(url: str) -> str:
        page = portal.get(url).get_data(as_text=True)
        return re.sub(r'(name="csrf_token" value=")[^"]+', r"\1", page)

    foreign, missing = body(f"/invoices/{other.current.id}"), body("/invoices/999999")
    assert 'name="csrf_token" value=""' in missing and foreign == missing


def test_own_drafts_are_404(portal, account):
    assert portal.get(f"/invoices/{account.draft.id}").status_code == 404
    assert portal.get(f"/invoices/{account.draft.id}.pdf").status_code == 404


def test_other_clients_numbers_find_nothing(portal, account, other):
    for number in (other.overdue.number, other.draft.number, "BAYS"):
        body = portal.get(f"/invoices?q={number}").get_data(as_text=True)
        assert "No invoice number starts with" in body  # the search term is echoed back, nothing else
        assert "<tbody>" not in body and 'href="/invoices/' not in body
        assert other.client.legal_name not in body


def test_lists_and_statement_show_only_own_records(portal, account, other):
    for url in ("/", "/invoices", "/invoices?status=open", "/invoices?status=paid", "/payments",
                "/statement", "/statement?start=2020-01-01&end=2030-01-01"):
        response = portal.get(url)
        assert response.status_code == 200, url
        assert _leaks(response.get_data(as_text=True), other) == [], url
    assert account.current.number in portal.get("/invoices").get_data(as_text=True)


def test_statement_pdf_shows_only_own_records(portal, account, other):
    import io

    from pypdf import PdfReader

    data = portal.get("/statement.pdf?start=2020-01-01&end=2030-01-01").data
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert account.current.number in text
    assert _leaks(text, other) == []


def test_the_other_contact_sees_its_own(http, account, other):
    sign_in(http, other.contact)
    assert http.get(f"/invoices/{other.current.id}").status_code == 200
    assert http.get(f"/invoices/{account.current.id}").status_code == 404


@pytest.mark.parametrize("url", ["/admin/", "/admin/clients", "/admin/invoices", "/admin/payments",
                                 "/admin/settings", "/admin/outbox"])
def test_contacts_cannot_reach_admin_pages(portal, account, url):
    response = portal.get(url)
    assert response.status_code == 403
    assert "You do not have access to this page." in response.get_data(as_text=True)


def test_contacts_cannot_open_admin_records(portal, account, other):
    for url in (f"/admin/clients/{other.client.id}", f"/admin/invoices/{other.current.id}",
                f"/admin/payments/{other.overpayment.id}", f"/admin/clients/{account.client.id}"):
        response = portal.get(url)
        assert response.status_code == 403, url
        assert _leaks(response.get_data(as_text=True), other) == []


@pytest.mark.parametrize("url", ["/admin/", "/admin/clients", "/admin/invoices"])
def test_staff_pages_need_a_staff_sign_in(http, url):
    response = http.get(url)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/login"


@pytest.mark.parametrize("url", ["/", "/invoices", "/payments", "/statement", "/password"])
def test_staff_do_not_use_the_client_portal(staff_http, url):
    assert staff_http.get(url).status_code == 403


@pytest.mark.parametrize("url", ["/", "/invoices", "/invoices/1", "/invoices/1.pdf", "/payments", "/payments/1",
                                 "/statement", "/statement.pdf", "/password"])
def test_client_pages_need_a_sign_in(http, url):
    response = http.get(url)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_a_statement_built_once_reads_only_the_scopes_client(session, account, other):
    """The busy pages' statements are built at import with the client as a parameter (scope.visible_invoices):
    ClientScope.run binds its own client, and the same statement run any other way is refused, never unfiltered."""
    from sqlalchemy.exc import StatementError

    from portal.models import Invoice
    from portal.services.scope import ClientScope, visible_invoices

    numbers = visible_invoices(Invoice.number)
    assert set(ClientScope(session, account.client.id).run(numbers).scalars()) == {
        account.overdue.number, account.current.number, account.paid.number}  # not its draft, nothing of other's
    with pytest.raises(StatementError, match="scope_client_id"):
        session.execute(numbers)
