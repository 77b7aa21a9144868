"""Staff accounts. Passwords are hashed with scrypt (werkzeug); sign-in cost is the same for unknown emails."""

from __future__ import annotations

from functools import cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal.clock import now
from portal.domain.errors import DomainError
from portal.models import StaffUser

from .clients import normalize_email
from .errors import Conflict
from .plans.offers import waiting_for_staff_expr

MIN_PASSWORD = 12


@cache
def _dummy_hash() -> str:
    """Checked against when the email is unknown, so response time does not reveal which emails exist. Made on
    first use with the current hashing parameters, not at import: a scrypt hash costs ~0.2 s, and every process
    (a CLI command, a web worker, run-due from cron) imports this module whether or not anyone signs in."""
    return generate_password_hash("not-a-real-password-xxxxxxxx")


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise DomainError(f"Use a password of at least {MIN_PASSWORD} characters.")


def hash_password(password: str) -> str:
    check_password_strength(password)
    return generate_password_hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    return check_password_hash(stored_hash or _dummy_hash(), password) and stored_hash is not None


def create_staff(session: Session, *, email: str, name: str, password: str, role: str = "admin") -> StaffUser:
    email = normalize_email(email)
    if "@" not in email:
        raise DomainError("Enter a valid email address.")
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)):
        raise Conflict(f"A staff user with the email {email} already exists.")
    user = StaffUser(email=email, name=name.strip() or email, password_hash=hash_password(password), role=role,
                     is_active=True, created_at=now())
    session.add(user)
    session.commit()
    return user


def authenticate_staff(session: Session, email: str, password: str) -> StaffUser | None:
    user = session.scalar(select(StaffUser).where(StaffUser.email == normalize_email(email)))
    if not verify_password(user.password_hash if user else None, password) or not (user and user.is_active):
        return None
    user.last_sign_in_at = now()
    session.commit()
    return user


def signed_in_staff(session: Session, staff_id: int) -> tuple[StaffUser, int] | None:
    """The active staff user a session cookie names, with the number of client plan proposals waiting for an
    answer (the navigation of every admin page shows it): one query where every staff page view starts."""
    row = session.execute(_SIGNED_IN, {"staff_id": staff_id}).first()
    if row is None or not row[0].is_active:
        return None
    return row[0], row[1]


# Built once (a statement's construction costs about as much as running it through SQLAlchemy's compiled cache).
_SIGNED_IN = select(StaffUser, waiting_for_staff_expr()).where(StaffUser.id == bindparam("staff_id"))
