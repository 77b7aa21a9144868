// Invoice form: "Add a line" copies the last row with the next index (lines-N-field), cleared.
// Without JavaScript the form still works: the server always renders a few blank rows.
(function () {
  "use strict";
  var button = document.getElementById("add-line");
  var table = document.getElementById("invoice-lines");
  if (!button || !table) { return; }
  var body = table.tBodies[0];
  button.hidden = false;

  button.addEventListener("click", function () {
    var rows = body.querySelectorAll("tr.line-row");
    var last = rows[rows.length - 1];
    var copy = last.cloneNode(true);
    var next = rows.length;
    copy.querySelectorAll("input").forEach(function (input) {
      ["name", "id"].forEach(function (attr) {
        var value = input.getAttribute(attr);
        if (value) { input.setAttribute(attr, value.replace(/^lines-\d+-/, "lines-" + next + "-")); }
      });
      if (input.type === "checkbox") { input.checked = true; } else { input.value = ""; }
    });
    copy.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
    body.appendChild(copy);
    var first = copy.querySelector("input");
    if (first) { first.focus(); }
  });
})();
