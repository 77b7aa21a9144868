"""The equipment register: what sits at each client's site, what it is worth, and whether the MSP owns it until it
is paid for (recovery notices list it). Entered one by one or imported from a CSV file.

An import is all or nothing: every line is checked first (format, the same serial twice in the file, a serial
already registered for the client), the errors are reported with their line numbers, and only a file with no
error is written, in one transaction. The unique (client, serial) constraint backs the check against an entry
added by someone else at the same moment.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from typing import TextIO

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import orders as rules
from portal.domain.errors import DomainError
from portal.domain.imports import HeaderError, RowError
from portal.domain.orders import EquipmentFacts
from portal.models import Client, Equipment

from ..errors import NotFound

MAX_LINES = 5_000


def _duplicate(serial: str) -> str:
    return f"Serial number {serial} is already in this client's register."


@dataclass(frozen=True)
class EquipmentLine:
    """One register entry as other areas use it (recovery notices list these)."""

    id: int
    item: str
    serial: str
    value_cents: int
    location: str
    owned_until_paid: bool
    installed_on: date | None
    invoice_id: int | None
    order_id: int | None

    @property
    def serial_number(self) -> str:
        return self.serial

    @property
    def value(self) -> int:  # cents
        return self.value_cents


def _line(row: Equipment) -> EquipmentLine:
    return EquipmentLine(row.id, row.item, row.serial_number, row.value_cents, row.location, row.owned_until_paid,
                         row.installed_on, row.invoice_id, row.order_id)


def for_client(session: Session, client_id: int) -> list[EquipmentLine]:
    """The client's register, by item then serial number."""
    return [_line(row) for row in rows_for_client(session, client_id)]


def rows_for_client(session: Session, client_id: int) -> list[Equipment]:
    return list(session.scalars(_OF_CLIENT, {"client_id": client_id}))


_OF_CLIENT = (select(Equipment).where(Equipment.client_id == bindparam("client_id"))
              .order_by(Equipment.item, Equipment.serial_number, Equipment.id))


def get(session: Session, client_id: int, equipment_id: int) -> Equipment:
    row = session.get(Equipment, equipment_id)
    if row is None or row.client_id != client_id:
        raise NotFound()
    return row


def _serial_taken(session: Session, client_id: int, serial: str, *, besides: int | None = None) -> bool:
    query = select(Equipment.id).where(Equipment.client_id == client_id,
                                       func.lower(Equipment.serial_number) == serial.lower())
    if besides is not None:
        query = query.where(Equipment.id != besides)
    return session.scalar(query.limit(1)) is not None


def add(session: Session, client: Client, facts: EquipmentFacts, *, invoice_id: int | None = None,
        order_id: int | None = None, commit: bool = True) -> Equipment:
    """Register one item. A serial number the client already has, a negative value, a missing item: refused, with
    nothing written."""
    facts = rules.check_equipment(facts)
    if _serial_taken(session, client.id, facts.serial_number):
        raise DomainError(_duplicate(facts.serial_number))
    row = Equipment(client_id=client.id, item=facts.item, serial_number=facts.serial_number,
                    value_cents=facts.value_cents, installed_on=facts.installed_on, location=facts.location,
                    owned_until_paid=facts.owned_until_paid, invoice_id=invoice_id, order_id=order_id,
                    created_at=now())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # registered by someone else since the check
        session.rollback()
        raise DomainError(_duplicate(facts.serial_number)) from None
    if commit:
        session.commit()
    return row


def update(session: Session, client_id: int, equipment_id: int, facts: EquipmentFacts) -> Equipment:
    row = get(session, client_id, equipment_id)
    facts = rules.check_equipment(facts)
    if _serial_taken(session, client_id, facts.serial_number, besides=row.id):
        raise DomainError(_duplicate(facts.serial_number))
    row.item, row.serial_number, row.value_cents = facts.item, facts.serial_number, facts.value_cents
    row.installed_on, row.location, row.owned_until_paid = facts.installed_on, facts.location, facts.owned_until_paid
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise DomainError(_duplicate(facts.serial_number)) from None
    return row


@dataclass
class EquipmentImport:
    rows: int = 0
    created: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()

    @property
    def saved(self) -> bool:
        return not self.errors and self.created > 0


def import_csv(session: Session, client: Client, stream: TextIO) -> EquipmentImport:
    """Read ``stream`` (text, opened with newline="") and, if no line has an error, register every line in one
    transaction. A header that cannot be used raises HeaderError; everything else is reported by line."""
    report = EquipmentImport()
    reader = csv.reader(stream)
    good: list[tuple[int, EquipmentFacts]] = []
    try:
        header_cells = next(reader, None)
        if header_cells is None:
            raise HeaderError("The file is empty: the first line must be the header.")
        header = rules.equipment_header(header_cells)
        report.ignored_columns = header.ignored
        serials = rules.SerialChecks()
        last_line = reader.line_num
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num  # where the record starts (quoted cells span lines)
            if not any(c.strip() for c in cells):
                continue
            report.rows += 1
            if report.rows > MAX_LINES:
                report.errors.append(RowError(line, f"the file has more than {MAX_LINES:,} lines; split it"))
                break
            parsed = rules.equipment_row(line, cells, header)
            if isinstance(parsed, list):
                report.errors.extend(parsed)
                continue
            problems = serials.check(line, parsed)
            if problems:
                report.errors.extend(problems)
                continue
            good.append((line, parsed))
    except (UnicodeDecodeError, csv.Error) as e:
        reason = "the file is not UTF-8 text from here on (save it as UTF-8)" if isinstance(
            e, UnicodeDecodeError) else f"unreadable CSV ({e})"
        report.errors.append(RowError(reader.line_num + 1, f"{reason}; reading stopped"))
    if good:
        stored = {s.lower() for s in session.scalars(
            select(Equipment.serial_number).where(Equipment.client_id == client.id))}
        for line, facts in good:
            if facts.serial_number.lower() in stored:
                report.errors.append(RowError(line, f"serial_number {facts.serial_number} is already in this "
                                                    "client's register", kind="conflict"))
    report.errors.sort(key=lambda e: e.line)
    if report.errors or not good:
        session.rollback()
        return report
    at = now()
    for _, facts in good:
        session.add(Equipment(client_id=client.id, item=facts.item, serial_number=facts.serial_number,
                              value_cents=facts.value_cents, installed_on=facts.installed_on,
                              location=facts.location, owned_until_paid=facts.owned_until_paid, created_at=at))
    try:
        session.commit()
    except IntegrityError:  # an entry added by someone else meanwhile: the whole file stays out
        session.rollback()
        report.errors.append(RowError(0, "a serial number in the file was registered for this client meanwhile; "
                                         "nothing was imported, please try again", kind="conflict"))
        return report
    report.created = len(good)
    return report
