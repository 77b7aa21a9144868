"""``invoices.settled_cents``: the sum of an invoice's allocations and ledger adjustments, kept by the database.

Reports over every open invoice (aging, the dashboard, the client lists, the call list) summed the allocation rows
of each owing invoice on every view; at a million invoices that was most of the dashboard's time (bench/README.md).
The sum is now kept on the invoice by triggers on ``allocations`` and ``ledger_adjustments``: every writer is
covered (the ORM, the importer's bulk inserts, raw SQL), in the same transaction and under the same row lock as the
insert, so concurrent payments cannot make it drift. Triggers rather than application code because a writer that
forgot the update would misstate reports silently; the test suite checks the stored sum against the derived one
after randomized ledger operations and multi-process payment races on both databases.

The derived sum stays the truth for anything that moves money (``ledger.open_items`` and friends); the stored one
is read only by reports (``ledger.stored_balance``), so a fault here could misstate a report, never a charge.
"""

from __future__ import annotations

from sqlalchemy import DDL, Table, event

SETTLING_TABLES = ("allocations", "ledger_adjustments")  # each has (invoice_id, amount_cents)

#: Sets every invoice's sum from the rows (migration 0008; bulk loads that bypass triggers, e.g. bench/run.py).
BACKFILL = """UPDATE invoices SET settled_cents =
    COALESCE((SELECT SUM(amount_cents) FROM allocations a WHERE a.invoice_id = invoices.id), 0)
  + COALESCE((SELECT SUM(amount_cents) FROM ledger_adjustments l WHERE l.invoice_id = invoices.id), 0)"""

POSTGRESQL_FUNCTION = """
CREATE OR REPLACE FUNCTION settle_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE invoices SET settled_cents = settled_cents - OLD.amount_cents WHERE id = OLD.invoice_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE invoices SET settled_cents = settled_cents + NEW.amount_cents WHERE id = NEW.invoice_id;
    END IF;
    RETURN NULL;
END $$
"""


def trigger_statements(dialect: str, table: str) -> list[str]:
    """The DDL that keeps ``invoices.settled_cents`` in step with ``table`` (used by create_all and migration 0008)."""
    minus = "UPDATE invoices SET settled_cents = settled_cents - OLD.amount_cents WHERE id = OLD.invoice_id;"
    plus = "UPDATE invoices SET settled_cents = settled_cents + NEW.amount_cents WHERE id = NEW.invoice_id;"
    if dialect == "postgresql":
        return [POSTGRESQL_FUNCTION,
                f"CREATE TRIGGER {table}_settle AFTER INSERT OR DELETE OR UPDATE OF invoice_id, amount_cents "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION settle_invoice()"]
    return [f"CREATE TRIGGER {table}_settle_insert AFTER INSERT ON {table} BEGIN {plus} END",
            f"CREATE TRIGGER {table}_settle_delete AFTER DELETE ON {table} BEGIN {minus} END",
            f"CREATE TRIGGER {table}_settle_update AFTER UPDATE OF invoice_id, amount_cents ON {table} "
            f"BEGIN {minus} {plus} END"]


def install(table: Table) -> None:
    """Create the triggers whenever ``table`` is created from the models (tests, a fresh SQLite demo)."""
    for dialect in ("postgresql", "sqlite"):
        for statement in trigger_statements(dialect, table.name):
            event.listen(table, "after_create", DDL(statement).execute_if(dialect=dialect))
