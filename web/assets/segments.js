// Parcours console: the segment editor checks its rule as the marketer
// types. A moment after the last key (300 ms), the rule goes to
// POST /segments/check with the form's CSRF token; the answer, an HTML
// fragment drawn by the page's own templates, says where the rule is wrong
// (line, column, the line with a caret) or how many profiles it selects now
// and a few of them. Without this script the page works the same with its
// Preview and Save buttons.
"use strict";

(function () {
  var rule = document.querySelector("textarea[data-check]");
  if (!rule) return;
  var form = rule.form;
  var status = document.getElementById("rule-status");
  var sample = document.getElementById("rule-sample");
  var csrf = form.querySelector('input[name="csrf"]');
  var DELAY = 300;
  var timer = null;
  var inFlight = null; // the AbortController of the check under way
  var lastChecked = rule.value;

  // markRule says on the textarea itself whether the rule has an error,
  // points it at the error's text for screen readers, and gives the error a
  // button that puts the cursor at its position.
  function markRule() {
    var err = document.getElementById("rule-error");
    if (!err) {
      rule.removeAttribute("aria-invalid");
      rule.removeAttribute("aria-describedby");
      return;
    }
    rule.setAttribute("aria-invalid", "true");
    rule.setAttribute("aria-describedby", "rule-error");
    if (!err.querySelector("button[data-goto-error]")) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "link";
      b.setAttribute("data-goto-error", "");
      b.textContent = "Put the cursor there";
      err.appendChild(b);
    }
  }

  // offsetOf turns a 1-based line and column into an offset in the text.
  function offsetOf(text, line, column) {
    var lines = text.split("\n");
    var off = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) off += lines[i].length + 1;
    var here = lines[Math.min(line, lines.length) - 1] || "";
    return off + Math.min(Math.max(column - 1, 0), here.length);
  }

  function show(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var slots = { status: status, sample: sample };
    Object.keys(slots).forEach(function (name) {
      var from = doc.querySelector('[data-slot="' + name + '"]');
      slots[name].replaceChildren.apply(slots[name], from ? Array.prototype.slice.call(from.childNodes) : []);
    });
    // A Preview shown by the server is about an earlier rule now.
    var old = document.getElementById("preview");
    if (old) old.hidden = true;
    markRule();
  }

  function failed(msg) {
    var p = document.createElement("p");
    p.className = "small muted";
    p.textContent = msg;
    status.replaceChildren(p);
    sample.replaceChildren();
  }

  function check() {
    var text = rule.value;
    if (text === lastChecked) return;
    lastChecked = text;
    if (inFlight) inFlight.abort();
    var ctl = new AbortController();
    inFlight = ctl;
    status.setAttribute("aria-busy", "true");
    var body = new URLSearchParams();
    body.set("csrf", csrf.value);
    body.set("rule", text);
    fetch(rule.getAttribute("data-check"), {
      method: "POST", body: body, signal: ctl.signal, credentials: "same-origin",
      headers: { "Accept": "text/html" }
    }).then(function (res) {
      if (res.status === 401) throw new Error("Your session has ended: sign in again in another tab, then keep typing or press Preview.");
      if (!res.ok) throw new Error("The rule could not be checked just now; Preview and Save still check it.");
      return res.text();
    }).then(function (html) {
      if (inFlight === ctl) show(html);
    }).catch(function (err) {
      if (err.name === "AbortError") return;
      lastChecked = null; // try again on the next key
      failed(err.message);
    }).finally(function () {
      if (inFlight === ctl) {
        inFlight = null;
        status.removeAttribute("aria-busy");
      }
    });
  }

  rule.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, DELAY);
  });

  // "Put the cursor there": to the error's line and column in the rule.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-goto-error]");
    if (!btn) return;
    var err = btn.closest("[data-line]");
    var off = offsetOf(rule.value, Number(err.getAttribute("data-line")), Number(err.getAttribute("data-column")));
    rule.focus();
    rule.setSelectionRange(off, Math.min(off + 1, rule.value.length));
  });

  markRule();
})();
