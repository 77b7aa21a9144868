"""Sums of ledger rows kept by the database: ``invoices.settled_cents``, ``payments.applied_cents`` and
``payments.refunded_cents``.

Reports over every open invoice (aging, the dashboard, the client lists, the call list) summed the allocation rows
of each owing invoice on every view; at a million invoices that was most of the dashboard's time (bench/README.md).
The sum is now kept on the invoice by triggers on ``allocations`` and ``ledger_adjustments``: every writer is
covered (the ORM, the importer's bulk inserts, raw SQL), in the same transaction and under the same row lock as the
insert, so concurrent payments cannot make it drift. Triggers rather than application code because a writer that
forgot the update would misstate reports silently; the test suite checks the stored sum against the derived one
after randomized ledger operations and multi-process payment races on both databases.

A payment keeps the same way what was applied from it (its allocations) and refunded (its refunds but failed ones):
the payment lists and a client's credit (its overview, the portal's home, the payment form) summed both per payment
on every view, the credit over the client's whole history (~1 ms of the overview at a hundred payments a client).

The derived sums stay the truth for anything that moves money (``ledger.open_items``, ``unallocated_by_payment``
and friends); the stored ones are read only by reports and figures shown, so a fault here could misstate a page,
never a charge.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import DDL, Table, event

from portal.domain.payments import RefundStatus


class KeptSum(NamedTuple):
    """``target.column`` = the sum of ``amount`` over the ``source`` rows whose ``key`` names the target row.
    ``amount`` is SQL over one row, written with ``{row}`` (OLD or NEW); ``watched``: the source columns that move
    it. ``name``: the triggers' names on ``source`` ({source}_{name}) and PostgreSQL's function."""

    target: str
    column: str
    key: str
    amount: str
    watched: str
    function: str
    name: str

    def change(self, row: str, sign: str) -> str:
        amount = self.amount.format(row=row)  # our own names and SQL, no input
        column = self.column
        return f"UPDATE {self.target} SET {column} = {column} {sign} {amount} WHERE id = {row}.{self.key};"  # noqa: S608

    def postgresql_function(self) -> str:
        return f"""
CREATE OR REPLACE FUNCTION {self.function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        {self.change("OLD", "-")}
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {self.change("NEW", "+")}
    END IF;
    RETURN NULL;
END $$
"""

    def trigger_statements(self, dialect: str, source: str) -> list[str]:
        trigger = f"{source}_{self.name}"
        if dialect == "postgresql":
            return [self.postgresql_function(),
                    f"CREATE TRIGGER {trigger} AFTER INSERT OR DELETE OR UPDATE OF {self.watched} "
                    f"ON {source} FOR EACH ROW EXECUTE FUNCTION {self.function}()"]
        minus, plus = self.change("OLD", "-"), self.change("NEW", "+")
        return [f"CREATE TRIGGER {trigger}_insert AFTER INSERT ON {source} BEGIN {plus} END",
                f"CREATE TRIGGER {trigger}_delete AFTER DELETE ON {source} BEGIN {minus} END",
                f"CREATE TRIGGER {trigger}_update AFTER UPDATE OF {self.watched} ON {source} "
                f"BEGIN {minus} {plus} END"]

    def drop_statements(self, dialect: str, source: str) -> list[str]:
        trigger = f"{source}_{self.name}"
        if dialect == "postgresql":
            return [f"DROP TRIGGER IF EXISTS {trigger} ON {source}"]
        return [f"DROP TRIGGER IF EXISTS {trigger}_{event}" for event in ("insert", "delete", "update")]


SETTLED = KeptSum("invoices", "settled_cents", "invoice_id", "{row}.amount_cents", "invoice_id, amount_cents",
                  "settle_invoice", "settle")
# Named to fire after the invoice's trigger (PostgreSQL runs a table's triggers by name): the invoice rows are
# locked before the payment rows, the order portal.services.locking keeps.
APPLIED = KeptSum("payments", "applied_cents", "payment_id", "{row}.amount_cents", "payment_id, amount_cents",
                  "sum_payment_applied", "sum_payment")
REFUNDED = KeptSum("payments", "refunded_cents", "payment_id",
                   f"(CASE WHEN {{row}}.status <> '{RefundStatus.FAILED}' THEN {{row}}.amount_cents ELSE 0 END)",
                   "payment_id, amount_cents, status", "sum_payment_refunded", "sum_payment")

#: Each source table and the sums its rows move.
KEPT = {"allocations": (SETTLED, APPLIED), "ledger_adjustments": (SETTLED,), "refunds": (REFUNDED,)}

SETTLING_TABLES = ("allocations", "ledger_adjustments")  # each has (invoice_id, amount_cents)

#: Sets every invoice's sum from the rows (migration 0008; bulk loads that bypass triggers, e.g. bench/run.py).
BACKFILL = """UPDATE invoices SET settled_cents =
    COALESCE((SELECT SUM(amount_cents) FROM allocations a WHERE a.invoice_id = invoices.id), 0)
  + COALESCE((SELECT SUM(amount_cents) FROM ledger_adjustments l WHERE l.invoice_id = invoices.id), 0)"""

#: The same for every payment's sums (migration 0013; bulk loads).
PAYMENT_BACKFILL = f"""UPDATE payments SET
    applied_cents = COALESCE((SELECT SUM(amount_cents) FROM allocations a WHERE a.payment_id = payments.id), 0),
    refunded_cents = COALESCE((SELECT SUM(amount_cents) FROM refunds r
                               WHERE r.payment_id = payments.id AND r.status <> '{RefundStatus.FAILED}'), 0)"""  # noqa: S608


def trigger_statements(dialect: str, table: str) -> list[str]:
    """The DDL that keeps ``invoices.settled_cents`` in step with ``table`` (migration 0008)."""
    return SETTLED.trigger_statements(dialect, table)


def install(table: Table) -> None:
    """Create the triggers whenever ``table`` is created from the models (tests, a fresh SQLite demo)."""
    for kept in KEPT[table.name]:
        for dialect in ("postgresql", "sqlite"):
            for statement in kept.trigger_statements(dialect, table.name):
                event.listen(table, "after_create", DDL(statement).execute_if(dialect=dialect))
