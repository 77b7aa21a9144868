"""API tokens for the help desk / PSA: created by an admin with a name and scopes, shown once, stored as a SHA-256
hash (a leaked database does not leak working tokens), revocable, with the time each was last used.

A token reads ``psa_<prefix>_<secret>``: the prefix is stored in clear so the admin can tell tokens apart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.errors import DomainError
from portal.models import ApiToken, StaffUser

from .errors import NotFound

TOKEN_PATTERN = re.compile(r"psa_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{32,64}")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # one write per token per minute at most, not one per request


class Scope(StrEnum):
    """What a token may do. Least privilege: a help desk that looks clients up one at a time needs no list of all
    clients."""

    STANDING_READ = "standing:read"  # one client's standing, by its external id
    CLIENTS_LIST = "clients:list"  # every client's standing, a page at a time


SCOPE_LABELS = {Scope.STANDING_READ: "Look up one client's standing by external id",
                Scope.CLIENTS_LIST: "List every client with its standing"}


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # the whole token; shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, *, name: str, scopes: list[str], staff: StaffUser | None) -> CreatedToken:
    name = " ".join((name or "").split())
    if not name:
        raise DomainError("Give the token a name (which system uses it).")
    if len(name) > 100:
        raise DomainError("The name is limited to 100 characters.")
    chosen = [s for s in Scope if s.value in set(scopes)]
    if not chosen or len(chosen) != len(set(scopes)):
        raise DomainError("Choose at least one scope, from the list.")
    prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    secret = f"psa_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(name=name, scope=" ".join(chosen), token_sha256=_hash(secret), prefix=f"psa_{prefix}",
                     created_by_staff_id=staff.id if staff else None, created_at=now())
    session.add(token)
    session.commit()
    return CreatedToken(token, secret)


def revoke(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound()
    if token.revoked_at is None:
        token.revoked_at = now()
        session.commit()
    return token


def tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())))


def authenticate(session: Session, secret: str) -> ApiToken | None:
    """The live token this secret is, or None (malformed, unknown or revoked: the caller cannot tell which).
    Stamps last_used_at (at most once a minute, so busy integrations do not write on every request)."""
    if not TOKEN_PATTERN.fullmatch(secret or ""):
        return None
    digest = _hash(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest))
    if token is None or not hmac.compare_digest(token.token_sha256, digest) or token.revoked_at is not None:
        return None
    stamp = now()
    if token.last_used_at is None or stamp - token.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=stamp))
        session.commit()
        token.last_used_at = stamp
    return token


def allows(token: ApiToken, scope: Scope) -> bool:
    return scope.value in token.scope.split()
