// The print buttons of the merchant area's printables (inline handlers are not allowed).
for (const button of document.querySelectorAll("[data-print]")) {
  button.addEventListener("click", () => window.print());
}
