"""Signing is a check-then-write on evidence ("not signed yet" → append "signed"): several OS processes signing
the same agreement at the same moment give exactly one signed event and an intact, anchored chain, on SQLite and
on PostgreSQL (the suite runs on each)."""

from __future__ import annotations

import multiprocessing

from sqlalchemy import func, select

from portal.models import AgreementEvent
from portal.services import agreements as svc
from portal.web.runtime import runtime
from tests.integration.test_agreements import invite, prepare, w  # noqa: F401 (fixtures)

WORKERS = 4
ROUNDS = 3


def _sign_in_own_process(config: dict, agreement_id: int, contact_id: int, start) -> str:
    """One browser tab's POST, in a fresh interpreter that shares nothing with the others but the database and
    the instance folder (where the evidence key is)."""
    from portal import create_app, db
    from portal.domain.errors import DomainError
    from portal.models import Agreement, Contact
    from portal.services import agreements
    from portal.web.runtime import runtime

    app = create_app(config)
    try:
        with app.app_context():
            session = db.session()
            agreement, contact = session.get(Agreement, agreement_id), session.get(Contact, contact_id)
            meta = agreements.Meta(ip="203.0.113.7", user_agent="race", session_id="sess-1", contact_id=contact_id)
            session.commit()
            start.wait(timeout=60)
            try:
                agreements.sign(session, runtime(), agreement, contact, full_name="Dana Whitfield",
                                title="Office Manager", authority_confirmed=True,
                                signature=agreements.Signature("typed", typed="Dana Whitfield"),
                                document_sha256=agreement.document_sha256, meta=meta)
            except DomainError as e:
                return f"refused: {e}"
            return "signed"
    except Exception as e:  # reported to the parent, which asserts on it
        return f"{type(e).__name__}: {e}"
    finally:
        app.extensions["db_engine"].dispose()


def test_processes_signing_the_same_agreement_at_once_record_one_signature(app, app_config, session, w, make):  # noqa: F811
    ctx = multiprocessing.get_context("spawn")
    config = {**app_config, "EVIDENCE_KEY": None}
    # one pool for every round (a fresh interpreter costs seconds to start; each round is a new agreement, and each
    # task builds its own app), and a barrier that lets the next round's four go together again
    with ctx.Manager() as manager, ctx.Pool(WORKERS) as pool:
        start = manager.Barrier(WORKERS)
        for round_ in range(ROUNDS):
            client = w.client if round_ == 0 else make.client(f"Race {round_} LLC")
            contact = w.contact if round_ == 0 else make.contact(client, name="Dana Whitfield")
            agreement = svc.invite(session, runtime(), client, contact, meta=w.staff_meta, send=False)
            prepare(session, agreement, contact)
            session.commit()
            outcomes = pool.starmap(_sign_in_own_process, [(config, agreement.id, contact.id, start)] * WORKERS,
                                    chunksize=1)
            assert sorted(outcomes) == ["refused: This agreement is already signed."] * (WORKERS - 1) + ["signed"], \
                outcomes
            session.expire_all()
            signed_events = session.scalar(select(func.count()).select_from(AgreementEvent).where(
                AgreementEvent.agreement_id == agreement.id, AgreementEvent.kind == "signed"))
            assert signed_events == 1
            result = svc.verify_reference(session, runtime(), agreement.reference)
            assert result.intact and result.signed and result.breaks == ()
