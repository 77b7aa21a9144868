// SANDBOX pay form: show only the fields of the chosen method (card or bank account), and stop a second click
// from sending the form again while the first is on its way (the server would not charge twice anyway).
(() => {
  const form = document.getElementById("sandbox-pay-form");
  if (!form) return;
  const choices = form.querySelectorAll("input[data-method-choice]");
  const sections = form.querySelectorAll("fieldset[data-method]");
  const show = () => {
    const chosen = form.querySelector("input[data-method-choice]:checked");
    const method = chosen ? chosen.value : "card";
    sections.forEach((section) => { section.hidden = section.dataset.method !== method; });
  };
  choices.forEach((choice) => choice.addEventListener("change", show));
  show();
  form.addEventListener("submit", () => {
    const button = form.querySelector("#pay-button");
    if (button) {
      // disabled on the next tick, so the click that submits still counts
      // (the saving-for-autopay form names its own busy label: nothing is paid there)
      setTimeout(() => { button.disabled = true; button.textContent = button.dataset.busyLabel || "Paying…"; }, 0);
    }
  });
})();
