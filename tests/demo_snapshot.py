"""`portal demo`'s data, seeded once per test run and given back to each test that only reads it.

Seeding the demo takes 15-25 s here (13 signed PDFs among much else), and several tests only read what it made.
The first of them in a run seeds it for real (``demo.seed_demo``: the services all the way down, into the suite's
database); every table's rows and the instance folder (the keys that signed the PDFs and anchor the evidence chains,
the outbox) are then kept, and each later test gets them back into its empty database and its own instance folder.
The invoices' kept sums come back through the ledger triggers, as the allocations are inserted; the teardown check
of every test (tests/conftest.py) compares them with the rows. Tests of the seeding itself (re-running it, the
clock it gives back, the command) call ``seed_demo``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from portal.cli import worker_sessions
from portal.models import Base
from portal.services import demo

#: The seedings kept, by where their emails went: "outbox" (the instance folder) serves every test; "smtp" (a module
#: whose app mails through the loopback SMTP server seeded first) left the outbox folder empty, so it serves only
#: tests that mail that way too, and a test reading the demo's outbox gets a seeding of its own.
_kept: dict[str, dict] = {}


@pytest.fixture
def seeded_demo(app, session, rt, tmp_path_factory) -> demo.DemoSummary:
    engine = session.get_bind()
    smtp = bool(app.config["SMTP_URL"])
    kept = _kept.get("outbox") or (_kept.get("smtp") if smtp else None)
    if kept is None:
        summary = demo.seed_demo(session, rt, open_session=worker_sessions(app))
        session.commit()
        folder = tmp_path_factory.mktemp("demo-instance")
        shutil.copytree(app.instance_path, folder, dirs_exist_ok=True)
        _kept["smtp" if smtp else "outbox"] = {"summary": summary, "rows": _rows(engine), "folder": folder}
        return summary
    shutil.copytree(kept["folder"], Path(app.instance_path), dirs_exist_ok=True)
    _restore(engine, kept["rows"])
    return kept["summary"]


def _rows(engine: Engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {table.name: [dict(row) for row in conn.execute(
                    select(table).order_by(*table.primary_key.columns)).mappings()]
                for table in Base.metadata.sorted_tables}


_KEPT = {"invoices": {"settled_cents": 0}, "payments": {"applied_cents": 0, "refunded_cents": 0}}  # settled.py


def _restore(engine: Engine, rows: dict[str, list[dict]]) -> None:
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:  # parents first; each table's rows in key order
            kept = rows[table.name]
            if table.name in _KEPT:  # the triggers add each allocation, adjustment and refund back as it is inserted
                kept = [{**row, **_KEPT[table.name]} for row in kept]
            if kept:
                conn.execute(table.insert(), kept)
        if engine.dialect.name == "postgresql":  # the ids were given: each sequence goes on after the largest
            for table in Base.metadata.sorted_tables:
                if rows[table.name] and "id" in table.c:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                                      f"(SELECT max(id) FROM \"{table.name}\"))"))
