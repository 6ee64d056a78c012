// The cockpit's copy buttons: copy the code named by data-copy and say so (no inline script: CSP).
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.dataset.copy).then(function () {
    var status = document.getElementById("copy-status");
    if (!status) {
      status = document.createElement("p");
      status.id = "copy-status";
      status.className = "visually-hidden";
      status.setAttribute("role", "status");
      document.body.appendChild(status);
    }
    // The word comes from the page (data-copied on <body>), in the page's language.
    status.textContent = (document.body.dataset.copied || "✓") + " " + button.dataset.copy;
    button.classList.add("copied");
  });
});

// The calculator: after htmx swapped in new figures (or errors), move the focus there for screen readers.
document.addEventListener("htmx:afterSwap", function (event) {
  if (!event.detail.target || event.detail.target.id !== "calculator") return;
  var heading = document.querySelector("#calculator [role=alert], #calculator [aria-invalid=true]") ||
    document.getElementById("results-title");
  if (heading) heading.focus();
});
