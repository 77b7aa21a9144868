"""The floor: the least a Flask page can do against the same database — one indexed query and a cached template.

`gunicorn --chdir bench floor_app:app` with BENCH_DATABASE_URL (a SQLAlchemy URL) and BENCH_MAX_INVOICE_ID set.
The portal's invoice list is measured against this, on the same server, database and gunicorn settings.
"""

from __future__ import annotations

import os
import random

from flask import Flask
from sqlalchemy import create_engine, text

app = Flask(__name__)
engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=5, max_overflow=5)
MAX_ID = int(os.environ.get("BENCH_MAX_INVOICE_ID", "1"))
QUERY = text("SELECT number, total_cents, due_date FROM invoices WHERE id = :id")
# Compiled once at import, like Flask's template cache after the first render.
PAGE = app.jinja_env.from_string(
    "<!doctype html><html><head><title>Invoice {{ number }}</title></head><body>"
    "<h1>Invoice {{ number }}</h1><p>Total {{ '%.2f' % (total / 100) }}, due {{ due }}</p></body></html>"
)


@app.get("/invoice")
def invoice() -> str:
    with engine.connect() as conn:
        number, total, due = conn.execute(QUERY, {"id": random.randint(1, MAX_ID)}).one()
    return PAGE.render(number=number, total=total, due=due)
