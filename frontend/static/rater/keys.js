// Number keys for the server-rendered practice and preview pages: the key shown on a
// button (1-9, 0, X) presses it, as on the task page. No key does anything while the
// focus is in a text field, or once the answer is given (the buttons are then disabled).
(function () {
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
    const key = event.key.length === 1 ? event.key.toUpperCase() : "";
    if (!key) return;
    const button = document.querySelector('[data-keys] .option[data-key="' + key + '"]:not(:disabled)');
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
  // The preview's progress bar: its width comes as data-width (CSP forbids style attributes).
  const fill = document.querySelector("#progress-fill[data-width]");
  if (fill) fill.style.width = fill.dataset.width + "%";
  const feedback = document.getElementById("feedback");
  if (feedback) feedback.scrollIntoView({ block: "nearest" });
})();
