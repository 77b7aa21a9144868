"""The rules of notices, charge authorizations and deliverables (pure domain, no database)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest

from portal.domain import charge_authorizations as C
from portal.domain import deliverables as D
from portal.domain import evidence
from portal.domain import notices as N
from portal.domain import terms as T
from portal.domain.errors import DomainError

TODAY = date(2026, 4, 15)


def signed_variables(**parameters) -> dict[str, str]:
    return T.merge_variables(msp_legal_name="Acme IT Services LLC", msp_email="billing@acme.test",
                             client_legal_name="Dental LLC", net_days=30,
                             parameters={**T.DEFAULT_PARAMETERS, **parameters}, effective_date=date(2026, 1, 5))


# --- notices ---------------------------------------------------------------------------------------------------------


def test_no_signed_terms_no_notice():
    with pytest.raises(DomainError, match="has not signed your payment terms"):
        N.terms_from(None)


def test_terms_come_from_the_signed_variables():
    terms = N.terms_from(signed_variables(remote_disable_days="60", remote_disable_notice_days="14"))
    assert terms == N.NoticeTerms(60, 14)
    with pytest.raises(DomainError, match="do not set a remote-disable threshold"):
        N.terms_from({"remote_disable_days": "x", "remote_disable_notice_days": "10"})


@pytest.mark.parametrize(("days", "allowed"), [(44, False), (45, True), (90, True)])
def test_the_threshold_is_inclusive(days, allowed):
    late = N.past_due([(TODAY - timedelta(days=days), 5_000), (TODAY + timedelta(days=3), 9_000)], TODAY)
    assert late == N.PastDue(days, 5_000)
    terms = N.NoticeTerms(45, 10)
    if allowed:
        N.check_may_issue(terms, late)
        assert N.grounds_remain(terms, late)
    else:
        with pytest.raises(DomainError, match=f"{days} days past due.*from 45 days"):
            N.check_may_issue(terms, late)


def test_nothing_past_due_is_not_a_ground():
    late = N.past_due([(TODAY, 5_000), (TODAY - timedelta(days=90), 0)], TODAY)
    assert late == N.PastDue(0, 0)
    with pytest.raises(DomainError, match="Nothing is past due"):
        N.check_may_issue(N.NoticeTerms(45, 10), late)
    assert not N.grounds_remain(N.NoticeTerms(45, 10), late)


def test_disable_permitted_after_the_full_notice_period():
    assert N.disable_permitted_on(TODAY, N.NoticeTerms(45, 10)) == date(2026, 4, 25)


def test_the_clause_is_quoted_from_the_signed_document():
    variables = signed_variables(remote_disable_days="60", remote_disable_notice_days="14")
    text = evidence.merge(T.DEFAULT_TERMS_TEXT, variables)
    clause = N.quote_clause(text, N.NoticeKind.REMOTE_DISABLE, variables)
    assert clause.startswith("6. Remote disabling of systems\n\n")
    assert "more than 60 days past due" in clause and "14 days' written notice" in clause
    assert "**" not in clause and "## 7" not in clause
    recovery = N.quote_clause(text, N.NoticeKind.EQUIPMENT_RECOVERY, variables)
    assert recovery.startswith("7. Equipment ownership and recovery") and "our property until" in recovery


def test_a_rewritten_document_falls_back_to_the_acknowledged_clause():
    variables = signed_variables(remote_disable_days="50")
    clause = N.quote_clause("# Our terms\n\nPay on time.", N.NoticeKind.REMOTE_DISABLE, variables)
    assert clause.startswith("Remote disabling of systems") and "more than 50 days past due" in clause


def test_kinds_and_equipment_round_trip():
    with pytest.raises(DomainError):
        N.parse_kind("shutdown")
    lines = [N.EquipmentLine("Firewall", "FG-1", "Server room", 80_000)]
    assert N.equipment_from_json(N.equipment_json(lines)) == lines
    assert N.equipment_from_json("not json") == []
    assert N.open_key(7, N.NoticeKind.REMOTE_DISABLE) == "7:remote_disable"


# --- charge authorizations -----------------------------------------------------------------------------------------


def test_only_a_sent_unexpired_authorization_is_signable():
    at = datetime(2026, 3, 21, 12, tzinfo=UTC)
    expires = C.expires_at(at, 7)
    C.check_signable(C.ChargeAuthorizationStatus.SENT, expires, at)
    for status, message in [("signed", "already signed"), ("charged", "already signed"),
                            ("canceled", "canceled"), ("expired", "expired")]:
        with pytest.raises(DomainError, match=message):
            C.check_signable(status, expires, at)
    with pytest.raises(DomainError, match="expired"):
        C.check_signable(C.ChargeAuthorizationStatus.SENT, expires, expires)
    with pytest.raises(DomainError, match="from 1 to 30 days"):
        C.expires_at(at, 31)


def test_amount_bounds():
    assert C.check_amount(5_000, 10_000, 50) == 5_000
    for amount, message in [(None, "Enter"), (0, "Enter"), (49, "smallest"), (10_001, "more than")]:
        with pytest.raises(DomainError, match=message):
            C.check_amount(amount, 10_000, 50)


def test_the_default_document_merges_with_its_variables():
    variables = C.merge_variables(msp_legal_name="Acme", msp_email="", client_legal_name="Dental LLC",
                                  amount="$100.00", method="Visa ending 4242", invoices="INV-1 ($100.00)",
                                  reason="", effective_date=date(2026, 3, 21))
    text = evidence.merge(C.DEFAULT_TEXT, variables)
    assert "charge\n**$100.00** once, now, to **Visa ending 4242**" in text
    assert C.CHARGE_AUTHORIZATION in T.TEMPLATE_KINDS and T.variables_for(C.CHARGE_AUTHORIZATION) is C.VARIABLES


# --- deliverables --------------------------------------------------------------------------------------------------


def office(part: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(f"{part}/document.xml", "<x/>")
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "data", "ext"), [
    ("a.pdf", b"%PDF-1.4 ...", "pdf"), ("a.PNG", b"\x89PNG\r\n\x1a\n....", "png"),
    ("a.jpeg", b"\xff\xd8\xff\xe0....", "jpg"), ("a.zip", office("any"), "zip"), ("a.docx", office("word"), "docx"),
    ("a.xlsx", office("xl"), "xlsx"), ("a.csv", b"a,b\n1,2\n", "csv"), ("a.txt", "caf\u00e9\n".encode(), "txt"),
])
def test_allowed_files_by_content(name, data, ext):
    assert D.check_file(name, data).extension == ext


@pytest.mark.parametrize(("name", "data"), [
    ("invoice.pdf", b"MZ\x90\x00"), ("photo.png", b"%PDF-1.4"), ("data.csv", b"\x7fELF\x02\x01"),
    ("notes.txt", b"abc\x00def"), ("run.sh", b"#!/bin/sh"), ("book.xlsx", office("word")), ("noext", b"%PDF-"),
])
def test_renamed_or_unknown_files_are_refused(name, data):
    with pytest.raises(DomainError):
        D.check_file(name, data)


def test_size_limit():
    with pytest.raises(DomainError, match="the limit is 1 KB"):
        D.check_file("a.pdf", b"%PDF-" + b"0" * 1024, max_bytes=1024)


@pytest.mark.parametrize(("raw", "ext", "clean"), [
    ("../../etc/passwd.pdf", "pdf", "passwd.pdf"), ("C:\\Users\\x\\Report Q1.pdf", "pdf", "Report Q1.pdf"),
    ('a"; filename=evil.exe.pdf', "pdf", "a_ filename_evil.exe.pdf"), (".hidden.txt", "txt", "hidden.txt"),
    ("\u00fcber.csv", "csv", "uber.csv"), ("...", "pdf", "file.pdf"), ("x" * 300 + ".zip", "zip", "x" * 116 + ".zip"),
])
def test_filenames_are_sanitised(raw, ext, clean):
    assert D.sanitize_filename(raw, ext) == clean
