// The admin pages' one script (served from the listener: the pages' CSP allows no inline script).
// A button with data-copy puts its value on the clipboard.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.dataset.copy).then(() => { button.textContent = "Copied"; });
});
