"""`portal import`: clients, contacts and open invoices from a CSV export, on a real database."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.models import Client, Contact, Invoice, InvoiceLine
from portal.services import ledger
from portal.services.importer import import_csv
from portal.services.settings import get_settings

HEADER = ["client_external_id", "client_name", "invoice_number", "issue_date", "due_date", "description", "amount",
          "currency", "contact_email", "contact_name", "tax", "status", "client_address_line1", "city", "region",
          "postal_code", "country"]


def row(number: str = "1001", client: str = "PSA-1", name: str = "Harbor Dental Group", **cells) -> dict:
    values = {
        "client_external_id": client, "client_name": name, "invoice_number": number, "issue_date": "2026-03-01",
        "due_date": "2026-03-31", "description": "Managed IT services — March", "amount": "1250.00",
        "currency": "USD", "contact_email": f"ap@{client.lower()}.test", "contact_name": "Accounts Payable",
        "tax": "", "status": "open", "client_address_line1": "812 N 9th St", "city": "Boise", "region": "ID",
        "postal_code": "83702", "country": "US",
    }
    values.update(cells)
    return values


def write_csv(path: Path, rows: list[dict], *, bom: bool = False, header: list[str] = HEADER) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([r.get(c, "") for c in header])
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")
    return path


def run_import(session, path: Path, **options):
    with path.open(encoding="utf-8-sig", newline="") as stream:
        report = import_csv(session, stream, **options)
    session.expire_all()  # read what the database now holds, not what this session remembers
    return report


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def invoice(session, number: str) -> Invoice:
    return session.scalar(select(Invoice).where(Invoice.number == number))


@pytest.fixture
def export(tmp_path) -> Path:
    return write_csv(tmp_path / "export.csv", [
        row("1001", tax="75.00"),
        row("1002", issue_date="2026-02-01", due_date="2026-03-03", description="Firewall project, 6.5 hours",
            amount="1,137.50", contact_email="dana@psa-1.test", contact_name="Dana Whitfield"),
        row("2001", client="PSA-2", name="Cedar & Pine Law, PLLC", city="Meridian", postal_code="83642"),
    ], bom=True)


def test_first_import_creates_clients_contacts_and_open_invoices(session, export):
    report = run_import(session, export)

    assert (report.created, report.updated, report.unchanged, report.failed) == (3, 0, 0, 0)
    assert (report.clients_created, report.contacts_added, report.saved) == (2, 3, True)
    harbor = session.scalar(select(Client).where(Client.external_id == "PSA-1"))
    assert (harbor.legal_name, harbor.address_line1, harbor.city, harbor.postal_code) == (
        "Harbor Dental Group", "812 N 9th St", "Boise", "83702")
    assert sorted(c.email for c in harbor.contacts) == ["ap@psa-1.test", "dana@psa-1.test"]
    first = invoice(session, "1001")
    assert (first.client_id, first.status, first.source, first.currency) == (harbor.id, "open", "import", "USD")
    assert (first.issue_date, first.due_date) == (date(2026, 3, 1), date(2026, 3, 31))
    assert (first.subtotal_cents, first.tax_cents, first.total_cents) == (125000, 7500, 132500)
    assert [(li.description, li.amount_cents) for li in first.lines] == [("Managed IT services — March", 125000)]
    assert first.issued_at is not None
    assert invoice(session, "1002").total_cents == 113750
    assert ledger.balance_of(session, first) == 132500


def test_reimporting_the_same_file_changes_nothing(session, export):
    run_import(session, export)
    before = [(i.number, i.total_cents, i.due_date) for i in session.scalars(select(Invoice).order_by(Invoice.id))]

    report = run_import(session, export)

    assert report.summary() == "0 created, 0 updated, 3 unchanged, 0 failed"
    assert (report.clients_created, report.clients_updated, report.contacts_added) == (0, 0, 0)
    assert [(i.number, i.total_cents, i.due_date) for i in session.scalars(select(Invoice).order_by(Invoice.id))] \
        == before
    assert (count(session, Client), count(session, Contact), count(session, InvoiceLine)) == (2, 3, 3)


def test_changed_row_updates_an_open_unpaid_imported_invoice(session, export, tmp_path):
    run_import(session, export)
    changed = write_csv(tmp_path / "changed.csv", [
        row("1001", amount="1300.00", tax="", due_date="2026-04-15", description="Managed IT services — March (13)"),
    ])

    report = run_import(session, changed)

    assert (report.created, report.updated, report.unchanged, report.failed) == (0, 1, 0, 0)
    updated = invoice(session, "1001")
    assert (updated.subtotal_cents, updated.tax_cents, updated.total_cents) == (130000, 0, 130000)
    assert updated.due_date == date(2026, 4, 15) and updated.status == "open"
    assert [(li.description, li.amount_cents) for li in updated.lines] == [("Managed IT services — March (13)",
                                                                            130000)]
    assert count(session, InvoiceLine) == 3  # the old line was replaced, not kept beside the new one


@pytest.mark.parametrize("extra_lines", [1, -1])
def test_a_stored_invoice_with_other_lines_than_the_exports_one_is_rewritten(session, export, extra_lines):
    """The invoice holds the export's line twice (whichever row of it is compared, only the number of lines tells
    it apart), or has lost its line: either way it does not say what the line says."""
    run_import(session, export)
    stored = invoice(session, "1001")
    if extra_lines > 0:
        stored.lines.append(InvoiceLine(position=2, description="Managed IT services — March", quantity=Decimal(1),
                                        unit_price_cents=125000, amount_cents=125000, taxable=False))
    else:
        stored.lines.clear()
    session.commit()

    report = run_import(session, export)

    assert (report.updated, report.unchanged) == (1, 2)
    assert [(li.description, li.amount_cents) for li in invoice(session, "1001").lines] == [
        ("Managed IT services — March", 125000)]


@pytest.mark.parametrize(("paid", "status"), [(132500, "paid"), (50000, "open")])
def test_changed_row_is_a_conflict_when_money_was_applied(session, export, tmp_path, make, paid, status):
    run_import(session, export)
    harbor = session.scalar(select(Client).where(Client.external_id == "PSA-1"))
    make.payment(harbor, paid, allocations={invoice(session, "1001").id: paid})
    changed = write_csv(tmp_path / "changed.csv", [row("1001", amount="999.00"), row("1003")])

    report = run_import(session, changed)

    assert [(i.line, i.kind, i.message) for i in report.issues] == [
        (2, "conflict", "invoice 1001 has payments applied; it was not changed (unapply them first to re-import it)"
         if status == "open" else "invoice 1001 is paid; it was not changed"),
    ]
    kept = invoice(session, "1001")
    assert (kept.total_cents, kept.status) == (132500, status)
    assert invoice(session, "1003") is not None  # the good line still imported
    assert (report.created, report.failed) == (1, 1)


def test_invoice_made_in_the_portal_is_not_overwritten(session, make, tmp_path):
    client = make.client(external_id="PSA-1", name="Harbor Dental Group")
    make.invoice(client, 5000, number="1001")
    report = run_import(session, write_csv(tmp_path / "x.csv", [row("1001", contact_email="", contact_name="")]))
    assert [i.message for i in report.conflicts] == [
        "invoice 1001 was created in the portal, not imported; it was not changed"]
    assert invoice(session, "1001").total_cents == 5000


def test_invoice_number_of_another_client_is_a_conflict(session, export, tmp_path):
    run_import(session, export)
    report = run_import(session, write_csv(tmp_path / "x.csv", [row("1001", client="PSA-9", name="Other LLC")]))
    assert [str(i) for i in report.issues] == [
        "line 2: invoice 1001 belongs to another client (Harbor Dental Group, PSA-1); it was not changed"]
    assert session.scalar(select(Client).where(Client.external_id == "PSA-9")) is None  # nothing from the line


def test_client_name_and_address_are_updated_when_changed(session, export, tmp_path):
    run_import(session, export)
    report = run_import(session, write_csv(tmp_path / "x.csv", [
        row("1001", name="Harbor Dental Group, PC", client_address_line1="900 W Main St", city="", tax="75.00"),
    ]))
    assert (report.updated, report.clients_updated, report.unchanged) == (1, 1, 0)
    harbor = session.scalar(select(Client).where(Client.external_id == "PSA-1"))
    assert (harbor.legal_name, harbor.address_line1, harbor.city) == ("Harbor Dental Group, PC", "900 W Main St",
                                                                      "Boise")  # a blank cell keeps the value


def test_bad_lines_are_reported_by_line_and_good_lines_import(session, tmp_path):
    path = tmp_path / "mixed.csv"
    write_csv(path, [
        row("1001"),
        row("1002", issue_date="2026-02-30"),
        row("1003", amount="12.345"),
        row("1001", amount="99.00"),
        row("1004", description="Line one\nline two of a quoted description"),
        row("1005", due_date="2026-02-01", currency="EUR"),
        row("1006"),
    ])

    report = run_import(session, path)

    assert [str(i) for i in report.issues] == [
        "line 3: issue_date '2026-02-30' is not a date (use YYYY-MM-DD, e.g. 2026-03-16)",
        "line 4: amount: '12.345' is not an amount (use digits with up to two decimals, e.g. 1250.00)",
        "line 5: invoice_number 1001 is already on line 2",
        # line 6 is the quoted two-line description, so the next record starts on line 8
        "line 8: due_date 2026-02-01 is before issue_date 2026-03-01",
        "line 8: currency EUR is not the portal's currency (USD)",
    ]
    assert (report.rows, report.created, report.failed) == (7, 3, 4)
    assert sorted(session.scalars(select(Invoice.number))) == ["1001", "1004", "1006"]
    assert invoice(session, "1001").total_cents == 125000  # the duplicate line did not touch it


def test_contact_email_of_another_client_fails_that_line(session, make, tmp_path):
    other = make.client(name="Cedar & Pine Law, PLLC")
    make.contact(other, email="shared@office.test")

    report = run_import(session, write_csv(tmp_path / "x.csv", [
        row("1001", client="PSA-7", name="Summit PT", contact_email="Shared@Office.test"),
        row("1002"),
    ]))

    assert [(i.line, i.message) for i in report.issues] == [
        (2, "contact_email shared@office.test already belongs to another client (Cedar & Pine Law, PLLC); "
            "an email can sign in for one client only")]
    assert session.scalar(select(Client).where(Client.external_id == "PSA-7")) is None
    assert invoice(session, "1001") is None and invoice(session, "1002") is not None
    assert session.scalar(select(Contact.client_id).where(Contact.email == "shared@office.test")) == other.id


def test_paid_rows_are_imported_as_open(session, tmp_path):
    report = run_import(session, write_csv(tmp_path / "x.csv", [row("1001", status="paid")]))
    assert report.marked_paid == [2]
    assert invoice(session, "1001").status == "open"
    assert ledger.balance_of(session, invoice(session, "1001")) == 125000


def test_strict_imports_nothing_when_a_line_fails(session, export, tmp_path):
    # The MSP's settings row already exists, as in real life: nothing before the first line writes, which is
    # when SQLite's driver would otherwise let a line's savepoint become (and commit) the whole transaction.
    get_settings(session)
    session.commit()
    bad = write_csv(tmp_path / "bad.csv", [row("1001"), row("1002", amount="abc"), row("2001", client="PSA-2")])
    report = run_import(session, bad, strict=True)
    assert (report.created, report.failed, report.saved) == (2, 1, False)
    assert (count(session, Invoice), count(session, Client), count(session, Contact)) == (0, 0, 0)

    report = run_import(session, export, strict=True)  # a clean file imports in full
    assert (report.created, report.saved, count(session, Invoice)) == (3, True, 3)


def test_dry_run_reports_but_saves_nothing(session, export):
    get_settings(session)
    session.commit()
    report = run_import(session, export, dry_run=True)
    assert (report.created, report.clients_created, report.saved) == (3, 2, False)
    assert (count(session, Invoice), count(session, Client), count(session, Contact)) == (0, 0, 0)


# --- the command ----------------------------------------------------------------------------------------------

def test_cli_prints_progress_and_summary_and_exits_zero(app, session, export):
    result = app.test_cli_runner().invoke(args=["import", str(export), "--progress-every", "2"])
    assert result.exit_code == 0, result.output
    assert "Importing export.csv" in result.output
    assert "2 lines read" in result.stderr
    assert "3 created, 0 updated, 0 unchanged, 0 failed (3 lines; 0 errors, 0 conflicts)." in result.output
    assert "Clients: 2 created, 0 updated. Contacts: 3 added." in result.output
    assert count(session, Invoice) == 3

    again = app.test_cli_runner().invoke(args=["import", str(export)])
    assert again.exit_code == 0
    assert "0 created, 0 updated, 3 unchanged, 0 failed" in again.output


def test_cli_exits_non_zero_and_lists_failed_lines(app, session, tmp_path):
    path = write_csv(tmp_path / "bad.csv", [row("1001"), row("1002", due_date="31/03/2026")])
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "line 3: due_date '31/03/2026' is not a date" in result.stderr
    assert "1 created, 0 updated, 0 unchanged, 1 failed" in result.output
    assert count(session, Invoice) == 1


def test_cli_strict_imports_nothing(app, session, tmp_path):
    path = write_csv(tmp_path / "bad.csv", [row("1001"), row("1002", currency="XYZ")])
    result = app.test_cli_runner().invoke(args=["import", str(path), "--strict"])
    assert result.exit_code == 1
    assert "Strict: nothing was imported because 1 line(s) failed." in result.output
    assert count(session, Invoice) == 0 and count(session, Client) == 0


def test_cli_dry_run(app, session, export):
    result = app.test_cli_runner().invoke(args=["import", str(export), "--dry-run"])
    assert result.exit_code == 0
    assert "Dry run: nothing was saved." in result.output
    assert count(session, Invoice) == 0


def test_cli_rejects_a_bad_header(app, session, tmp_path):
    path = write_csv(tmp_path / "h.csv", [row()], header=[c for c in HEADER if c != "currency"])
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "line 1: The header is missing the required column currency." in result.output
    assert count(session, Invoice) == 0


def test_cli_reports_a_file_that_is_not_utf8(app, session, tmp_path):
    path = write_csv(tmp_path / "latin1.csv", [row("1001")])
    path.write_bytes(path.read_bytes() + "PSA-1,Café Olé,1002,2026-03-01,2026-03-31,x,1.00,USD".encode("latin-1")
                     + b",,,,,,,,,\n")
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "not UTF-8" in result.stderr


OTHER_WRITER = """
import sys
from sqlalchemy import create_engine, text
engine = create_engine(sys.argv[1])
with engine.begin() as conn:
    conn.execute(text(
        "INSERT INTO invoices (client_id, number, status, currency, issue_date, due_date, tax_rate, subtotal_cents, "
        "tax_cents, total_cents, memo, source, created_at, void_reason) VALUES (:c, '1001', 'open', 'USD', "
        "'2026-03-01', '2026-03-31', 0, 500, 0, 500, '', 'manual', now(), '')"), {"c": int(sys.argv[2])})
engine.dispose()
"""


@pytest.mark.parametrize("strict", [False, True])
def test_a_line_another_process_beat_us_to_is_reported(session, make, tmp_path, strict):
    """Another process commits invoice 1001 after our lookups found no 1001 and before we write the chunk's
    invoices (PostgreSQL reports the unique violation; SQLite cannot interleave writers this way, so the test needs
    PostgreSQL). The seam is the engine's before_cursor_execute on the chunk's SAVEPOINT, which comes after the
    lookups: the importer writes new invoices with COPY on PostgreSQL, which the engine's events do not see."""
    if session.bind.dialect.name != "postgresql":
        pytest.skip("needs concurrent writers: PostgreSQL only")
    import subprocess
    import sys

    from sqlalchemy import event

    harbor = make.client(external_id="PSA-1", name="Harbor Dental Group")
    other = make.client(name="Other LLC")
    get_settings(session)
    session.commit()
    engine = session.get_bind()
    url = engine.url.render_as_string(hide_password=False)
    ran = []

    def other_process_inserts(conn, cursor, statement, *_):
        if not ran and statement.startswith("SAVEPOINT"):
            ran.append(subprocess.run([sys.executable, "-c", OTHER_WRITER, url, str(other.id)], check=True,
                                      capture_output=True, text=True))

    event.listen(engine, "before_cursor_execute", other_process_inserts)
    try:
        path = write_csv(tmp_path / "x.csv", [row("1001", contact_email="", contact_name=""),
                                              row("1002", contact_email="", contact_name="")])
        report = run_import(session, path, strict=strict)
    finally:
        event.remove(engine, "before_cursor_execute", other_process_inserts)

    assert len(ran) == 1  # the other process did run, between our lookups and our writes
    assert [i.line for i in report.issues] == [2]
    assert report.issues[0].message.startswith("the database refused the line")
    owner = session.scalar(select(Invoice.client_id).where(Invoice.number == "1001"))
    assert owner == other.id
    assert session.scalar(select(func.count()).where(Invoice.number == "1001")) == 1  # not duplicated
    if strict:
        assert "nothing will be saved" in report.issues[0].message
        assert invoice(session, "1002") is None and report.saved is False
    else:
        assert invoice(session, "1002").client_id == harbor.id and report.created == 1
        # the line after the refused one still fills in the stored client's address (read again, then changed)
        session.expire_all()
        assert (harbor.address_line1, harbor.city, report.clients_updated) == ("812 N 9th St", "Boise", 1)


# --- the bulk path (issue 14): chunks, statement counts, the fast "unchanged" comparison -----------------------

def test_is_unchanged_agrees_with_the_field_by_field_comparison():
    from portal.domain import imports

    header = imports.read_header(HEADER)
    parsed = imports.parse_row(2, [row("1001", tax="75.00")[c] for c in HEADER], header, currency="USD")
    facts = imports.facts_for(parsed)
    assert imports.is_unchanged(parsed, facts) and imports.invoice_differences(parsed, facts) == []
    for changed in (parsed._replace(amount_cents=parsed.amount_cents + 1), parsed._replace(tax_cents=0),
                    parsed._replace(description="Other"), parsed._replace(due_date=date(2026, 4, 30)),
                    parsed._replace(issue_date=date(2026, 2, 28))):
        assert not imports.is_unchanged(changed, facts)
        assert imports.invoice_differences(changed, facts) != []
    stored_decimal = facts._replace(quantity=Decimal("1.0000"))
    assert imports.is_unchanged(parsed, stored_decimal)  # the database's NUMERIC(12, 4) quantity
    for lines in (facts._replace(line_count=2), facts._replace(description=None, quantity=None,
                                                               unit_price_cents=None, line_count=0)):
        assert not imports.is_unchanged(parsed, lines)  # an invoice whose one line is this one, plus another; none
        assert imports.invoice_differences(parsed, lines) == ["lines"]


def test_the_stored_invoice_columns_read_by_position_are_the_ones_meant():
    from portal.domain.imports import InvoiceFacts
    from portal.services.importer import CLIENT_ID, FACTS, STORED

    assert tuple(column.key for column in STORED[FACTS:]) == InvoiceFacts._fields
    assert STORED[CLIENT_ID].key == "client_id"


def _many_lines(count: int, clients: int) -> list[dict]:
    lines = []
    for i in range(count):
        c = i % clients + 1
        # the first line of each client leaves the address blank; its later lines (next chunks) fill it in
        address = "" if i < clients else f"{c} Main St"
        lines.append(row(f"B{i + 1:05d}", client=f"PSA-{c}", name=f"Client {c}", amount=f"{100 + i}.00",
                         client_address_line1=address))
    return lines


def test_a_file_of_several_chunks_imports_clients_across_chunks_and_reimports_unchanged(session, tmp_path):
    from sqlalchemy import event

    from portal.services.importer import CHUNK

    lines = 2 * CHUNK + 7
    # more clients than a chunk: the later lines fill in addresses of clients a previous chunk wrote
    clients = CHUNK + CHUNK // 5
    path = write_csv(tmp_path / "many.csv", _many_lines(lines, clients))
    engine = session.get_bind()
    statements: list[str] = []

    def record(conn, cursor, statement, *_):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        first = run_import(session, path)
        written = len(statements)
        statements.clear()
        second = run_import(session, path)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert (first.created, first.updated, first.unchanged, first.failed) == (lines, 0, 0, 0)
    assert (first.clients_created, first.clients_updated, first.contacts_added) == (clients, lines - clients,
                                                                                    clients)
    assert count(session, Invoice) == lines and count(session, InvoiceLine) == lines
    assert count(session, Client) == clients and count(session, Contact) == clients
    assert session.scalar(select(Client.address_line1).where(Client.external_id == "PSA-7")) == "7 Main St"
    filled = lines - clients  # PSA-1 .. PSA-{filled} got an address from a later line
    assert session.scalar(select(Client.address_line1).where(Client.external_id == f"PSA-{filled}")) == \
        f"{filled} Main St"
    assert session.scalar(select(Client.address_line1).where(Client.external_id == f"PSA-{filled + 1}")) == ""
    last = invoice(session, f"B{lines:05d}")
    assert (last.total_cents, last.lines[0].amount_cents, last.status, last.source) == (
        (100 + lines - 1) * 100, (100 + lines - 1) * 100, "open", "import")
    # A chunk's writes are a handful of multi-row statements, not a few per line
    assert written <= 3 * 25, written
    assert (second.created, second.updated, second.unchanged, second.failed) == (0, 0, lines, 0)
    assert not [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert len(statements) <= 3 * 10, len(statements)


@pytest.mark.parametrize("strict", [False, True])
def test_a_large_first_import_keeps_the_planners_statistics_up_with_the_invoices_it_adds(session, tmp_path, strict):
    """PostgreSQL: ANALYZE each time the import has added as many invoices as the statistics knew (at least a
    chunk), before that chunk's duplicate check; counting the import's own rows even in one transaction (strict).
    An import the statistics already cover runs none. SQLite keeps no statistics: never."""
    from sqlalchemy import event, text

    from portal.services.importer import CHUNK

    postgresql = session.bind.dialect.name == "postgresql"
    if postgresql:
        session.execute(text("ANALYZE invoices"))  # the empty table, as the planner knows it: 0 rows
        session.commit()
    engine = session.get_bind()
    statements: list[str] = []

    def record(conn, cursor, statement, *_):
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        first = run_import(session, write_csv(tmp_path / "first.csv", _many_lines(2 * CHUNK + 7, 50)), strict=strict)
        analyzed_first = [n for n, s in enumerate(statements) if s.startswith("ANALYZE")]
        duplicate_checks = [n for n, s in enumerate(statements) if "PARTITION BY invoices.client_id" in s]
        statements.clear()
        later = [row(f"L{i:04d}", client=f"PSA-{i % 50}", name=f"Client {i % 50}", amount=f"{100 + i}.00")
                 for i in range(CHUNK + 7)]
        second = run_import(session, write_csv(tmp_path / "later.csv", later), strict=strict)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert (first.created, first.failed, second.created, second.failed) == (2 * CHUNK + 7, 0, CHUNK + 7, 0)
    if not postgresql:
        assert analyzed_first == [] and not [s for s in statements if s.startswith("ANALYZE")]
        return
    # after the first chunk (500 > the 0 known) and the second (500 more >= the 500 known), not the third (7)
    assert [s for s in statements if s.startswith("ANALYZE")] == []
    assert len(analyzed_first) == 2 and len(duplicate_checks) == 3
    assert analyzed_first[0] < duplicate_checks[0] < analyzed_first[1] < duplicate_checks[1]
    known = session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'invoices'::regclass"))
    # the second ANALYZE saw both chunks, committed or not (autovacuum may have analyzed since, seeing more)
    assert known >= 2 * CHUNK


def test_an_email_taken_by_an_earlier_new_client_of_the_same_chunk_is_a_conflict(session, tmp_path):
    path = write_csv(tmp_path / "x.csv", [row("1001", contact_email="ap@shared.test"),
                                          row("2001", client="PSA-2", name="Cedar LLC", contact_email="ap@shared.test"),
                                          row("1002", contact_email="ap@shared.test")])
    report = run_import(session, path)

    assert [(i.line, i.kind) for i in report.issues] == [(3, "conflict")]
    assert report.issues[0].message == ("contact_email ap@shared.test already belongs to another client "
                                        "(Harbor Dental Group, PSA-1); an email can sign in for one client only")
    assert (report.created, report.contacts_added, report.clients_created) == (2, 1, 1)
    assert session.scalar(select(Client).where(Client.external_id == "PSA-2")) is None
    assert session.scalar(select(Contact.client_id).where(Contact.email == "ap@shared.test")) == \
        invoice(session, "1002").client_id
