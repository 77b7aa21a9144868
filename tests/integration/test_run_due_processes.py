"""`portal run-due` as cron runs it: the installed console script in OS processes of its own, on the test database
(SQLite or PostgreSQL, whichever the suite runs on), charging through the real ``stripe`` SDK against the fake
Stripe server, which counts the PaymentIntents created per invoice: a count above one is a real double charge.

- four processes started together over 500 due invoices charge each exactly once;
- a process killed with SIGKILL in the middle of its charges, then run again: nothing charged twice, everything once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from portal.models import AutopayCharge, ChargeAttempt, Invoice
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import runtime_for
from tests.run_due_fixtures import CARD, enroll_rows, saved_on_gateway

PORTAL = Path(sys.executable).parent / "portal"


def _env(app_config, fake, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.update({
        "PORTAL_ENV": "test", "PORTAL_DATABASE_URL": app_config["DATABASE_URL"],
        "PORTAL_INSTANCE_PATH": app_config["INSTANCE_PATH"], "PORTAL_SECRET_KEY": app_config["SECRET_KEY"],
        "PORTAL_BASE_URL": "http://localhost", "PORTAL_STRIPE_SECRET_KEY": fake.secret_key,
        "PORTAL_STRIPE_PUBLISHABLE_KEY": fake.publishable_key, "PORTAL_STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
        "PORTAL_STRIPE_API_BASE": fake.url, **{f"PORTAL_{k}": str(v) for k, v in extra.items()},
    })
    return env


class _RunDue:
    """`portal run-due` in its own OS process. Its output goes to files, not pipes: a pipe nobody reads yet fills up
    and stalls the process writing to it (the test reads the processes one after the other)."""

    def __init__(self, env, *args: str):
        self.out = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in finish(), after the process ends)
        self.err = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen([str(PORTAL), "run-due", *args], env=env, stdout=self.out, stderr=self.err,
                                        stdin=subprocess.DEVNULL, text=True)

    def finish(self, timeout: float) -> tuple[str, str]:
        self.process.wait(timeout=timeout)
        texts = []
        for f in (self.out, self.err):
            f.seek(0)
            texts.append(f.read())
            f.close()
        return texts[0], texts[1]


def _run_due(env, *args: str) -> _RunDue:
    return _RunDue(env, *args)


def _due_invoices(session, make, rt, fake, clients: int, per_client: int) -> list[int]:
    """``clients`` clients on autopay by card, each with ``per_client`` invoices already due."""
    ids = []
    for n in range(clients):
        client = make.client(f"Clinic {n} LLC")
        for k in range(per_client):
            ids.append(make.invoice(client, 10_000 + 100 * k, issue_date=date(2026, 2, 1),
                                    due_date=date(2026, 3, 1)).id)
        customer, card = saved_on_gateway(rt, client, fake.confirmation_token("pm_card_visa"))
        enroll_rows(session, rt, client, [(card, CARD)], customer=customer)
    return ids


def _each_charged_once(session, fake, invoice_ids: list[int]) -> None:
    by_invoice = fake.charges_by("invoice_id")
    assert sorted(by_invoice) == sorted(str(i) for i in invoice_ids)
    twice = {i: n for i, n in by_invoice.items() if n != 1}
    assert twice == {}, f"charged more than once: {twice}"
    session.rollback()  # a fresh snapshot: what the processes committed
    statuses = session.execute(select(Invoice.status, func.count()).where(Invoice.id.in_(invoice_ids))
                               .group_by(Invoice.status)).all()
    assert statuses == [("paid", len(invoice_ids))]
    assert session.scalar(select(func.count()).select_from(AutopayCharge)) == len(invoice_ids)


def test_four_run_due_processes_at_once_charge_500_invoices_each_exactly_once(
        app, app_config, session, make, stripe_gateway, fake_stripe):
    invoice_ids = _due_invoices(session, make, runtime_for(stripe_gateway), fake_stripe, clients=100, per_client=5)
    session.commit()
    fake_stripe.latency_seconds = 0.02  # answers overlap, as they do against Stripe
    env = _env(app_config, fake_stripe, GATEWAY_RATE_LIMIT=100)

    processes = [_run_due(env) for _ in range(4)]
    outputs = [p.finish(timeout=300) for p in processes]

    for p, (_out, err) in zip(processes, outputs, strict=True):
        assert p.process.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    charged = [int(out.strip().splitlines()[-1].split(": ")[1].split(" charged")[0]) for out, _ in outputs]
    assert sum(charged) == 500
    assert sum(1 for n in charged if n > 0) >= 2, charged  # they really ran side by side
    _each_charged_once(session, fake_stripe, invoice_ids)


def test_a_run_due_killed_mid_run_then_rerun_charges_everything_once(
        app, app_config, session, make, stripe_gateway, fake_stripe):
    invoice_ids = _due_invoices(session, make, runtime_for(stripe_gateway), fake_stripe, clients=40, per_client=5)
    session.commit()
    fake_stripe.latency_seconds = 0.1
    env = _env(app_config, fake_stripe, GATEWAY_RATE_LIMIT=40)

    victim = _run_due(env)
    deadline = time.monotonic() + 60
    while fake_stripe.payment_intent_count < 40 and time.monotonic() < deadline and victim.process.poll() is None:
        time.sleep(0.02)
    assert victim.process.poll() is None, "run-due finished before it could be killed"
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.finish(timeout=30)
    assert victim.process.returncode == -signal.SIGKILL
    half_done = fake_stripe.payment_intent_count
    assert 0 < half_done < len(invoice_ids)
    session.rollback()
    unfinished = session.scalar(select(func.count()).select_from(ChargeAttempt)
                                .where(ChargeAttempt.status.in_(("created", "unknown"))))
    assert unfinished > 0  # it died with charges on the wire: the rerun must finish them, not repeat them

    # the rerun (no grace: the killed process is not coming back) replays what was on the wire with the same keys
    rerun = _run_due(env, "--grace-seconds", "0")
    _out, err = rerun.finish(timeout=300)

    assert rerun.process.returncode in (0, 1), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    _each_charged_once(session, fake_stripe, invoice_ids)
    assert session.scalar(select(func.count()).select_from(ChargeAttempt)
                          .where(ChargeAttempt.status != "succeeded")) == 0
