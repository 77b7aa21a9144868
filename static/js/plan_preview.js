// Live schedule preview on the plan offer pages: whenever a field of #offer-form changes, post the form (with its
// CSRF token) to the page's preview endpoint and redraw the schedule from the JSON. The endpoint writes nothing;
// without this script the "Preview" button shows the same table after a normal submit.
(function () {
  "use strict";
  var form = document.getElementById("offer-form");
  var box = document.querySelector("[data-plan-preview]");
  if (!form || !box || !form.dataset.previewUrl) { return; }
  var timer = null;
  var sequence = 0;

  function setText(name, value) {
    var el = box.querySelector("[data-field='" + name + "']");
    if (el) { el.textContent = value; }
  }

  function cell(row, text, numeric, narrow) {
    var td = document.createElement("td");
    if (numeric) { td.className = narrow ? "num hide-sm" : "num"; }  // hide-sm: as the server-drawn table
    td.textContent = text;
    row.appendChild(td);
  }

  function draw(data) {
    var error = box.querySelector("[data-preview-error]");
    var body = box.querySelector("[data-preview-body]");
    if (!data.ok) {
      error.textContent = data.error || "These choices do not make a schedule.";
      error.hidden = false;
      body.hidden = true;
      return;
    }
    error.hidden = true;
    body.hidden = false;
    ["balance", "down_payment", "principal", "apr", "total_interest", "total_cost"].forEach(function (name) {
      setText(name, data[name]);
    });
    var outside = box.querySelector("[data-preview-outside]");
    if (outside) {
      outside.hidden = !data.outside_policy;
      setText("outside_policy", data.outside_policy || "");
    }
    var rows = box.querySelector("[data-preview-rows]");
    while (rows.firstChild) { rows.removeChild(rows.firstChild); }
    data.rows.forEach(function (r) {
      var tr = document.createElement("tr");
      cell(tr, String(r.number), false);
      cell(tr, r.due_on, false);
      cell(tr, r.amount, true);
      cell(tr, r.interest, true, true);
      cell(tr, r.principal, true, true);
      cell(tr, r.balance_after, true);
      rows.appendChild(tr);
    });
  }

  function refresh() {
    var mine = ++sequence;
    var body = new FormData(form);
    body.set("action", "preview");
    fetch(form.dataset.previewUrl, {method: "POST", body: body, credentials: "same-origin",
                                    headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data && mine === sequence) { draw(data); } })
      .catch(function () { /* the Preview button still works */ });
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(refresh, 300);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
}());
