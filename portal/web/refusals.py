"""How a view shows a service's refusal: a DomainError's message is written for people."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import flash
from sqlalchemy.orm import Session

from portal.domain.errors import DomainError


@contextmanager
def flash_refusal(session: Session) -> Iterator[None]:
    """Run the service call in the block; a DomainError rolls back what it did and is flashed as an error. The rest
    of the block (the success message) is skipped and the view goes on after it, usually to a redirect."""
    try:
        yield
    except DomainError as e:
        session.rollback()
        flash(str(e), "error")
