// Parcours console, Data pages: keeps the progress of running imports
// current. An element with data-live="SECONDS" is fetched again (the same
// page) every SECONDS and replaced by its new version; when the new
// version has no data-live, the import ended and updating stops. Without
// this script the pages offer a Reload link.
"use strict";

(function () {
  function live() { return document.querySelectorAll("[data-live]"); }
  var first = live()[0];
  if (!first || !window.fetch || !window.DOMParser) return;
  var every = Math.max(1, parseInt(first.getAttribute("data-live"), 10) || 2) * 1000;

  function update() {
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) { return res.ok ? res.text() : Promise.reject(res.status); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html");
        live().forEach(function (el) {
          var fresh = el.id && next.getElementById(el.id);
          if (fresh) el.replaceWith(document.importNode(fresh, true));
        });
        if (live().length) setTimeout(update, every);
      })
      .catch(function () { setTimeout(update, every * 5); });
  }
  setTimeout(update, every);
})();
