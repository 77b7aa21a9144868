"""The equipment register on a real database: add and edit (a serial number the client already has and a negative
value refused, nothing written), the register per client (what recovery notices list), and the CSV import (all or
nothing, errors by line number, the same serial twice in a file or already registered, the file's encoding)."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.domain.errors import DomainError
from portal.domain.imports import HeaderError
from portal.domain.orders import EquipmentFacts
from portal.models import Equipment
from portal.services.enforcement import equipment
from portal.services.errors import NotFound


def facts(serial="SN-1", **kw) -> EquipmentFacts:
    values = {"item": "Firewall FG-60F", "serial_number": serial, "value_cents": 80_000,
              "installed_on": date(2026, 3, 1), "location": "Server room", "owned_until_paid": True}
    values.update(kw)
    return EquipmentFacts(**values)


def stored(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Equipment))


def test_the_register_lists_a_clients_equipment_only(session, make):
    acme, other = make.client("Acme LLC"), make.client("Other LLC")
    equipment.add(session, acme, facts("SN-2", item="Switch", value_cents=35_000, owned_until_paid=False))
    equipment.add(session, acme, facts("SN-1"))
    equipment.add(session, other, facts("SN-1"))  # the same serial at another client is another item

    lines = equipment.for_client(session, acme.id)
    assert [(x.item, x.serial, x.value_cents, x.location, x.owned_until_paid) for x in lines] == [
        ("Firewall FG-60F", "SN-1", 80_000, "Server room", True), ("Switch", "SN-2", 35_000, "Server room", False)]
    assert lines[0].serial_number == "SN-1" and lines[0].value == 80_000
    assert [x.serial for x in equipment.for_client(session, other.id)] == ["SN-1"]
    with pytest.raises(NotFound):
        equipment.get(session, other.id, lines[0].id)


@pytest.mark.parametrize(("bad", "message"), [
    ({"serial_number": "sn-1"}, "Serial number sn-1 is already in this client's register."),
    ({"value_cents": -1}, "Value cannot be negative."),
    ({"item": "  "}, "Item is missing."),
    ({"serial_number": ""}, "Serial_number is missing."),
])
def test_bad_entries_are_refused_and_nothing_written(session, make, bad, message):
    client = make.client()
    equipment.add(session, client, facts())
    with pytest.raises(DomainError) as refused:
        equipment.add(session, client, facts(**bad))
    assert str(refused.value) == message
    assert stored(session) == 1


def test_editing_keeps_serials_unique(session, make):
    client = make.client()
    first = equipment.add(session, client, facts("SN-1"))
    second = equipment.add(session, client, facts("SN-2"))
    with pytest.raises(DomainError, match="already in this client's register"):
        equipment.update(session, client.id, second.id, facts("SN-1"))
    equipment.update(session, client.id, first.id, facts("SN-1", location="Front desk", value_cents=0))
    session.expire_all()
    assert session.get(Equipment, first.id).location == "Front desk"
    assert session.get(Equipment, second.id).serial_number == "SN-2"


def test_the_unique_constraint_backs_the_check(session, make):
    client = make.client()
    equipment.add(session, client, facts("SN-1"))
    session.add(Equipment(client_id=client.id, item="x", serial_number="SN-1", value_cents=0, location="",
                          owned_until_paid=True, created_at=first_created(session)))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    assert stored(session) == 1


def first_created(session):
    return session.scalars(select(Equipment.created_at)).first()


def test_a_good_csv_is_imported_in_one_go(session, make):
    client = make.client()
    report = equipment.import_csv(session, client, io.StringIO(
        "item,serial_number,value,installed_on,location,owned_until_paid,notes\n"
        "Laptop,SN-1,\"1,200.00\",2026-01-10,Office,yes,ignored\n"
        "\n"
        "Printer,SN-2,300,,\"Front\ndesk\",no,\n", newline=""))
    assert (report.rows, report.created, report.errors, report.ignored_columns) == (2, 2, [], ("notes",))
    rows = {x.serial: x for x in equipment.for_client(session, client.id)}
    assert rows["SN-1"].value_cents == 120_000 and rows["SN-1"].installed_on == date(2026, 1, 10)
    assert rows["SN-2"].location == "Front\ndesk" and rows["SN-2"].owned_until_paid is False


def test_a_malformed_csv_writes_nothing_and_reports_every_line(session, make):
    client = make.client()
    equipment.add(session, client, facts("SN-OLD"))
    report = equipment.import_csv(session, client, io.StringIO(
        "item,serial_number,value\n"
        "Laptop,SN-1,1200\n"
        "Router,SN-2,-5\n"
        "Switch,SN-1,10\n"
        "AP,SN-3\n"
        "Old,sn-old,1\n"
        "Good,SN-9,1\n", newline=""))
    assert [str(e) for e in report.errors] == [
        "line 3: value cannot be negative",
        "line 4: serial_number SN-1 is already on line 2",
        "line 5: the line has 2 values but the header has 3 columns",
        "line 6: serial_number sn-old is already in this client's register",
    ]
    assert report.created == 0 and not report.saved
    assert [x.serial for x in equipment.for_client(session, client.id)] == ["SN-OLD"]


def test_an_unusable_file_is_refused(session, make):
    client = make.client()
    with pytest.raises(HeaderError, match="empty"):
        equipment.import_csv(session, client, io.StringIO("", newline=""))
    with pytest.raises(HeaderError, match="missing the required columns serial_number, value"):
        equipment.import_csv(session, client, io.StringIO("item\nLaptop\n", newline=""))
    broken = io.TextIOWrapper(io.BytesIO(b"item,serial_number,value\nA,SN-1,1\nB,\xff,2\n"), encoding="utf-8",
                              newline="")
    report = equipment.import_csv(session, client, broken)
    assert report.errors and "not UTF-8" in str(report.errors[-1])
    assert stored(session) == 0


def test_a_csv_with_a_nul_character_is_reported_by_line_and_nothing_is_written(session, make):
    """A NUL byte cannot be stored in a PostgreSQL text column (and is never meant as part of a serial number):
    the file is refused with the line named, like any other bad value, instead of failing in the database."""
    client = make.client()
    report = equipment.import_csv(session, client, io.StringIO(
        "item,serial_number,value,location\n"
        "Laptop,SN-1,1200,Office\n"
        "Rou\x00ter,SN-2,10,Office\n"
        "Switch,SN-3,10,Back\x00room\n", newline=""))
    assert [e.line for e in report.errors] == [3, 4]
    assert all("NUL" in str(e) for e in report.errors)
    assert report.created == 0 and not report.saved
    assert stored(session) == 0
