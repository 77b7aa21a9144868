"""Rows that stand for one call to the payment gateway (a charge attempt, a refund): each is committed with its
idempotency key *before* the call, so a retried or twin request can never move money twice."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def commit_with_key(session: Session, row: Row, prefix: str, twin: Callable[[], Row | None]) -> tuple[Row, bool]:
    """Insert ``row``, give it the key ``<prefix>-<row id>-<random>`` and commit: (row, True). When a twin request
    inserted the same thing first (a unique constraint says so), ``twin()`` finds that row: (twin row, False)."""
    session.add(row)
    try:
        session.flush()
        row.idempotency_key = f"{prefix}-{row.id}-{secrets.token_hex(6)}"  # type: ignore[attr-defined]
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = twin()
        if existing is None:
            raise
        return existing, False
    return row, True
