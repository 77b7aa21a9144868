// A refused form: move focus to the error summary at the top of the page, so the person sees (and a screen
// reader announces) what went wrong instead of a page that looks unchanged. Its links jump to each field.
(function () {
  "use strict";
  function show() {
    var summary = document.querySelector("[data-error-summary]");
    if (!summary) { return; }
    summary.scrollIntoView({block: "start"});
    summary.focus({preventScroll: true});
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      var input = link && document.getElementById(link.getAttribute("href").slice(1));
      if (!input) { return; }
      event.preventDefault();  // focus the input itself, not only scroll to it
      var details = input.closest("details");
      if (details) { details.open = true; }
      input.scrollIntoView({block: "center"});
      input.focus();
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", show);
  } else {
    show();
  }
})();
