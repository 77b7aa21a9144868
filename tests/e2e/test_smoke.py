"""The browser harness itself: Chromium reaches the live server, pages render under the real CSP, and the
console-error guard notices a violation."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_healthz_answers_in_the_browser(page):
    response = page.goto("/healthz")

    assert response is not None and response.status == 200
    assert json.loads(page.inner_text("body")) == {"status": "ok", "database": "ok"}


def test_sign_in_page_renders_under_the_csp_without_console_errors(page, browser_errors):
    response = page.goto("/login")

    assert response is not None and response.status == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert page.locator("form input[type=email]").first.is_visible()
    assert page.locator("form input[name=csrf_token]").count() >= 1  # CSRF is on in e2e tests
    page.wait_for_load_state("load")
    assert browser_errors == []


def test_the_console_guard_catches_a_csp_violation(app, page, browser_errors):
    # An inline script is exactly what the CSP forbids; the guard must see Chromium refuse it.
    app.add_url_rule("/e2e-inline-script", "e2e_inline_script",
                     lambda: "<!doctype html><title>x</title><script>document.title = 'ran'</script>")

    page.goto("/e2e-inline-script")

    assert page.title() == "x"
    assert any("Content Security Policy" in e for e in browser_errors), browser_errors
    browser_errors.clear()
