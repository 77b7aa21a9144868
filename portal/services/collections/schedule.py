"""The MSP's reminder schedule: the default steps until it edits them, each with its own subject and email text.

The schedule is seeded on first use (``steps``) so a fresh install reminds by the issue's defaults. A step that was
already sent for some invoice is kept (its sends refer to it) and can only be switched off, not deleted, nor
moved to another day (its text can still change).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import dunning
from portal.domain.errors import DomainError
from portal.models import DunningStep, ReminderSend

from ..errors import NotFound
from ..locking import begin_write, serialize


def steps(session: Session) -> list[DunningStep]:
    """Every step, earliest first. An empty table is read as the default schedule (saved by the first edit)."""
    rows = list(session.scalars(select(DunningStep).order_by(DunningStep.offset_days)))
    if rows:
        return rows
    return [DunningStep(id=None, **_fields(spec)) for spec in dunning.DEFAULT_SCHEDULE]


def ensure_saved(session: Session) -> None:
    """Write the default schedule when there is none yet (run-due and the first edit need real rows)."""
    if session.scalar(select(func.count()).select_from(DunningStep)):
        return
    begin_write(session)
    serialize(session, "dunning schedule")  # several run-due processes may find it empty at once
    if not session.scalar(select(func.count()).select_from(DunningStep)):
        session.add_all(DunningStep(**_fields(spec), updated_at=now()) for spec in dunning.DEFAULT_SCHEDULE)
    session.commit()


def _fields(spec: dunning.StepSpec) -> dict:
    return {"offset_days": spec.offset_days, "name": spec.name, "subject": spec.subject, "body": spec.body,
            "attach_invoice": spec.attach_invoice, "pause_new_work": spec.pause_new_work,
            "pay_within_days": spec.pay_within_days, "active": spec.active}


def step(session: Session, step_id: int) -> DunningStep:
    row = session.get(DunningStep, step_id)
    if row is None:
        raise NotFound()
    return row


def save_step(session: Session, spec: dunning.StepSpec, step_id: int | None = None) -> DunningStep:
    """Add a step (``step_id`` None) or change one. Refused with a message, nothing changed, when the day clashes
    with another step or is out of range, or the subject or text is empty or names an unknown placeholder."""
    ensure_saved(session)
    begin_write(session)
    serialize(session, "reminder schedule")  # PostgreSQL: two steps for one day at once would both pass the check
    row = None
    if step_id is not None:
        row = session.get(DunningStep, step_id)
        if row is None:
            session.rollback()
            raise NotFound()
    others = session.scalars(select(DunningStep.offset_days).where(DunningStep.id != (row.id if row else -1)))
    try:
        clean = dunning.check_step(spec, list(others))
    except DomainError:
        session.rollback()
        raise
    if row is not None and clean.offset_days != row.offset_days and _was_sent(session, row):
        # its sends are counted by the step's day: moved, they would stand for a reminder the invoices never got
        # (a later step skipped, or every further reminder stopped)
        session.rollback()
        raise DomainError(f"“{row.name}” was already sent for some invoices on "
                          f"{dunning.describe_offset(row.offset_days)}, so its day stays: switch it off and add a new "
                          "step for the other day instead.")
    if row is None:
        row = DunningStep(**_fields(clean), updated_at=now())
        session.add(row)
    else:
        for name, value in _fields(clean).items():
            setattr(row, name, value)
        row.updated_at = now()
    session.commit()
    return row


def delete_step(session: Session, step_id: int) -> None:
    begin_write(session)
    row = session.get(DunningStep, step_id)
    if row is None:
        session.rollback()
        raise NotFound()
    if _was_sent(session, row):
        session.rollback()
        raise DomainError(f"“{row.name}” was already sent for some invoices, so it stays on record: switch it off "
                          "instead.")
    session.delete(row)
    session.commit()


def _was_sent(session: Session, row: DunningStep) -> bool:
    return session.scalar(select(ReminderSend.id).where(ReminderSend.step_id == row.id).limit(1)) is not None


SAMPLE = {"contact_name": "Pat Payer", "client": "Example Dental LLC", "invoice_number": "INV-1042",
          "total_cents": 125_000, "balance_cents": 125_000}


def preview(spec: dunning.StepSpec, *, msp: str, currency: str, today: date, base_url: str) -> tuple[str, str]:
    """(subject, text) of a step filled in with a sample invoice due ``-offset`` days ago, for the editor."""
    dunning.check_template(spec.subject, "The subject")
    dunning.check_template(spec.body, "The email text")
    due = dunning.step_day(today, -spec.offset_days)
    values = dunning.placeholder_values(
        contact_name=SAMPLE["contact_name"], client=SAMPLE["client"], invoice_number=SAMPLE["invoice_number"],
        total_cents=SAMPLE["total_cents"], balance_cents=SAMPLE["balance_cents"], currency=currency, due_date=due,
        pay_by_date=dunning.pay_by(today, due, spec.pay_within_days), pay_link=f"{base_url}/i/…", msp=msp,
        today=today)
    return dunning.render(spec.subject, values), dunning.render(spec.body, values)
