"""Autopay enrollment: saving methods (sandbox and the real stripe SDK against the fake), microdeposits, the signed
authorization, rules, lock, incentives, and every refusal changing nothing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain import autopay as A
from portal.domain.errors import DomainError
from portal.gateways.payments import GatewayRequestError, MandateAcceptance, sandbox_token
from portal.models import Agreement, AgreementEvent, AutopayEnrollment, LedgerAdjustment, SavedPaymentMethod
from portal.services import agreements, ledger
from portal.services.agreements.chain import Meta
from portal.services.autopay import enrollment, incentives, methods, rules
from portal.services.errors import NotFound
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import read_outbox, runtime_for

ACCEPTANCE = MandateAcceptance(ip_address="203.0.113.7", user_agent="Mozilla/5.0 (test)",
                               accepted_at=datetime(2025, 3, 3, 9, 0, tzinfo=UTC))
META = Meta(ip="203.0.113.7", user_agent="Mozilla/5.0 (test)", session_id="a" * 32)
NONCE = "nonce-0123456789abcdef"


def save(session, gateway, contact, token, nonce=NONCE, verification="automatic"):
    return methods.save(session, runtime_for(gateway), contact,
                        methods.NewMethod(token=token, nonce=nonce, bank_verification=verification), ACCEPTANCE)


def sign(session, gateway, contact, method, *, role=A.DEFAULT, sha=None, **overrides):
    rt = runtime_for(gateway)
    doc = enrollment.document(session, rt, contact.client, method)
    signed = enrollment.SignedBy(**{
        "full_name": "Pat Payer", "title": "Office Manager", "authority_confirmed": True,
        "consent_confirmed": True, "signature": agreements.Signature(kind="typed", typed="Pat Payer"),
        "shown_sha256": sha or doc.sha256, **overrides})
    return enrollment.authorize(session, rt, contact, method.id, signed, meta=META, role=role)


def intact(session, gateway, agreement) -> bool:
    """The verify page's verdict: chain intact, the row agrees with it, signed."""
    found = agreements.verify_reference(session, runtime_for(gateway), agreement.reference)
    assert found is not None, "not found"
    assert found.chain.intact, found.chain
    assert not found.breaks, found.breaks
    return found.signed


def counts(session):
    return (session.scalar(select(func.count(SavedPaymentMethod.id))),
            session.scalar(select(func.count(Agreement.id))),
            session.scalar(select(func.count(AutopayEnrollment.id)).where(AutopayEnrollment.enrolled.is_(True))))


def discount_offer(session, percent="5"):
    settings = rules.autopay_settings(session)
    rules.update_settings(session, rules.SettingsInput(
        timing=settings.timing, offset_days=0, day_of_month=None, cap_cents=None, scope="all",
        method_types=frozenset({"card", "us_bank_account"}), use_fallback=True, notice_days=3, retry_days="3,5,7",
        required_for_new_clients=False, incentive_kind="discount", discount_percent=Decimal(percent),
        stop_after_failures=3))


# --- enrollment by card and by bank account -------------------------------------------------------------------


def test_card_enrollment_in_the_sandbox_signs_an_authorization_and_emails_a_copy(
        session, shop, sandbox_gateway, outbox):
    method = save(session, sandbox_gateway, shop.contact, sandbox_token("card", "4242424242424242",
                                                                        exp_month=4, exp_year=2031))
    assert (method.status, method.is_default, method.brand, method.last4) == (methods.ACTIVE, True, "visa", "4242")
    assert methods.label(method) == "Visa ending 4242"

    agreement = sign(session, sandbox_gateway, shop.contact, method)

    session.expire_all()
    assert agreement.kind == "card_authorization" and agreement.status == "signed"
    assert "Visa ending 4242" in agreement.document_text and "stored" in agreement.document_text.lower()
    assert "on each invoice's due date" in agreement.document_text
    kinds = [e.kind for e in session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                                             .order_by(AgreementEvent.seq))]
    assert kinds[:4] == ["invited", "consented", "viewed", "signed"]
    assert intact(session, sandbox_gateway, agreement)
    assert agreement.signed_pdf.startswith(b"%PDF")
    assert session.get(SavedPaymentMethod, method.id).authorization_id == agreement.id
    assert rules.is_enrolled(session, shop.client.id)
    mails = read_outbox(outbox)
    assert any(agreement.reference in m["Subject"] and "autopay authorization" in m["Subject"].lower()
               for m in mails)


def test_bank_enrollment_with_the_stripe_sdk_uses_nacha_wording(session, shop, stripe_gateway, fake_stripe):
    token = fake_stripe.confirmation_token("pm_usBankAccount_success")
    method = save(session, stripe_gateway, shop.contact, token)
    assert method.status == methods.ACTIVE and method.method_type == "us_bank_account"
    assert method.mandate_id and method.customer_id.startswith("cus_")

    agreement = sign(session, stripe_gateway, shop.contact, method)

    text = agreement.document_text
    assert agreement.kind == "ach_authorization"
    for words in ("debit", "amount varies", "revoke", "NACHA", "business days before"):
        assert words in text, words
    assert methods.label(method) in text


def test_card_enrollment_with_the_stripe_sdk(session, shop, stripe_gateway, fake_stripe):
    method = save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token("pm_card_visa"))
    assert method.status == methods.ACTIVE and method.method_id.startswith("pm_")
    sign(session, stripe_gateway, shop.contact, method)
    assert rules.is_enrolled(session, shop.client.id)


def test_microdeposits_pending_then_verified(session, shop, sandbox_gateway):
    method = save(session, sandbox_gateway, shop.contact, sandbox_token("us_bank_account", "000123456789"),
                  verification="microdeposits")
    assert method.status == methods.PENDING
    assert A.usable_methods(methods.domain_methods([method]), A.AutopayRules(), date(2025, 3, 3)) == []
    before = counts(session)

    with pytest.raises(DomainError, match="not verified yet"):
        sign(session, sandbox_gateway, shop.contact, method)
    with pytest.raises(DomainError, match="do not match"):
        methods.verify(session, runtime_for(sandbox_gateway), shop.client.id, method.id, amounts=(10, 11))
    assert counts(session) == before and session.get(SavedPaymentMethod, method.id).status == methods.PENDING

    verified = methods.verify(session, runtime_for(sandbox_gateway), shop.client.id, method.id, amounts=(32, 45))
    assert verified.status == methods.ACTIVE and verified.verified_at is not None
    sign(session, sandbox_gateway, shop.contact, verified)
    assert rules.is_enrolled(session, shop.client.id)


def test_microdeposits_with_the_stripe_sdk(session, shop, stripe_gateway, fake_stripe):
    method = save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token("pm_usBankAccount_success"),
                  verification="microdeposits")
    assert method.status == methods.PENDING
    verified = methods.verify(session, runtime_for(stripe_gateway), shop.client.id, method.id, amounts=(32, 45))
    assert verified.status == methods.ACTIVE


# --- bad input: refused, nothing changed ----------------------------------------------------------------------


def test_a_replayed_setup_form_saves_one_method(session, shop, sandbox_gateway, stripe_gateway, fake_stripe):
    token = fake_stripe.confirmation_token("pm_card_visa")
    first = save(session, stripe_gateway, shop.contact, token)
    again = save(session, stripe_gateway, shop.contact, token)
    assert again.id == first.id
    assert session.scalar(select(func.count(SavedPaymentMethod.id))) == 1


@pytest.mark.parametrize("token", ["ctoken_forged000000", "sbx_ctok_nonsense"])
def test_a_forged_setup_confirmation_is_refused(session, shop, stripe_gateway, fake_stripe, token):
    with pytest.raises(DomainError, match="could not be used|declined"):
        save(session, stripe_gateway, shop.contact, token)
    assert counts(session) == (0, 0, 0)


def test_a_setup_of_another_gateway_customer_is_refused(session, shop, make, stripe_gateway, fake_stripe):
    other = make.contact(make.client("Other Co"))
    theirs = save(session, stripe_gateway, other, fake_stripe.confirmation_token("pm_card_visa"))
    save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token("pm_card_mastercard"))
    before = counts(session)

    with pytest.raises(DomainError, match="does not belong"):
        methods.complete_setup(session, runtime_for(stripe_gateway), shop.contact, theirs.setup_id)
    with pytest.raises(DomainError, match="does not belong"):
        methods.complete_setup(session, runtime_for(stripe_gateway), shop.contact, "seti_forged")
    assert counts(session) == before


def test_another_clients_method_id_is_not_found(session, shop, make, sandbox_gateway):
    other = make.contact(make.client("Other Co"))
    theirs = save(session, sandbox_gateway, other, "pm_card_visa")
    with pytest.raises(NotFound):
        sign(session, sandbox_gateway, shop.contact, theirs)
    with pytest.raises(NotFound):
        enrollment.remove(session, runtime_for(sandbox_gateway), shop.client.id, theirs.id, meta=META)
    with pytest.raises(NotFound):
        methods.set_role(session, shop.client.id, theirs.id, A.FALLBACK)
    assert session.get(SavedPaymentMethod, theirs.id).status == methods.ACTIVE
    assert counts(session) == (1, 0, 0)


def test_a_document_changed_since_it_was_shown_is_not_signed(session, shop, sandbox_gateway):
    method = save(session, sandbox_gateway, shop.contact, "pm_card_visa")
    with pytest.raises(DomainError, match="changed since you opened it"):
        sign(session, sandbox_gateway, shop.contact, method, sha="0" * 64)
    with pytest.raises(DomainError, match="electronically"):
        sign(session, sandbox_gateway, shop.contact, method, consent_confirmed=False)
    assert counts(session) == (1, 0, 0)


@pytest.mark.parametrize(("change", "message"), [
    ({"timing": "day_of_month", "day_of_month": 32}, "between 1 and 31"),
    ({"timing": "day_of_month", "day_of_month": 0}, "between 1 and 31"),
    ({"timing": "days_before_due", "offset_days": 45}, "between 1 and 30"),
    ({"cap_cents": 10}, "at least"),
    ({"retry_days": "3, x"}, "whole numbers"),
    ({"incentive_kind": "discount", "discount_percent": Decimal("50")}, "cannot be more than"),
])
def test_settings_out_of_range_are_refused_and_change_nothing(session, change, message):
    base = dict(timing="on_due_date", offset_days=0, day_of_month=None, cap_cents=None, scope="all",
                method_types=frozenset({"card"}), use_fallback=True, notice_days=3, retry_days="3,5,7",
                required_for_new_clients=False, incentive_kind="none", discount_percent=None, stop_after_failures=3)
    with pytest.raises(DomainError, match=message):
        rules.update_settings(session, rules.SettingsInput(**{**base, **change}))
    assert session.scalar(select(func.count()).select_from(rules.AutopaySettings)) == 0


def test_client_override_out_of_range_is_refused(session, shop):
    with pytest.raises(DomainError, match="between 1 and 31"):
        rules.update_client_rules(session, shop.client, rules.OverrideInput(timing="day_of_month", day_of_month=40))
    assert rules.enrollment(session, shop.client.id) is None
    rules.update_client_rules(session, shop.client, rules.OverrideInput(timing="day_of_month", day_of_month=31,
                                                                        cap_override=True, cap_cents=50_000))
    got = rules.rules_for(session, shop.client.id)
    assert got.schedule.day_of_month == 31 and got.cap_cents == 50_000


# --- lock, removal, revocation --------------------------------------------------------------------------------


def test_a_locked_client_cannot_leave_autopay_but_staff_can(session, shop, sandbox_gateway):
    method = save(session, sandbox_gateway, shop.contact, "pm_card_visa")
    agreement = sign(session, sandbox_gateway, shop.contact, method)
    rules.update_client_rules(session, shop.client, rules.OverrideInput(locked=True))
    rt = runtime_for(sandbox_gateway)

    with pytest.raises(DomainError, match="locked"):
        enrollment.turn_off(session, rt, shop.client.id, meta=META)
    with pytest.raises(DomainError, match="locked"):
        enrollment.remove(session, rt, shop.client.id, method.id, meta=META)
    assert rules.is_enrolled(session, shop.client.id)
    assert session.get(SavedPaymentMethod, method.id).status == methods.ACTIVE

    enrollment.turn_off(session, rt, shop.client.id, meta=Meta(staff_id=None), by_staff=True)
    session.expire_all()
    assert not rules.is_enrolled(session, shop.client.id)
    last = session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                           .order_by(AgreementEvent.seq.desc())).first()
    assert last.kind == "revoked"
    assert session.get(Agreement, agreement.id).status == "signed"  # still readable and verifiable
    assert intact(session, sandbox_gateway, agreement)


def test_removing_the_method_detaches_it_and_revokes_the_authorization(session, shop, stripe_gateway, fake_stripe):
    method = save(session, stripe_gateway, shop.contact, fake_stripe.confirmation_token("pm_card_visa"))
    agreement = sign(session, stripe_gateway, shop.contact, method)
    rt = runtime_for(stripe_gateway)

    enrollment.remove(session, rt, shop.client.id, method.id, meta=META)

    session.expire_all()
    row = session.get(SavedPaymentMethod, method.id)
    assert row.status == methods.REMOVED and row.removed_at is not None
    assert not rules.is_enrolled(session, shop.client.id)
    with pytest.raises(GatewayRequestError):  # detached on the gateway: no longer this customer's
        stripe_gateway.saved_method(row.method_id, customer_id=row.customer_id)
    events = [e.kind for e in
              session.scalars(select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id)
                              .order_by(AgreementEvent.seq))]
    assert events[-1] == "revoked"


def test_fallback_needs_a_main_method_and_only_one_default(session, shop, sandbox_gateway):
    card = save(session, sandbox_gateway, shop.contact, "pm_card_visa", nonce="nonce-aaaaaaaaaaaaaaaa")
    bank = save(session, sandbox_gateway, shop.contact, "pm_usBankAccount_success", nonce="nonce-bbbbbbbbbbbbbbbb")
    with pytest.raises(DomainError, match="main autopay method first"):
        sign(session, sandbox_gateway, shop.contact, bank, role=A.FALLBACK)
    sign(session, sandbox_gateway, shop.contact, card)
    sign(session, sandbox_gateway, shop.contact, bank, role=A.FALLBACK)
    session.expire_all()
    rows = methods.methods_of(session, shop.client.id)
    chosen = A.usable_methods(methods.domain_methods(rows), rules.rules_for(session, shop.client.id),
                              date(2025, 3, 3))
    assert [m.method_type for m in chosen] == ["card", "us_bank_account"]


# --- incentives -----------------------------------------------------------------------------------------------


def test_discount_applied_shown_exported_and_withdrawn(session, shop, sandbox_gateway, outbox):
    discount_offer(session, "5")
    method = save(session, sandbox_gateway, shop.contact, "pm_card_visa")
    sign(session, sandbox_gateway, shop.contact, method)
    invoice = shop.first  # $100.00

    cents = incentives.discount_for(session, shop.client, invoice, 10_000)
    assert cents == 500
    incentives.record_discount(session, invoice, cents, attempt_id=41)
    incentives.record_discount(session, invoice, cents, attempt_id=41)  # a replayed booking discounts once
    session.commit()
    assert ledger.balance_of(session, invoice) == 9_500
    assert ledger.adjustments_on(session, invoice.id) == [
        ledger.AdjustmentLine("autopay_discount", "Autopay discount", 500)]
    export = incentives.discounts_csv(session, "USD").splitlines()
    assert export[0].startswith("date,client,invoice") and invoice.number in export[1] and ",5.00,USD," in export[1]
    assert session.get(type(invoice), invoice.id).total_cents == 10_000  # never an edit of the total

    enrollment.turn_off(session, runtime_for(sandbox_gateway), shop.client.id, meta=META)
    assert incentives.discount_for(session, shop.client, invoice, 9_500) == 0
    mails = [m for m in read_outbox(outbox) if "has ended" in m["Subject"]]
    assert len(mails) == 1 and mails[0]["To"] == shop.contact.email
    assert incentives.send_stop_notices(session, runtime_for(sandbox_gateway)) == 0  # told once


def test_the_discounts_export_never_hands_the_spreadsheet_a_formula(session, make):
    client = make.client(name='=HYPERLINK("http://evil.test","Acme")')
    invoice = make.invoice(client, 10_000, number="+1001")
    incentives.record_discount(session, invoice, 500, attempt_id=9)
    session.commit()

    [header, row] = list(csv.reader(io.StringIO(incentives.discounts_csv(session, "USD"))))

    assert header[1:3] == ["client", "invoice"]
    assert row[1:3] == ['\'=HYPERLINK("http://evil.test","Acme")', "'+1001"] and row[5] == "5.00"


def test_incentive_stops_when_the_method_keeps_failing(session, shop, sandbox_gateway, outbox):
    discount_offer(session)
    method = save(session, sandbox_gateway, shop.contact, "pm_card_visa")
    sign(session, sandbox_gateway, shop.contact, method)
    assert incentives.stop(session, shop.client, A.IncentiveStop.METHOD_FAILING)
    session.commit()
    assert incentives.discount_for(session, shop.client, shop.first, 10_000) == 0
    assert rules.is_enrolled(session, shop.client.id)  # still on autopay, without the discount
    assert incentives.send_stop_notices(session, runtime_for(sandbox_gateway)) == 1
    body = [m for m in read_outbox(outbox) if "has ended" in m["Subject"]][0]
    assert "failed several charges" in body.get_body(("plain",)).get_content()


def test_rate_lock_records_the_waived_increase(session, shop, sandbox_gateway):
    settings_row = rules.autopay_settings(session)
    rules.update_settings(session, rules.SettingsInput(
        timing=settings_row.timing, offset_days=0, day_of_month=None, cap_cents=None, scope="all",
        method_types=frozenset({"card", "us_bank_account"}), use_fallback=True, notice_days=3, retry_days="3,5,7",
        required_for_new_clients=False, incentive_kind="rate_lock", discount_percent=None, stop_after_failures=3,
        next_increase_on=date(2026, 4, 1), next_increase_percent=Decimal("4")))
    method = save(session, sandbox_gateway, shop.contact, "pm_card_visa")
    sign(session, sandbox_gateway, shop.contact, method)
    locks = incentives.rate_locks(session)
    assert len(locks) == 1
    assert (locks[0][0].waived_increase_on, locks[0][0].increase_percent) == (date(2026, 4, 1), Decimal("4"))
    assert locks[0][1] == shop.client.legal_name
    assert incentives.discount_for(session, shop.client, shop.first, 10_000) == 0


def test_yearly_savings_shown_before_enrolling(session, shop):
    discount_offer(session, "5")
    # $350 billed over the months since the first invoice, annualised
    savings = incentives.yearly_savings(session, shop.client.id)
    assert savings is not None and savings > 0
    assert session.scalar(select(func.count(LedgerAdjustment.id))) == 0
