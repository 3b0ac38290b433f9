// Parcours console: small progressive enhancements. Every page works
// without this file; it only saves clicks.
"use strict";

// Copy buttons: <button data-copy="#id-of-element">Copy</button> copies the
// element's text and says so in the button itself (screen readers hear it).
document.addEventListener("click", function (ev) {
  var btn = ev.target.closest("button[data-copy]");
  if (!btn) return;
  var src = document.querySelector(btn.getAttribute("data-copy"));
  if (!src || !navigator.clipboard) return;
  ev.preventDefault();
  navigator.clipboard.writeText(src.value !== undefined ? src.value : src.textContent).then(function () {
    var was = btn.textContent;
    btn.textContent = "Copied";
    setTimeout(function () { btn.textContent = was; }, 1500);
  });
});
