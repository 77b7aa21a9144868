"""Service-level errors. Domain errors (portal.domain.errors) also pass through unchanged."""

from portal.domain.errors import DomainError


class NotFound(LookupError):
    """The record does not exist *for this caller*. Web layers answer 404 and say nothing more."""


class Conflict(DomainError):
    """The request clashes with existing data (a duplicate number or email)."""
