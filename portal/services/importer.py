"""`portal import`: clients, contacts and open invoices from a PSA / accounting CSV export.

Each line is applied whole or not at all. Re-importing a file changes nothing. Without ``strict`` the good lines
are saved chunk by chunk (one commit per chunk). With ``strict`` or ``dry_run`` the whole file is one transaction,
committed only if strict found no problem (dry run: never); there a line the database refuses ends the database
work (nothing will be saved anyway) and the remaining lines are still checked for format.

Speed (issue 14): a chunk's clients, contact emails and invoices (with their lines) are looked up with one query
each; a line whose stored invoice says the same thing (``imports.is_unchanged``, plain rows, no ORM object) writes
nothing. The chunk's new clients, contacts, invoices and invoice lines are written in one go per table
(``bulk.insert_rows``: an executemany on SQLite, COPY on PostgreSQL; new ids read back by their unique keys), then
its likely duplicate bills flagged, inside one savepoint; the rare client or invoice a line changes goes through
the ORM in the same savepoint. On PostgreSQL the planner's statistics are refreshed as a first import grows the
invoice tables (``_Statistics``). If the database refuses any of it, the savepoint is rolled back and the
chunk is done again line by line through the ORM from the same lookups, each written line alone (a savepoint per
line, or the end of the database work in one-transaction mode), so the refused line is the one reported and the
others are saved exactly as a line-by-line import would save them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple, TextIO

from sqlalchemy import Row, Select, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import imports
from portal.domain import invoices as rules
from portal.domain.clients import ClientStatus
from portal.domain.errors import DomainError
from portal.domain.imports import ImportRow, InvoiceFacts, RowError
from portal.models import Client, Contact, Invoice, InvoiceLine

from . import bulk, clients, ledger
from .collections import duplicates
from .errors import Conflict
from .keysets import among, among_bound, key_values, on_postgresql, plain_rows
from .settings import get_settings

# Lines per commit when a chunk is redone line by line without --strict. Each written line is then a savepoint (a
# subtransaction); PostgreSQL keeps up to 64 per transaction in shared memory and slows every other session down
# beyond that, so those commits come at least this often.
BATCH = 50
# Lines looked up and written together (and, without --strict, committed). Bounded, so memory stays flat however
# long the file is. 2,000 rather than 500: a chunk's fixed costs (its lookups, the duplicate check, SQLite's commit
# and its sync to disk) were a sixth of a new import on SQLite and a quarter on PostgreSQL (bench/README.md).
CHUNK = 2000


@dataclass
class ImportReport:
    """What an import did (or, for a dry run or a refused strict run, would have done)."""

    rows: int = 0  # data lines read
    created: int = 0  # lines that created an invoice
    updated: int = 0  # lines that changed an invoice, a client or added a contact
    unchanged: int = 0  # lines already imported as they are
    clients_created: int = 0
    clients_updated: int = 0
    contacts_added: int = 0
    marked_paid: list[int] = field(default_factory=list)  # lines whose "paid" status was imported as open
    issues: list[RowError] = field(default_factory=list)  # errors and conflicts, in line order
    ignored_columns: tuple[str, ...] = ()
    strict: bool = False
    dry_run: bool = False
    saved: bool = False  # the changes were committed

    @property
    def errors(self) -> list[RowError]:
        return [i for i in self.issues if i.kind == "error"]

    @property
    def conflicts(self) -> list[RowError]:
        return [i for i in self.issues if i.kind == "conflict"]

    @property
    def failed(self) -> int:
        """Lines not imported (a line can have several errors)."""
        return len({i.line for i in self.issues})

    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.failed} failed")


class RowConflict(Conflict):
    """The line is well formed but clashes with what is stored; nothing from it was applied."""


def import_csv(
    session: Session,
    stream: TextIO,
    *,
    strict: bool = False,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = BATCH,
) -> ImportReport:
    """Read ``stream`` (text, opened with newline="") and apply it. Raises HeaderError for an unusable header.

    ``on_progress(lines read)`` is called every ``progress_every`` data lines.
    """
    report = ImportReport(strict=strict, dry_run=dry_run)
    reader = csv.reader(stream)
    one_transaction = strict or dry_run
    applier = _Applier(session, report, isolate_lines=not one_transaction)
    chunk: list[ImportRow | list[RowError]] = []  # in line order: a good line, or what is wrong with it
    try:
        header_cells = next(reader, None)
        if header_cells is None:
            raise imports.HeaderError("The file is empty: the first line must be the header.")
        header = imports.read_header(header_cells)
        report.ignored_columns = header.ignored
        checks = imports.FileChecks()
        currency = get_settings(session).currency
        last_line = reader.line_num
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num  # where the record starts (quoted cells can span lines)
            if not "".join(cells).strip():  # a blank line (one C call: this runs for every line)
                continue
            report.rows += 1
            parsed = imports.parse_row(line, cells, header, currency=currency)
            chunk.append(parsed if isinstance(parsed, list) else (checks.check(parsed) or parsed))
            if len(chunk) >= CHUNK:
                applier.apply_chunk(chunk)
                chunk = []
                if not one_transaction:
                    session.commit()
            if on_progress and report.rows % progress_every == 0:
                on_progress(report.rows)
    except (UnicodeDecodeError, csv.Error) as e:
        # decoding runs ahead of the CSV reader, so the bad bytes are at or after the next line
        reason = "the file is not UTF-8 text from here on (save it as UTF-8)" if isinstance(
            e, UnicodeDecodeError) else f"unreadable CSV ({e})"
        chunk.append([RowError(reader.line_num + 1, f"{reason}; reading stopped")])  # after the lines read before
    except BaseException:
        session.rollback()
        raise
    try:
        applier.apply_chunk(chunk)
    except BaseException:
        session.rollback()
        raise
    if dry_run or (strict and report.issues):
        session.rollback()
    else:
        session.commit()
        report.saved = True
    return report


class _Plan(NamedTuple):
    """What a good line will change, worked out with reads only, so a line that changes nothing writes nothing."""

    client: Client | _StoredClient | None  # None: the client is new
    client_changes: dict[str, str]
    contact_new: bool
    invoice: Row | None  # the stored invoice's STORED columns; None: the invoice is new
    invoice_changes: list[str]
    writes: bool  # any of the above


class _Applier:
    """Applies good rows, a chunk at a time. Remembers the clients and contact emails it has met, so a big file
    does not look them up again; forgets them whenever a savepoint rolls back."""

    def __init__(self, session: Session, report: ImportReport, *, isolate_lines: bool):
        self.session = session
        self.report = report
        self.isolate_lines = isolate_lines
        self.stopped = False  # one-transaction mode after the database refused a line
        # A stored client is kept as a plain row (_StoredClient) until a line changes it; a new one, as the transient
        # Client its line validated
        self.clients: dict[str, Client | _StoredClient] = {}
        self.emails: dict[str, int] = {}  # contact email -> client id
        self.absent: set[tuple[str, str]] = set()  # ("client" | "email", key): looked up, not stored
        # The current chunk's invoice numbers looked up and not stored (per chunk: a file's numbers are all
        # different, so remembering them across chunks would only grow with the file)
        self.absent_invoices: set[str] = set()
        self.invoices: dict[str, Row] = {}  # the current chunk's stored invoices, by number
        self.created: list[Invoice | _Created] = []  # invoices written since the last duplicate check
        # Contact emails planned in this chunk but not written yet -> their client (maybe a not yet written one)
        self.pending_emails: dict[str, Client | _StoredClient] = {}
        # External id -> (name, address) of the last line whose client, once the line was applied, says exactly
        # that: a later line describing its client the same way changes nothing (FileChecks keeps one description
        # per client per file, later lines only filling in blanks), so it skips the field by field comparison. Keyed
        # by the id, so a line costs one lookup and a comparison, not a hash of its whole description.
        self.matching: dict[str, tuple[str, tuple]] = {}
        self.statistics = _Statistics(session)

    def apply_chunk(self, chunk: list[ImportRow | list[RowError]]) -> None:
        """Record each entry of ``chunk`` in line order: problems found reading it, or what applying it did."""
        rows = [e for e in chunk if isinstance(e, ImportRow)]
        outcomes = None
        if rows and not self.stopped:
            self._look_up(rows)
            known = (dict(self.clients), dict(self.emails), set(self.absent), dict(self.matching))
            try:
                with self.session.begin_nested():  # the chunk's writes go out together at the end
                    pending = _Pending()
                    outcomes = [e if isinstance(e, list) else self._plan_and_write(e, pending=pending)
                                for e in chunk]
                    self._write_pending(pending)
            except (DomainError, IntegrityError):
                # Some line was refused: again line by line from the same lookups, so that line is the one reported
                self.clients, self.emails, self.absent, self.matching = known
                self.pending_emails = {}
                self.created = []
                outcomes = None
        if outcomes is None:
            outcomes = []
            for n, e in enumerate(chunk, 1):
                outcomes.append(e if isinstance(e, list) else self._apply_alone(e))
                if self.isolate_lines and n % BATCH == 0:
                    self.session.commit()
        for outcome in outcomes:
            self._record(outcome)
        self.invoices.clear()
        self.absent_invoices.clear()

    def _plan_and_write(self, row: ImportRow, *, pending: _Pending | None = None
                        ) -> tuple[ImportRow, _Plan] | list[RowError]:
        """``pending``: collect the line's new rows there (written with the chunk); None: write them now."""
        try:
            plan = self._plan(row)
        except RowConflict as e:  # found with reads only: nothing from the line was written
            return [RowError(row.line, str(e), kind="conflict")]
        if plan.writes:
            if pending is None:
                self._write(row, plan)
            else:
                self._collect(row, plan, pending)
        return row, plan

    def _collect(self, row: ImportRow, plan: _Plan, pending: _Pending) -> None:
        """Like ``_write``, but new clients, contacts and invoices wait in ``pending`` for the chunk's bulk inserts.
        A new client is a transient Client (never added to the session) holding the same validated fields
        ``clients.create_client`` would store, so the chunk's later lines see it as this line left it."""
        client = plan.client
        if client is None:
            client = Client(legal_name="", external_id=row.client_external_id, created_at=now())
            clients.update_client(self.session, client, commit=False, **row.client_fields())  # validates, no query
            self.clients[row.client_external_id] = client
            pending.clients.append(client)
        elif plan.client_changes:  # a stored client through the ORM; a pending one just in memory
            client = self._changing(client)
            clients.update_client(self.session, client, commit=False, **plan.client_changes)
        if plan.contact_new:
            name = (row.contact_name or row.contact_email or "").strip()
            email = clients.normalize_email(row.contact_email or "")
            if not name or "@" not in email:  # what clients.add_contact refuses
                raise DomainError("A contact needs a name and a valid email address.")
            pending.contacts.append((client, name, email))
            self.pending_emails[email] = client
        if plan.invoice is None:
            rules.check_dates(row.issue_date, row.due_date)
            pending.invoices.append((client, row))
        elif plan.invoice_changes:
            replace_imported_invoice(self.session, self.session.get(Invoice, plan.invoice.id), row, flush=False)

    def _write_pending(self, pending: _Pending) -> None:
        """The chunk's writes: the ORM's few updates, then one multi-row INSERT per table, then duplicate flags."""
        session = self.session
        session.flush()
        at = now()
        if pending.clients:
            ids = bulk.insert_and_get_ids(session, Client.__table__, "external_id", [
                {**_CLIENT_DEFAULTS, **{k: getattr(c, k) for k in _CLIENT_DEFAULTS if getattr(c, k) is not None},
                 "legal_name": c.legal_name, "external_id": c.external_id, "created_at": c.created_at}
                for c in pending.clients])
            for client, client_id in zip(pending.clients, ids, strict=True):
                client.id = client_id
        if pending.contacts:
            bulk.insert_rows(session, Contact.__table__, [
                {"client_id": c.id, "name": name, "email": email, "phone": "", "title": "", "is_billing": True,
                 "portal_access": True, "password_hash": None, "session_epoch": 0, "created_at": at,
                 "last_sign_in_at": None} for c, name, email in pending.contacts])
        if pending.invoices:
            values = []
            for client, row in pending.invoices:
                totals = imports.totals_for(row)
                values.append({
                    "client_id": client.id, "number": row.invoice_number, "status": rules.OPEN,
                    "currency": row.currency, "issue_date": row.issue_date, "due_date": row.due_date,
                    "tax_rate": imports.effective_tax_rate(row), "subtotal_cents": totals.subtotal_cents,
                    "tax_cents": totals.tax_cents, "total_cents": totals.total_cents, "memo": "", "source": "import",
                    "created_at": at, "issued_at": at, "paid_at": None, "voided_at": None, "void_reason": ""})
            ids = bulk.insert_and_get_ids(session, Invoice.__table__, "number", values)
            lines = []
            for invoice_id, (_, row), v in zip(ids, pending.invoices, values, strict=True):
                line = imports.line_for(row)
                lines.append({"invoice_id": invoice_id, "position": 1, "description": line.description,
                              "quantity": line.quantity, "unit_price_cents": line.unit_price_cents,
                              "amount_cents": v["subtotal_cents"], "taxable": line.taxable})
                self.created.append(_Created(invoice_id, v["client_id"], v["number"], v["total_cents"],
                                             v["issue_date"], v["currency"]))
            bulk.insert_rows(session, InvoiceLine.__table__, lines)
            self.statistics.grown(len(lines))  # before the duplicate check, whose plan depends on them
        self._flag_duplicates()
        # A written client is looked up again (as a persistent object) by the next chunk that names it
        for client in pending.clients:
            del self.clients[client.external_id]
            self.absent.discard(("client", client.external_id))
        for email, client in self.pending_emails.items():
            self.emails[email] = client.id
        self.pending_emails = {}

    def _apply_alone(self, row: ImportRow) -> tuple[ImportRow, _Plan] | list[RowError] | None:
        """The line on its own: in a savepoint, or (one transaction) as the end of the database work if refused."""
        if self.stopped:
            return None
        try:
            if self.isolate_lines:
                with self.session.begin_nested():
                    outcome = self._plan_and_write(row)
                    self._flag_duplicates()
            else:
                outcome = self._plan_and_write(row)
                self.session.flush()
                self._flag_duplicates()
        except (DomainError, IntegrityError) as e:
            # Validation should have caught it; an IntegrityError means another process wrote the same record
            message = str(e) if isinstance(e, DomainError) else "the database refused the line (was the same " \
                "invoice or contact added by someone else during the import?)"
            if not self.isolate_lines:
                self.session.rollback()
                self.stopped = True
                message += "; nothing will be saved, and later lines were only checked for format"
            self.clients.clear()  # rolled back: what the line created no longer exists
            self.emails.clear()
            self.absent.clear()
            self.absent_invoices.clear()
            self.matching.clear()
            self.invoices.clear()
            self.created = []
            return [RowError(row.line, message)]
        return outcome

    def _flag_duplicates(self) -> None:
        """Likely duplicate bills among the invoices just written are held for the admin (flag rows only):
        ``duplicates.flag_new`` decides in one call for the chunk, comparing each invoice with its twins only."""
        if not self.created:
            return
        self.session.flush()
        created, self.created = self.created, []
        duplicates.flag_new(self.session, created)

    def _record(self, outcome: tuple[ImportRow, _Plan] | list[RowError] | None) -> None:
        report = self.report
        if outcome is None:
            return
        if isinstance(outcome, list):
            report.issues.extend(outcome)
            return
        row, plan = outcome
        report.clients_created += plan.client is None
        report.clients_updated += bool(plan.client_changes)
        report.contacts_added += plan.contact_new
        if plan.invoice is None:
            report.created += 1
        elif plan.writes:
            report.updated += 1
        else:
            report.unchanged += 1
        if row.marked_paid:
            report.marked_paid.append(row.line)

    def _look_up(self, rows: list[ImportRow]) -> None:
        """One query each for the chunk's clients, contact emails and invoices (with their lines)."""
        session = self.session
        wanted = {r.client_external_id for r in rows} - self.clients.keys()
        for row in session.execute(select(*_STORED_CLIENT).where(among(session, Client.external_id, wanted))) \
                if wanted else ():
            self.clients[row.external_id] = _StoredClient(*row)
        self.absent.update(("client", k) for k in wanted - self.clients.keys())
        # the stored clients a line of the chunk changes, as ORM objects in one query (the change goes through them)
        matching = self.matching
        changing = {c.id for r in rows if matching.get(r.client_external_id) != (r.client_name, r.address)
                    and isinstance(c := self.clients.get(r.client_external_id), _StoredClient)
                    and imports.client_changes(r, c)}
        for client in session.scalars(select(Client).where(among(session, Client.id, changing))) if changing else ():
            self.clients[client.external_id] = client
        emails = {r.contact_email for r in rows if r.contact_email} - self.emails.keys()
        if emails:
            self.emails.update(session.execute(select(Contact.email, Contact.client_id)
                                               .where(among(session, Contact.email, emails))).all())
        self.absent.update(("email", k) for k in emails - self.emails.keys())
        numbers = [r.invoice_number for r in rows]
        self.invoices = _stored_invoices(session, numbers)
        self.absent_invoices = {n for n in numbers if n not in self.invoices}

    def _plan(self, row: ImportRow) -> _Plan:
        """Reads only. Raises RowConflict when the line clashes with what is stored."""
        client = self._client(row.client_external_id)
        contact_new = self._contact_is_new(row, client)
        invoice = self._invoice(row.invoice_number)
        invoice_changes: list[str] = []
        if invoice is not None:
            if client is None or invoice[CLIENT_ID] != client.id:
                owner = self.session.get(Client, invoice[CLIENT_ID])
                raise RowConflict(f"invoice {row.invoice_number} belongs to another client "
                                  f"({_client_label(owner)}); it was not changed")
            facts = invoice[FACTS:]
            if not imports.is_unchanged(row, facts):
                invoice_changes = imports.invoice_differences(row, InvoiceFacts._make(facts))
            if invoice_changes:
                check_replaceable(self.session, invoice)
        client_changes = {}
        described = row.client_name, row.address
        if self.matching.get(row.client_external_id) != described:
            if client is not None:
                client_changes = imports.client_changes(row, client)
            # true once the line is applied; forgotten with it if it is rolled back. An equal description already
            # kept stays: replacing it would keep one line's strings of every chunk alive, scattered through memory
            # the chunks done could otherwise give back (a million-line import peaked at 201 MB so, 185-194 without)
            self.matching[row.client_external_id] = described
        writes = client is None or invoice is None or contact_new or bool(client_changes) or bool(invoice_changes)
        return _Plan(client, client_changes, contact_new, invoice, invoice_changes, writes)

    def _write(self, row: ImportRow, plan: _Plan) -> None:
        """The line's writes through the ORM, now (a line on its own)."""
        client = plan.client
        if client is None:
            client = clients.create_client(self.session, external_id=row.client_external_id, commit=False,
                                           **row.client_fields())
            self.clients[row.client_external_id] = client
        elif plan.client_changes:
            client = self._changing(client)
            clients.update_client(self.session, client, commit=False, **plan.client_changes)
        if plan.contact_new:
            clients.add_contact(self.session, client, name=row.contact_name or row.contact_email,
                                email=row.contact_email, commit=False)
            self.emails[row.contact_email] = client.id
        if plan.invoice is None:
            self.created.append(create_imported_invoice(self.session, client, row))
        elif plan.invoice_changes:
            replace_imported_invoice(self.session, self.session.get(Invoice, plan.invoice.id), row)

    def _client(self, external_id: str) -> Client | _StoredClient | None:
        if external_id not in self.clients:
            if ("client", external_id) in self.absent:
                return None
            row = self.session.execute(select(*_STORED_CLIENT).where(Client.external_id == external_id)).first()
            if row is None:
                return None
            self.clients[external_id] = _StoredClient(*row)
        return self.clients[external_id]

    def _changing(self, client: Client | _StoredClient) -> Client:
        """The ORM object of a client a line changes, kept from now on (later lines compare with the change). A
        chunk's are loaded together by ``_look_up``; a line applied on its own loads its client here."""
        if isinstance(client, _StoredClient):
            stored = self.session.get(Client, client.id)
            if stored is None:  # deleted while the import ran: the line is refused, the chunk redone without it
                raise DomainError(f"client {client.external_id} no longer exists")
            client = self.clients[client.external_id] = stored
        return client

    def _invoice(self, number: str) -> Row | None:
        if number in self.invoices or number in self.absent_invoices:
            return self.invoices.get(number)
        return _stored_invoices(self.session, [number]).get(number)

    def _contact_is_new(self, row: ImportRow, client: Client | _StoredClient | None) -> bool:
        """An email that already signs in for another client makes the line a conflict."""
        email = row.contact_email
        if not email:
            return False
        if email in self.pending_emails:  # an earlier line of this chunk adds it
            owner = self.pending_emails[email]
            if owner is client or (client is not None and owner.id is not None and owner.id == client.id):
                return False  # the same pending client, or the same stored one (as a row or, once changed, the ORM's)
            raise RowConflict(f"contact_email {email} already belongs to another client "
                              f"({_client_label(owner)}); an email can sign in for one client only")
        if email not in self.emails:
            if ("email", email) in self.absent:
                return True
            owner_id = self.session.scalar(select(Contact.client_id).where(Contact.email == email))
            if owner_id is None:
                return True
            self.emails[email] = owner_id
        if client is None or self.emails[email] != client.id:
            owner = self.session.get(Client, self.emails[email])
            raise RowConflict(f"contact_email {email} already belongs to another client "
                              f"({_client_label(owner)}); an email can sign in for one client only")
        return False


class _Statistics:
    """PostgreSQL: the planner's statistics of the invoice tables kept up with an import that grows them.

    Importing into a new or small database (a new portal's first import) multiplies the invoices many times over,
    and autovacuum's ANALYZE comes a minute or more behind. Until it does, the planner takes the tables for nearly
    empty and plans the duplicate-bill check (one index probe per (client, total) pair) as a scan of every invoice
    in the window: at 100,000 lines it cost 30 ms a chunk and rising, two chunks two seconds each. So the import
    runs ANALYZE itself each time it has added as many invoices as the tables held at the last one (and at least a
    chunk): a handful of times for a large first import (at 2,000, 4,000, 8,000, ... invoices: six times for
    100,000 lines), never for a routine import into a large database. ANALYZE counts the transaction's own
    new rows, so a strict import (one transaction) is covered too."""

    def __init__(self, session: Session):
        self.session = session
        self.on = session.get_bind().dialect.name == "postgresql"
        self.rows: float | None = None  # invoices at the last ANALYZE, as the planner knows them (None: not read)
        self.added = 0  # invoices added since

    def grown(self, invoices: int) -> None:
        if not self.on:  # SQLite has no statistics unless ANALYZE was run, and plans by its indexes alone
            return
        if self.rows is None:
            known = self.session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'invoices'::regclass"))
            self.rows = max(0.0, known)  # -1: never analyzed
        self.added += invoices
        if self.added >= max(CHUNK, self.rows):
            self.session.execute(text("ANALYZE invoices, invoice_lines"))
            self.rows, self.added = self.rows + self.added, 0


@dataclass
class _Pending:
    """A chunk's new rows, written together by ``_Applier._write_pending``."""

    clients: list[Client] = field(default_factory=list)  # transient, validated; get their ids when inserted
    contacts: list[tuple[Client | _StoredClient, str, str]] = field(default_factory=list)  # (client, name, email)
    invoices: list[tuple[Client | _StoredClient, ImportRow]] = field(default_factory=list)


class _StoredClient(NamedTuple):
    """A stored client as a line is compared with it: a plain row, not an ORM object, which the import would keep
    for each of a large file's clients to the end (~2 KB each: 22 MB for 10,000 clients). A line that changes the
    client gets the ORM object (``_Applier._changing``)."""

    id: int
    external_id: str
    legal_name: str
    address_line1: str
    address_line2: str
    city: str
    region: str
    postal_code: str
    country: str


_STORED_CLIENT = tuple(getattr(Client, name) for name in _StoredClient._fields)


class _Created(NamedTuple):
    """A bulk-inserted invoice as ``duplicates.flag_new`` reads it (a tuple: one for each new invoice of a chunk)."""

    id: int
    client_id: int
    number: str
    total_cents: int
    issue_date: object
    currency: str
    source: str = "import"
    status: str = rules.OPEN


# What a new client gets for the fields its line leaves blank: the model's defaults.
_CLIENT_DEFAULTS = {"address_line1": "", "address_line2": "", "city": "", "region": "", "postal_code": "",
                    "country": "US", "status": ClientStatus.ACTIVE, "net_days": None, "notes": ""}


def _client_label(client: Client | _StoredClient | None) -> str:
    if client is None:
        return "unknown"
    return f"{client.legal_name}, {client.external_id}" if client.external_id else client.legal_name


# What the import compares and checks of a stored invoice, one row per invoice read as a plain row (not ORM
# objects: most lines of a re-imported file change nothing, and building an Invoice and its lines for each was most
# of their cost): the invoice's own columns, then what it says (``imports.InvoiceFacts``, in its order) from
# ``FACTS`` on. An imported invoice has one line, so a stored one says the same as a line only if it has exactly
# one: its line and its number of lines are enough to compare (of an invoice with several, any one line).
_LINES = (select(func.count()).where(InvoiceLine.invoice_id == Invoice.id).correlate(Invoice)
          .scalar_subquery().label("line_count"))
STORED = (Invoice.id, Invoice.number, Invoice.client_id, Invoice.source, Invoice.status, Invoice.issue_date,
          Invoice.due_date, Invoice.currency, Invoice.tax_cents, Invoice.total_cents, InvoiceLine.description,
          InvoiceLine.quantity, InvoiceLine.unit_price_cents, _LINES)
CLIENT_ID, FACTS = 2, 5  # read by position: a Row's attribute is a lookup by name (~0.45 us, its index 0.02)


def _stored_invoices(session: Session, numbers: list[str]) -> dict[str, Row]:
    """The stored invoices with these numbers, by number, in one query. Plain rows (keysets.plain_rows): the ORM's
    result handling was a tenth of a re-import's time and builds nothing these need."""
    rows = plain_rows(session, _stored_statement(on_postgresql(session)),
                      {"numbers": key_values(session, Invoice.number, numbers)})
    return {row[1]: row for row in rows.all()}  # an invoice with several lines: any one of its rows


@cache
def _stored_statement(postgresql: bool) -> Select:
    """Built once (bound by name: numbers)."""
    return (select(*STORED).outerjoin(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
            .where(among_bound(Invoice.number, "numbers", postgresql=postgresql)))


# --- billing for imported invoices ------------------------------------------------------------------------------
# billing.create_invoice works out tax from a rate; an export brings the tax as an amount its own system already
# rounded, so imported invoices keep that amount and the total matches the accounting system to the cent.

def create_imported_invoice(session: Session, client: Client | _StoredClient, row: ImportRow, *, flush: bool = True
                            ) -> Invoice:
    """An open (issued) invoice from an export line. The caller commits (and flushes, with ``flush=False``)."""
    invoice = Invoice(client_id=client.id, number=row.invoice_number, status=rules.DRAFT, currency=row.currency,
                      created_at=now(), source="import")
    _fill(invoice, row)
    invoice.status, invoice.issued_at = rules.OPEN, now()  # amount > 0 (parse_row), so there is something owed
    session.add(invoice)
    if flush:
        session.flush()
    return invoice


def check_replaceable(session: Session, invoice: Invoice | Row) -> None:
    """Only an imported invoice that is still open with nothing paid may be rewritten by a later export."""
    if invoice.source != "import":
        raise RowConflict(f"invoice {invoice.number} was created in the portal, not imported; it was not changed")
    if invoice.status != rules.OPEN:
        raise RowConflict(f"invoice {invoice.number} is {invoice.status}; it was not changed")
    if ledger.paid_cents(session, [invoice.id])[invoice.id]:
        raise RowConflict(f"invoice {invoice.number} has payments applied; it was not changed "
                          "(unapply them first to re-import it)")


def replace_imported_invoice(session: Session, invoice: Invoice, row: ImportRow, *, flush: bool = True) -> Invoice:
    """Rewrite an open, unpaid imported invoice from a newer export line. The caller commits (and flushes, with
    ``flush=False``)."""
    check_replaceable(session, invoice)
    _fill(invoice, row)
    if flush:
        session.flush()
    return invoice


def _fill(invoice: Invoice, row: ImportRow) -> None:
    rules.check_dates(row.issue_date, row.due_date)
    totals = imports.totals_for(row)
    line = imports.line_for(row)
    invoice.issue_date, invoice.due_date, invoice.currency = row.issue_date, row.due_date, row.currency
    invoice.tax_rate = imports.effective_tax_rate(row)
    invoice.subtotal_cents, invoice.tax_cents, invoice.total_cents = (
        totals.subtotal_cents, totals.tax_cents, totals.total_cents,
    )
    invoice.lines = [InvoiceLine(position=1, description=line.description, quantity=line.quantity,
                                 unit_price_cents=line.unit_price_cents, amount_cents=totals.line_amounts[0],
                                 taxable=line.taxable)]
