"""Remote-disable and equipment-recovery notices: issued only once the signed terms allow it (nothing written
before), delivered over real SMTP, opened, withdrawn when the overdue balance is paid with settled money (a bank
payment still clearing does not count), each step an event on the client's signed terms whose chain still
verifies."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from portal.clock import now
from portal.domain.errors import DomainError
from portal.gateways.payments import sandbox_token
from portal.models import AgreementEvent, EnforcementNotice, Equipment
from portal.services import agreements, payments
from portal.services.due import STEPS
from portal.services.enforcement import notices
from portal.services.errors import NotFound
from tests.enforcement_fixtures import META, publish_terms, sign_terms, verifies
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import new_request, runtime_for
from tests.run_due_fixtures import CARD, enroll_rows, run
from tests.smtp_fixtures import mail_through_smtp  # noqa: F401 (fixture)

DUE = date(2026, 3, 1)  # the shop's first invoice ($100.00); the second ($250.00) is due March 31


def kinds(session, agreement) -> list[str]:
    session.expire_all()
    return [e.kind for e in session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                                            .order_by(AgreementEvent.seq))]


def messages(smtp_server):
    return [m.message for m in smtp_server.messages]


@pytest.fixture
def signed(session, shop, make, clock):
    publish_terms(session, remote_disable_days=45, notice_days=10)
    agreement = sign_terms(session, shop.client, shop.contact)
    session.add(Equipment(client_id=shop.client.id, item="Firewall FG-60F", serial_number="FGT60F-0001",
                          value_cents=80_000, location="Server room", owned_until_paid=True, created_at=now()))
    session.add(Equipment(client_id=shop.client.id, item="Switch", serial_number="SW-22", value_cents=20_000,
                          location="Front desk", owned_until_paid=False, created_at=now()))
    session.commit()
    return agreement


def notice_count(session) -> int:
    return session.scalar(select(func.count(EnforcementNotice.id)))


def test_a_notice_before_the_signed_threshold_is_refused_and_writes_nothing(session, shop, signed, rt, clock):
    clock.set(DUE + timedelta(days=44))  # 44 days past due; the terms say 45
    before = kinds(session, signed)

    with pytest.raises(DomainError, match="only from 45 days past due .1 more day"):
        notices.issue(session, rt, shop.client, "remote_disable", staff=None)

    assert notice_count(session) == 0
    assert kinds(session, signed) == before
    assert verifies(session, rt, signed)


def test_without_signed_terms_there_is_no_notice(session, shop, rt, clock):
    clock.set(DUE + timedelta(days=200))
    with pytest.raises(DomainError, match="has not signed your payment terms"):
        notices.issue(session, rt, shop.client, "remote_disable", staff=None)
    assert notice_count(session) == 0


def test_nothing_past_due_is_refused(session, shop, signed, rt, clock):
    clock.set(DUE + timedelta(days=50))
    make_paid = payments.record_payment(session, shop.client, amount_cents=35_000, method="check")
    assert make_paid
    with pytest.raises(DomainError, match="Nothing is past due"):
        notices.issue(session, rt, shop.client, "remote_disable", staff=None)
    assert notice_count(session) == 0


def test_issued_delivered_by_smtp_opened_and_the_chain_verifies(session, shop, signed, rt, clock, smtp_server, make):
    clock.set(DUE + timedelta(days=45))
    staff = make.staff()

    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=staff, meta=META)

    session.expire_all()
    notice = session.get(EnforcementNotice, notice.id)
    assert notice.status == "issued" and notice.open_key == f"{shop.client.id}:remote_disable"
    assert notice.amount_due_cents == 35_000  # both invoices are past due by now (the second since March 31)
    assert notice.disable_permitted_on == (DUE + timedelta(days=55))  # issued today + 10 days' notice
    assert notice.clause.startswith("6. Remote disabling of systems")
    assert "more than 45 days past due" in notice.clause and "10 days' written notice" in notice.clause
    assert "FGT60F-0001" in notice.equipment and "SW-22" in notice.equipment
    assert notice.delivered_at is not None and notice.opened_at is None
    assert kinds(session, signed)[-2:] == ["notice_issued", "notice_delivered"]

    [mail] = [m for m in messages(smtp_server) if m["Subject"].startswith("Notice of remote disabling")]
    assert mail["Subject"] == "Notice of remote disabling of systems: $350.00"
    assert mail["To"] == shop.contact.email
    text = mail.get_body(("plain",)).get_content()
    assert "$350.00 is past due" in text and "April 25, 2026" in text
    assert "more than 45 days past due" in text and "FGT60F-0001" in text and "SW-22" in text
    assert f"/notices/{notice.public_id}" in text

    assert notices.live_notice(notices.notices_of(session, shop.client.id)).disable_permitted_on == date(2026, 4, 25)

    # opening: recorded once, by the client's own contact only
    other = make.contact(make.client("Other LLC"))
    with pytest.raises(NotFound):
        notices.record_opening(session, rt, other, notice.public_id, META)
    notices.record_opening(session, rt, shop.contact, notice.public_id, META)
    notices.record_opening(session, rt, shop.contact, notice.public_id, META)
    assert kinds(session, signed)[-3:] == ["notice_issued", "notice_delivered", "notice_opened"]
    assert session.get(EnforcementNotice, notice.id).opened_at is not None
    assert verifies(session, rt, signed)

    # one live notice per kind
    with pytest.raises(DomainError, match="already live"):
        notices.issue(session, rt, shop.client, "remote_disable", staff=staff)
    assert notice_count(session) == 1


def test_recovery_notice_lists_only_what_the_msp_still_owns(session, shop, signed, rt, clock):
    clock.set(DUE + timedelta(days=60))
    notice = notices.issue(session, rt, shop.client, "equipment_recovery", staff=None)
    assert "FGT60F-0001" in notice.equipment and "SW-22" not in notice.equipment
    assert notice.clause.startswith("7. Equipment ownership and recovery")


def test_recovery_with_no_equipment_the_msp_still_owns_is_refused_and_writes_nothing(session, shop, signed, rt,
                                                                                     clock):
    session.execute(update(Equipment).values(owned_until_paid=False))  # the firewall was paid for meanwhile
    session.commit()
    clock.set(DUE + timedelta(days=60))
    before = kinds(session, signed)

    with pytest.raises(DomainError, match="nothing to recover"):
        notices.issue(session, rt, shop.client, "equipment_recovery", staff=None)

    assert notice_count(session) == 0
    assert kinds(session, signed) == before
    assert notices.issue(session, rt, shop.client, "remote_disable", staff=None).kind == "remote_disable"


def test_a_refused_email_is_an_event_not_a_delivery(session, shop, signed, rt, clock, smtp_server):
    clock.set(DUE + timedelta(days=46))
    smtp_server.reply_next("554 5.7.1 Message rejected")

    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=None)

    assert session.get(EnforcementNotice, notice.id).delivered_at is None
    assert kinds(session, signed)[-2:] == ["notice_issued", "notice_delivery_failed"]
    assert verifies(session, rt, signed)


def test_no_billing_email_is_recorded_as_not_delivered(session, shop, signed, rt, clock, smtp_server):
    clock.set(DUE + timedelta(days=46))
    shop.contact.email = ""
    shop.contact.is_billing = False
    session.commit()

    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=None)

    assert session.get(EnforcementNotice, notice.id).delivered_at is None
    assert kinds(session, signed)[-2:] == ["notice_issued", "notice_delivery_failed"]
    assert verifies(session, rt, signed)


def test_ach_pending_does_not_withdraw_settled_does(app, session, shop, signed, clock, sandbox_gateway, smtp_server):
    rt = runtime_for(sandbox_gateway)
    clock.set(DUE + timedelta(days=47))
    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=None)
    # paying the invoice past the threshold is enough: the other one is only 17 days late, so the terms no longer
    # allow remote disable
    request = new_request(session, shop)
    attempt = payments.pay(session, rt, request, token=sandbox_token("us_bank_account", "000123456789"),
                           attempt_number=1)
    assert attempt.status == "processing"

    assert notices.withdraw_paid(session, rt) == 0
    run(app, session, rt, steps=tuple(s for s in STEPS if s.name == "notices withdrawn"))
    session.expire_all()
    assert session.get(EnforcementNotice, notice.id).status == "issued"
    assert "notice_withdrawn" not in kinds(session, signed)

    clock.advance(minutes=2)  # the sandbox bank settles the debit
    payments.reconcile(session, rt)

    session.expire_all()
    row = session.get(EnforcementNotice, notice.id)
    assert row.status == "withdrawn" and row.open_key is None and row.withdrawn_reason.startswith("paid")
    assert row.withdrawal_sent_at is not None
    assert kinds(session, signed)[-1] == "notice_withdrawn"
    assert notices.live_notice(notices.notices_of(session, shop.client.id)) is None
    withdrawn = [m for m in messages(smtp_server) if m["Subject"].startswith("Withdrawn")]
    assert len(withdrawn) == 1
    assert "the past-due balance is paid" in withdrawn[0].get_body(("plain",)).get_content()
    assert verifies(session, rt, signed)

    # told once: later runs send nothing more
    notices.withdraw_paid(session, rt)
    run(app, session, rt, steps=tuple(s for s in STEPS if s.name == "notices withdrawn"))
    assert len([m for m in messages(smtp_server) if m["Subject"].startswith("Withdrawn")]) == 1


def test_an_offline_payment_is_picked_up_by_run_due(app, session, shop, signed, rt, clock, smtp_server):
    clock.set(DUE + timedelta(days=50))
    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=None)
    payments.record_payment(session, shop.client, amount_cents=10_000, method="check")

    report = run(app, session, rt, steps=tuple(s for s in STEPS if s.name == "notices withdrawn"))

    assert not report.problems
    session.expire_all()
    assert session.get(EnforcementNotice, notice.id).status == "withdrawn"
    assert verifies(session, rt, signed)


def test_an_autopay_charge_that_pays_the_overdue_balance_withdraws_the_notice_in_the_same_run(
        app, session, shop, signed, clock, sandbox_gateway, smtp_server):
    """run-due books its own charges without withdrawing notices one charge at a time: its "notices withdrawn" step,
    later in the same run, does it once the charges have paid."""
    rt = runtime_for(sandbox_gateway)
    clock.set(DUE + timedelta(days=50))
    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=None)
    enroll_rows(session, rt, shop.client, [("pm_card_visa", CARD)])

    report = run(app, session, rt)

    assert (report.charged, report.succeeded, report.problems) == (2, 2, [])
    session.expire_all()
    assert session.get(EnforcementNotice, notice.id).status == "withdrawn"
    assert len([m for m in messages(smtp_server) if m["Subject"].startswith("Withdrawn")]) == 1
    assert verifies(session, rt, signed)


def test_staff_withdraws_with_a_reason(session, shop, signed, rt, clock, make, smtp_server):
    clock.set(DUE + timedelta(days=50))
    staff = make.staff()
    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=staff)

    with pytest.raises(DomainError, match="Give a reason"):
        notices.withdraw(session, rt, shop.client, notice.id, staff=staff, reason="  ")
    assert session.get(EnforcementNotice, notice.id).status == "issued"
    with pytest.raises(NotFound):
        notices.withdraw(session, rt, make.client("Other LLC"), notice.id, staff=staff, reason="x")

    notices.withdraw(session, rt, shop.client, notice.id, staff=staff, reason="Payment promised by the CFO")

    session.expire_all()
    assert session.get(EnforcementNotice, notice.id).status == "withdrawn"
    assert kinds(session, signed)[-1] == "notice_withdrawn"
    assert verifies(session, rt, signed)
    # a new notice may be issued once the old one is withdrawn
    again = notices.issue(session, rt, shop.client, "remote_disable", staff=staff)
    assert again.status == "issued"
    assert agreements.verify_reference(session, rt, signed.reference).chain.intact


def test_a_withdrawal_email_with_no_one_to_receive_it_is_tried_for_a_week_then_left(session, shop, signed, rt,
                                                                                     clock, make, smtp_server):
    clock.set(DUE + timedelta(days=50))
    staff = make.staff()

    def withdrawn_with_no_billing_contact() -> EnforcementNotice:
        notice = notices.issue(session, rt, shop.client, "remote_disable", staff=staff)
        shop.contact.is_billing = False  # the client's only billing contact left the company
        session.commit()
        notices.withdraw(session, rt, shop.client, notice.id, staff=staff, reason="Paid by check at the office")
        return notice

    def subjects() -> list[str]:
        return [m["Subject"] for m in messages(smtp_server) if m["Subject"].startswith("Withdrawn")]

    first = withdrawn_with_no_billing_contact()
    clock.set(clock.now() + timedelta(days=6))
    assert notices.send_withdrawals(session, rt) == 0 and subjects() == []
    shop.contact.is_billing = True  # a new billing contact within the week: told once
    session.commit()
    assert (notices.send_withdrawals(session, rt), notices.send_withdrawals(session, rt)) == (1, 0)
    assert len(subjects()) == 1

    second = withdrawn_with_no_billing_contact()
    clock.set(clock.now() + timedelta(days=8))
    shop.contact.is_billing = True  # only after the week: the banner has long gone; no late email
    session.commit()
    assert notices.send_withdrawals(session, rt) == 0 and len(subjects()) == 1
    session.expire_all()
    assert session.get(EnforcementNotice, first.id).withdrawal_sent_at is not None
    assert session.get(EnforcementNotice, second.id).withdrawal_sent_at is None


def test_the_demo_has_a_notice_issued_and_a_locked_deliverable(session, rt, clock, seeded_demo):
    from portal.models import Deliverable
    from portal.services.enforcement import deliverables

    notice = session.scalar(select(EnforcementNotice))
    assert notice is not None and notice.status == "issued" and notice.delivered_at is not None
    assert notice.equipment != "[]"
    from portal.services import standing

    assert standing.for_client(session, notice.client, clock.today()).standing == "on_hold"
    assert verifies(session, rt, notice.agreement)
    file = session.scalar(select(Deliverable))
    assert file is not None and not deliverables.released(session, file.invoice)
    # the same client signed a charge authorization with no card on file: it waits at the checkout, cancelable
    from portal.models import ChargeAuthorization

    [authorization] = session.scalars(select(ChargeAuthorization)).all()
    assert (authorization.client_id, authorization.status) == (notice.client_id, "signed")
    assert authorization.request.status == "open" and not authorization.request.attempts
    assert verifies(session, rt, authorization.agreement)


def test_the_help_desk_standing_carries_disable_permitted_from_while_a_notice_is_live(session, shop, signed, rt,
                                                                                         clock, make, smtp_server):
    from portal.services.standing.compute import as_json, for_clients

    def standing() -> dict:
        session.expire_all()
        return as_json(for_clients(session, [shop.client], clock.today())[0], "USD")

    clock.set(DUE + timedelta(days=50))
    assert standing()["disable_permitted_from"] is None
    staff = make.staff()
    notice = notices.issue(session, rt, shop.client, "remote_disable", staff=staff)

    assert standing()["disable_permitted_from"] == notice.disable_permitted_on.isoformat() == "2026-04-30"
    assert standing()["standing"] == "on_hold"

    notices.withdraw(session, rt, shop.client, notice.id, staff=staff, reason="Payment promised by the CFO")
    assert standing()["disable_permitted_from"] is None


def test_the_live_notice_among_a_clients_notices_is_its_remote_disable_notice_first():
    """The staff panel lists every notice and picks the live one from that list (no second read)."""
    def notice(id_, kind, status):
        return EnforcementNotice(id=id_, kind=kind, status=status)

    recovery = notice(3, "equipment_recovery", "issued")
    disable = notice(5, "remote_disable", "issued")
    later_disable = notice(7, "remote_disable", "issued")
    withdrawn = notice(2, "remote_disable", "withdrawn")
    assert notices.live_notice([later_disable, disable, recovery, withdrawn]) is disable
    assert notices.live_notice([recovery, withdrawn]) is recovery
    assert notices.live_notice([withdrawn]) is None and notices.live_notice([]) is None
