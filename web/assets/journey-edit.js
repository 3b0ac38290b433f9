// Parcours console, journey editor: shows only the fields that apply to
// the choice made in a select (the trigger's type, how often a person may
// enter, a wait's kind). Without this file every field shows, each with
// its hint, and the server ignores those that do not apply.
"use strict";
(function () {
  // An element with data-when="SELECT_ID:value1,value2" shows when the
  // select with that id has one of those values.
  function update() {
    document.querySelectorAll("[data-when]").forEach(function (el) {
      var spec = el.getAttribute("data-when").split(":");
      var sel = document.getElementById(spec[0]);
      if (!sel) return;
      el.hidden = spec[1].split(",").indexOf(sel.value) < 0;
    });
  }
  document.addEventListener("change", function (ev) {
    if (ev.target.matches("select")) update();
  });
  update();
})();
