// A wide table that still scrolls sideways on a small screen must be reachable by keyboard: its wrapper becomes a
// focusable, named region (only when it really overflows, so wide screens get no extra tab stops).
(() => {
  const mark = () => {
    document.querySelectorAll(".table-wrap").forEach((wrap) => {
      const scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
      if (scrolls && !wrap.hasAttribute("tabindex")) {
        const heading = wrap.closest("section")?.querySelector("h2, h1");
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", heading ? heading.textContent.trim() : "Table");
      } else if (!scrolls && wrap.getAttribute("role") === "region") {
        ["tabindex", "role", "aria-label"].forEach((name) => wrap.removeAttribute(name));
      }
    });
  };
  mark();
  window.addEventListener("resize", mark);
})();
