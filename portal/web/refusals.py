"""How a view shows a service's refusal: a DomainError's message is written for people."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from flask import flash

from portal.domain.errors import DomainError


class Session(Protocol):
    """All a refusal needs of the database session (the web layer does not import SQLAlchemy)."""

    def rollback(self) -> None: ...


@contextmanager
def flash_refusal(session: Session) -> Iterator[None]:
    """Run the service call in the block; a DomainError rolls back what it did and is flashed as an error. The rest
    of the block (the success message) is skipped and the view goes on after it, usually to a redirect."""
    try:
        yield
    except DomainError as e:
        session.rollback()
        flash(str(e), "error")


@contextmanager
def form_refusal(session: Session, errors: list[str], refusal: type[DomainError] = DomainError) -> Iterator[None]:
    """The same, for a view that shows the form again: the refusal joins ``errors`` (the form's or one field's)
    so the person sees it beside what they typed. ``refusal`` narrows which refusals go there."""
    try:
        yield
    except refusal as e:
        session.rollback()
        errors.append(str(e))
