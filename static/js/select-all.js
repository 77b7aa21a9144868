// A header checkbox with data-select-all="NAME" ticks or clears every checkbox named NAME in its form.
document.querySelectorAll("input[data-select-all]").forEach((master) => {
  const boxes = () => master.form.querySelectorAll(`input[type=checkbox][name="${master.dataset.selectAll}"]`);
  master.addEventListener("change", () => boxes().forEach((box) => { box.checked = master.checked; }));
});
