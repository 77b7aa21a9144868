"""Accessibility and phone-layout checks for the browser tests (issue 15).

- ``assert_accessible(page, what)``: axe-core's WCAG 2.1 A and AA rules (axe-core as bundled by the
  axe-playwright-python package, so CI needs no npm step) at a desktop width and at a phone's 390px; any violation
  fails the test with axe's report. At 390px it also checks that no amount of money is cut off.
- ``clipped_money(page)``: every visible money cell or figure whose text is not fully inside the viewport and the
  box that holds it (a table wrapper that clips, a card, a figure tile), or that overflows its own box.
"""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
_AXE = Axe()

MONEY = "td.num, th.num, .stat .value, .money, .statement-closing, [data-figure]"

_CLIPPED_JS = """(selector) => {
  const found = [];
  const viewport = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > viewport + 1) {
    found.push(`the page scrolls sideways (${document.documentElement.scrollWidth}px wide in ${viewport}px)`);
  }
  for (const el of document.querySelectorAll(selector)) {
    if (el.getClientRects().length === 0) continue;  // not displayed
    // what a person sees of it: its text (not text only for screen readers) and any amount input in it
    const parts = [];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.textContent.trim() && !node.parentElement.closest(".visually-hidden")) {
        const range = document.createRange();
        range.selectNodeContents(node);
        parts.push(range.getBoundingClientRect());
      }
    }
    el.querySelectorAll("input:not([type=hidden])").forEach((input) => parts.push(input.getBoundingClientRect()));
    const shown = parts.filter((p) => p.width > 0);
    const text = el.textContent.replace(/\\s+/g, " ").trim() || el.querySelector("input")?.value || "";
    if (!shown.length || !/\\d/.test(text + (el.querySelector("input")?.value || ""))) continue;
    const r = {left: Math.min(...shown.map((p) => p.left)), right: Math.max(...shown.map((p) => p.right))};
    const holder = el.closest(".table-wrap") || el.parentElement.closest(".stat, .card, td, th, main");
    const box = holder.getBoundingClientRect();
    const where = `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} "${text}"`;
    if (r.left < -0.5 || r.right > viewport + 0.5) {
      found.push(`${where} is outside the viewport (${Math.round(r.left)}..${Math.round(r.right)} of ${viewport})`);
    } else if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
      const span = (a, b) => `${Math.round(a)}..${Math.round(b)}`;
      found.push(`${where} sticks out of its ${holder.className || holder.tagName} ` +
                 `(${span(r.left, r.right)} in ${span(box.left, box.right)})`);
    } else if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible") {
      found.push(`${where} is cut off inside its own box`);
    }
  }
  return found;
}"""


def violations(page) -> str:
    results = _AXE.run(page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA},
                                      "resultTypes": ["violations"]})
    return results.generate_report() if results.violations_count else ""


def clipped_money(page) -> list[str]:
    page.evaluate("window.scrollTo(0, 0)")
    return page.evaluate(_CLIPPED_JS, MONEY)


def assert_accessible(page, what: str) -> None:
    """axe at 1280px and 390px (the page is left at 390px), and no amount cut off at 390px."""
    problems = []
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        page.evaluate("new Promise(requestAnimationFrame)")  # one frame: the layout (and resize handlers) settle
        report = violations(page)
        if report:
            problems.append(f"{what} at {size['width']}px: {report}")
    clipped = clipped_money(page)
    if clipped:
        problems.append(f"{what} at 390px, amounts cut off:\n  " + "\n  ".join(clipped))
    assert not problems, "\n\n".join(problems)


def top_of(page, selector: str) -> dict:
    """The element's box relative to the top of the page (the page scrolled to the top first)."""
    page.evaluate("window.scrollTo(0, 0)")
    return page.locator(selector).bounding_box()
