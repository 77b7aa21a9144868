"""Issue 15 in a real browser: every client-facing page passes axe-core's WCAG 2.1 A/AA rules at 1280px and at
390px (a phone), in every state a client meets (errors, a declined card, a bank payment processing, the terms
signing steps); at 390px no amount is cut off, the Pay button is above the fold on the invoice page, and after a
refused form the focused element is the error summary."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from portal.domain import terms as T
from portal.domain.invoices import LineInput
from portal.services import agreements as svc
from portal.services import clients, delivery, payments, sign_in, terms
from portal.services.settings import update_settings
from tests.payments_fixtures import read_outbox

from .a11y import PHONE, assert_accessible, top_of

pytestmark = pytest.mark.e2e

PASSWORD = "a long office password"
LAW = "the laws of the State of Connecticut"
LINES = [
    LineInput("Managed services: 24 endpoints, monitoring, patching and help desk", Decimal(24), 6500, taxable=False),
    LineInput("Microsoft 365 Business Premium licences", Decimal(16), 2200, taxable=False),
    LineInput("Offsite backup storage, 1 TB", Decimal(1), 4000, taxable=False),
]  # $1,952.00


@pytest.fixture
def office(session, make, rt):
    update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme.test")
    admin = make.staff()
    client = make.client("Harbor Dental Group LLC", region="Connecticut")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    sign_in.set_password(session, contact, PASSWORD)
    overdue = make.invoice(client, lines=LINES, issue_date=date(2026, 1, 2), due_date=date(2026, 2, 1))
    current = make.invoice(client, 48_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))
    return admin, client, contact, overdue, current


def publish_terms(session, admin, rt, **parameters):
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW, **parameters}, staff=admin)
    return svc.publish(session, rt, T.TERMS, staff=admin)


def sign_in_with_password(page, email: str) -> None:
    page.goto("/login")
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", email)
    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()


def expect_error_summary(page, browser_errors: list[str] | None = None) -> None:
    """A refused form: the summary is shown at the top and has the focus. Refusals that answer 400 make Chromium
    log the status; those (and only those) are taken off ``browser_errors``."""
    expect(page.locator("[data-error-summary]")).to_be_visible()
    # an expect(), not wait_for_function(): that one polls by evaluating a string, which the page's CSP (no
    # 'unsafe-eval') refuses whenever the focus has not moved by the first check (seen in CI under load)
    expect(page.locator("[data-error-summary]")).to_be_focused()
    assert page.locator("[data-error-summary] h2").is_visible()
    if browser_errors is not None:
        refused = [e for e in browser_errors if "status of 400 (BAD REQUEST)" in e and page.url.split("?")[0] in e]
        for e in refused:
            browser_errors.remove(e)


def test_a_contact_signs_the_terms_browses_and_pays_on_a_phone(page, live_server, session, rt, office,
                                                              browser_errors):
    admin, client, contact, overdue, current = office
    publish_terms(session, admin, rt)
    page.set_viewport_size(PHONE)

    page.goto("/login")
    assert_accessible(page, "sign-in")
    page.get_by_text("Sign in with a password instead").click()
    page.fill("#pw-email", "dana@harbor.test")
    page.fill("#pw-password", "wrong password here")
    page.get_by_role("button", name="Sign in with password").click()
    expect_error_summary(page, browser_errors)
    assert_accessible(page, "sign-in refused")

    page.fill("#pw-password", PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()

    # Terms not signed yet: the first page view asks for them. Step 1, refused without the tick, then given.
    page.wait_for_selector("#consent")
    assert_accessible(page, "terms: consent")
    page.get_by_role("button", name="Agree and continue").click()
    expect_error_summary(page, browser_errors)
    assert_accessible(page, "terms: consent refused")
    page.locator("#consent input[type=checkbox]").check()
    page.get_by_role("button", name="Agree and continue").click()

    page.wait_for_selector("#acknowledge")
    assert_accessible(page, "terms: read and acknowledge")
    page.get_by_role("button", name="Continue to signing").click()
    expect_error_summary(page, browser_errors)
    assert_accessible(page, "terms: acknowledgements missing")
    first_link = page.locator("[data-error-summary] a").first
    first_link.click()
    assert page.evaluate("document.activeElement.type") == "checkbox"  # the link took focus to the box to tick
    for clause in T.HIGH_RISK_CLAUSES:
        page.locator(f"input[name={clause.key}]").check()
    page.get_by_role("button", name="Continue to signing").click()

    page.wait_for_selector("#sign-form")
    assert_accessible(page, "terms: sign")
    page.get_by_label("Your full name", exact=True).fill("")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect_error_summary(page, browser_errors)
    assert_accessible(page, "terms: sign refused")
    page.get_by_label("Your full name", exact=True).fill("Dana Whitfield")
    page.get_by_label("Your title", exact=True).fill("Office Manager")
    page.get_by_label(re.compile("authorized to sign on behalf of")).check()
    page.get_by_label("Type my name").check()
    page.locator("input[name=typed_signature]").fill("Dana Whitfield")
    page.get_by_role("button", name="Sign", exact=True).click()
    page.wait_for_selector("#signed")
    assert_accessible(page, "terms: signed")

    # The account pages
    for path, what in (("/", "overview"), ("/invoices", "invoices"), (f"/invoices/{overdue.id}", "invoice"),
                       ("/payments", "payments"), ("/statement", "statement"), ("/agreements/", "agreements"),
                       ("/password", "password")):
        page.goto(path)
        assert_accessible(page, what)

    # On the invoice page at 390px the balance and the Pay button come first, above the fold
    page.goto(f"/invoices/{overdue.id}")
    expect(page.locator("[data-figure=balance]")).to_have_text("$1,952.00")
    pay = top_of(page, "#pay-online")
    assert pay["y"] + pay["height"] <= PHONE["height"], pay

    page.goto("/password")
    page.fill("#password", "short")
    page.get_by_role("button", name=re.compile("Save")).click()
    expect_error_summary(page, browser_errors)
    assert page.locator("#password").get_attribute("aria-invalid") == "true"
    assert "password-error" in page.locator("#password").get_attribute("aria-describedby")
    assert_accessible(page, "password refused")

    # Pay: choose the invoices (an unticked one shows no amount), a refused amount, then the card form
    page.goto("/pay")
    assert_accessible(page, "pay: choose")
    box = page.locator(f"#pay-{current.id}").bounding_box()
    assert box["width"] >= 24 and box["height"] >= 24, box  # a target a thumb can hit
    expect(page.locator(f"tr[data-invoice='{overdue.number}'] .badge-overdue")).to_be_visible()  # told apart
    page.fill(f"#amount-{overdue.id}", "abc")
    page.get_by_role("button", name="Continue to payment").click()
    expect_error_summary(page, browser_errors)
    assert page.get_attribute(f"#amount-{overdue.id}", "aria-invalid") == "true"
    assert_accessible(page, "pay: choose refused")
    page.locator(f"#pay-{current.id}").uncheck()
    expect(page.locator(f"#amount-{current.id}")).to_have_value("")
    expect(page.locator(f"#amount-{current.id}")).to_be_disabled()
    page.fill(f"#amount-{overdue.id}", "1952.00")
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.locator("h1")).to_have_text("Pay $1,952.00")
    assert_accessible(page, "pay: checkout")
    page.fill("#card_number", "4242 4242 4242 4242")
    page.fill("#card_expiry", "13/99")
    page.fill("#card_cvc", "1")
    page.click("#pay-button")
    expect_error_summary(page, browser_errors)
    expect(page.locator("#error-summary")).to_be_focused()  # waits for the page's script to move focus
    assert_accessible(page, "pay: card refused")

    page.fill("#card_number", "4000 0000 0000 9995")  # insufficient funds
    page.fill("#card_expiry", "12/30")
    page.fill("#card_cvc", "123")
    page.click("#pay-button")
    expect(page.locator("#declined")).to_contain_text("insufficient funds")
    expect(page.locator("#declined")).to_be_focused()  # waits for the page's script to move focus
    assert_accessible(page, "pay: declined")

    # the next step offered: the bank account, which opens the same checkout with the bank chosen
    page.get_by_role("link", name="Pay from your bank account (ACH) instead").click()
    expect(page.locator("#routing_number")).to_be_visible()
    page.fill("#routing_number", "110000000")
    page.fill("#account_number", "000123456789")
    page.click("#pay-button")
    expect(page.locator("#payment-state")).to_have_text("Processing")
    assert_accessible(page, "pay: bank payment processing")

    # The bank payment in flight shows on the invoice, and nothing more is offered for it
    page.goto(f"/invoices/{overdue.id}")
    expect(page.locator(".in-flight").first).to_contain_text("processing since")
    expect(page.locator("#nothing-to-pay")).to_be_visible()
    assert_accessible(page, "invoice with a bank payment in flight")
    page.goto("/payments")
    assert_accessible(page, "payments, one processing")
    page.locator("main table a").first.click()
    page.wait_for_url(re.compile(r"/payments/\d+$"))
    assert_accessible(page, "payment")
    for path, what in (("/autopay", "autopay"), ("/autopay/methods/new", "autopay: add a method")):
        page.goto(path)
        assert_accessible(page, what)


def test_the_emailed_link_pages_and_a_card_payment_on_a_phone(page, live_server, session, rt, office, outbox,
                                                             browser_errors):
    _admin, client, contact, overdue, _current = office
    clients.update_client(session, client, region="Ohio")  # a state that allows card surcharges
    payments.update_payment_settings(session, surcharge_percent=Decimal("3"), blocked_regions="Connecticut",
                                     partial_minimum_cents=5_000)
    delivery.send_invoice(session, rt, overdue, contacts=[contact])
    [message] = read_outbox(outbox)
    link = re.search(r"(http://127\.0\.0\.1:\d+/i/\S+)", message.get_body(("plain",)).get_content()).group(1)
    page.set_viewport_size(PHONE)

    page.goto(link)
    assert_accessible(page, "emailed invoice")
    pay = top_of(page, "#pay-online")
    assert pay["y"] + pay["height"] <= PHONE["height"], pay
    page.click("#pay-online")
    assert_accessible(page, "link: choose")
    page.get_by_role("button", name="Continue to payment").click()
    assert_accessible(page, "link: checkout")
    page.fill("#card_number", "4242 4242 4242 4242")  # a credit card: the surcharge is shown before paying
    page.fill("#card_expiry", "12/30")
    page.fill("#card_cvc", "123")
    page.click("#pay-button")
    expect(page.locator("#review")).to_contain_text("surcharge")
    assert_accessible(page, "link: surcharge review")
    page.click("#pay-button")
    expect(page.locator("#payment-state")).to_have_text("Paid")
    assert_accessible(page, "link: receipt")

    page.goto(link)
    assert_accessible(page, "emailed invoice, paid")
    response = page.goto(link + "x")
    assert response.status == 404
    assert_accessible(page, "link unavailable")
    [not_found] = browser_errors  # Chromium logs the 404 the page answers with
    assert "status of 404" in not_found
    browser_errors.clear()

    page.goto(link)
    page.keyboard.press("Tab")  # the first stop is the skip link, shown when focused; it leads to the content
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()  # waits for the page's script to move focus
    page.goto("/login")
    page.fill("#email", "not an email")
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect_error_summary(page, browser_errors)
    assert page.get_attribute("#email", "aria-invalid") == "true"
    assert_accessible(page, "sign-in link refused")
    page.fill("#email", "dana@harbor.test")
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.wait_for_url(re.compile(r"/login/sent"))
    assert_accessible(page, "sign-in link sent")
    page.goto("/verify")
    assert_accessible(page, "verify a signed copy")


def test_the_checks_catch_what_they_look_for(page, live_server):
    """The checks themselves: a missing label, low contrast and an amount pushed out of view are each caught."""
    page.goto("/login")
    page.evaluate("""() => {
      document.documentElement.removeAttribute("lang");
      const main = document.querySelector("main");
      main.insertAdjacentHTML("beforeend", '<input type="text" id="unlabelled"><p id="faint">faint</p>' +
        '<table><tr><td class="num" id="far">$1,952.00</td></tr></table>');
      Object.assign(document.getElementById("faint").style, {color: "#ccc", background: "#fff"});  // CSSOM: CSP allows
      Object.assign(document.getElementById("far").style, {position: "relative", left: "2000px"});
    }""")
    with pytest.raises(AssertionError) as caught:
        assert_accessible(page, "a broken page")
    report = str(caught.value)
    assert "html-has-lang" in report and "label" in report and "color-contrast" in report
    assert '"$1,952.00" is outside the viewport' in report
