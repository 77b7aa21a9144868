"""The staff lists' search (reports._search): the clients a search names are found first and their ids written
into the list's statement, and on PostgreSQL every searched column is read through its trigram index
(models/search.py). The pages' own tests cover what a search shows; these cover what the change could break: a
search naming no client, many clients, combined with the other filters, paged and counted, on both databases."""

from __future__ import annotations

from datetime import date

from sqlalchemy import event

from portal.services import reports

TODAY = date(2026, 3, 16)


def numbers(page: reports.Page) -> set[str]:
    return {row.invoice.number for row in page.items}


def test_a_search_names_no_client_one_client_or_many_and_mixes_with_the_filters(session, make):
    shared = [make.client(f"Harbor Dental {n}") for n in range(30)]  # a name thirty clients share
    other = make.client("Acme Corp", external_id="PSA-77")
    harbor = {client.legal_name: make.invoice(client, 1_000).number for client in shared}
    acme = make.invoice(other, 2_000)
    draft = make.invoice(other, 3_000, issue=False)
    make.payment(shared[0], 1_000, reference="CHK-HARBOR")
    make.payment(other, 500, reference="WIRE-1")

    assert numbers(reports.invoice_page(session, TODAY, q="nothing like it")) == set()
    assert numbers(reports.invoice_page(session, TODAY, q="acme")) == {acme.number, draft.number}
    assert numbers(reports.invoice_page(session, TODAY, q="acme", status="draft")) == {draft.number}
    assert numbers(reports.invoice_page(session, TODAY, q="ACME", client_id=shared[0].id)) == set()
    assert numbers(reports.invoice_page(session, TODAY, q=acme.number.lower())) == {acme.number}  # the number

    first = reports.invoice_page(session, TODAY, q="harbor dental", per_page=25)
    second = reports.invoice_page(session, TODAY, q="harbor dental", page=2, per_page=25)
    assert (first.total, len(first.items), len(second.items)) == (30, 25, 5)
    assert numbers(first) | numbers(second) == set(harbor.values())
    assert numbers(reports.invoice_page(session, TODAY, q="dental 1", status="open")) == {
        number for name, number in harbor.items() if name.startswith("Harbor Dental 1")}  # 1 and 10-19

    references = {row.payment.reference for row in reports.payment_page(session, q="harbor").items}
    assert references == {"CHK-HARBOR"}  # by the client's name: one of the thirty has a payment
    assert {row.payment.reference for row in reports.payment_page(session, q="wire").items} == {"WIRE-1"}
    assert reports.payment_page(session, q="acme", client_id=shared[0].id).items == []
    assert {c.client.legal_name for c in reports.client_page(session, TODAY, q="psa-7").items} == {"Acme Corp"}


def test_on_postgresql_each_searched_column_is_read_through_its_trigram_index(session, make):
    """Each search condition is its index's expression (lower(column) LIKE, the trigram operator class): if one
    changed without the other, a search would read every row again at a million invoices, which no figure in a
    test's few rows would show. Plain scans and nested loops are turned off so the plan shows which index can answer:
    with a nested loop a row's search condition can be a filter on a read of its client's rows (the join's index),
    which the planner picks for a few rows whenever the statistics left by earlier tests make a client look cheap to
    read (CI once saw that)."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite has no trigram index (models/search.py): its search is a scan by design
    client = make.client("Northwind Traders", external_id="PSA-9")
    make.invoice(client, 1_000)
    make.payment(client, 1_000, reference="CHK-9")
    connection = session.connection()  # the factory committed: this transaction's, where SET LOCAL holds
    statements: list[tuple[str, dict]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    connection.exec_driver_sql("SET LOCAL enable_indexscan = off")  # leaves the bitmap scans a search can use
    connection.exec_driver_sql("SET LOCAL enable_nestloop = off")
    event.listen(connection, "before_cursor_execute", seen)
    try:
        reports.invoice_page(session, TODAY, q="north")
        reports.payment_page(session, q="north")
        reports.client_page(session, TODAY, q="north")
    finally:
        event.remove(connection, "before_cursor_execute", seen)
    plans = "\n".join(line for statement, parameters in statements
                      for line in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())

    for index in ("ix_clients_legal_name_search", "ix_clients_external_id_search", "ix_invoices_number_search",
                  "ix_payments_reference_search"):
        assert index in plans, index
