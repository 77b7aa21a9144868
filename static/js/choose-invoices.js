// Choose what to pay: an unticked invoice shows no amount (it will not be paid); ticking it fills in its full
// balance, which the client may lower. Unticked inputs are disabled, so they are not sent either.
(() => {
  document.querySelectorAll("input[data-pick]").forEach((box) => {
    const amount = document.getElementById(box.dataset.pick);
    if (!amount) return;
    box.addEventListener("change", () => {
      amount.disabled = !box.checked;
      amount.value = box.checked ? (amount.value || amount.dataset.full) : "";
    });
  });
})();
