"""Deliverables released on payment: what may be attached (by content, not by name), where it is stored, and when
the client may have it (paid with settled money; a bank payment still clearing does not release it)."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from sqlalchemy import func, select

from portal.domain.errors import DomainError
from portal.gateways.payments import sandbox_token
from portal.models import Deliverable
from portal.services import payments
from portal.services.enforcement import deliverables
from portal.services.errors import NotFound
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import new_request, runtime_for

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def stored(session) -> int:
    return session.scalar(select(func.count(Deliverable.id)))


def test_attached_under_the_instance_folder_with_its_hash(session, shop, rt):
    row = deliverables.attach(session, rt, shop.first, filename="../../etc/Q1 report (final).pdf", data=PDF,
                              staff=None)
    assert row.filename == "Q1 report _final.pdf"
    assert row.content_type == "application/pdf" and row.size_bytes == len(PDF)
    assert row.sha256 == hashlib.sha256(PDF).hexdigest()
    path = rt.instance_path / "deliverables" / row.stored_name
    assert path.read_bytes() == PDF and row.stored_name not in row.filename
    assert deliverables.attach(session, rt, shop.first, filename="Backup.docx", data=docx(),
                               staff=None).content_type.endswith("wordprocessingml.document")


@pytest.mark.parametrize(("name", "data", "message"), [
    ("setup.pdf", b"MZ\x90\x00\x03" + b"\x00" * 100, "content is not a PDF"),
    ("notes.txt", b"MZ\x90\x00" + b"\x00" * 50, "content is not a text"),
    ("tool.exe", b"MZ\x90\x00", "cannot be attached"),
    ("report.docx", b"PK\x03\x04 not an office file", "content is not a Word"),
    ("empty.pdf", b"", "empty"),
])
def test_wrong_types_are_refused_and_nothing_is_stored(session, shop, rt, name, data, message):
    with pytest.raises(DomainError, match=message):
        deliverables.attach(session, rt, shop.first, filename=name, data=data, staff=None)
    assert stored(session) == 0
    folder = rt.instance_path / "deliverables"
    assert not folder.exists() or not any(folder.iterdir())


def test_oversized_files_are_refused(session, shop, rt, app):
    rt = rt.__class__(**{**rt.__dict__, "config": {**rt.config, "DELIVERABLE_MAX_BYTES": 1024}})
    with pytest.raises(DomainError, match="the limit is 1 KB"):
        deliverables.attach(session, rt, shop.first, filename="big.pdf", data=PDF + b"0" * 2000, staff=None)
    assert stored(session) == 0


def test_released_only_once_paid_with_settled_money(session, shop, make, clock, sandbox_gateway):
    rt = runtime_for(sandbox_gateway)
    row = deliverables.attach(session, rt, shop.first, filename="report.pdf", data=PDF, staff=None)
    with pytest.raises(DomainError, match="released once the invoice is paid"):
        deliverables.for_client(session, rt, shop.client.id, shop.first.id, row.id)
    with pytest.raises(NotFound):
        deliverables.for_client(session, rt, make.client("Other LLC").id, shop.first.id, row.id)
    with pytest.raises(NotFound):  # the right client, but through another of its invoices
        deliverables.for_client(session, rt, shop.client.id, shop.second.id, row.id)

    payments.pay(session, rt, new_request(session, shop), token=sandbox_token("us_bank_account", "000123456789"),
                 attempt_number=1)
    with pytest.raises(DomainError, match="counts once it has cleared"):
        deliverables.for_client(session, rt, shop.client.id, shop.first.id, row.id)

    clock.advance(minutes=2)
    payments.reconcile(session, rt)
    session.expire_all()
    found = deliverables.for_client(session, rt, shop.client.id, shop.first.id, row.id)
    assert found.path.read_bytes() == PDF and found.filename == "report.pdf"


def test_removed_files_are_gone_for_the_client(session, shop, rt):
    row = deliverables.attach(session, rt, shop.first, filename="report.pdf", data=PDF, staff=None)
    payments.record_payment(session, shop.client, amount_cents=10_000, method="check")
    deliverables.remove(session, rt, shop.first, row.id)
    assert not (rt.instance_path / "deliverables" / row.stored_name).exists()
    with pytest.raises(NotFound):
        deliverables.for_client(session, rt, shop.client.id, shop.first.id, row.id)
    with pytest.raises(DomainError, match="already removed"):
        deliverables.remove(session, rt, shop.first, row.id)
