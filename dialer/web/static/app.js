// tsunagu web: live regions over Server-Sent Events, timers, confirmations. No framework, no build step.
(function () {
  "use strict";
  function fillCsrf(root, csrf) {
    root.querySelectorAll("input.csrf").forEach(function (el) { el.value = csrf; });
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".timer[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-since"));
      if (isNaN(since)) { el.textContent = "—"; return; }
      var s = Math.max(0, Math.floor((now - since) / 1000));
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
      el.textContent = (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
    });
  }
  function swap(live, html) {
    // keep parts the user may be typing into (a disposition form, a command) when the server's version of
    // that part is the same one (same data-keep key); replace everything else
    var next = document.createElement("div");
    next.innerHTML = html;
    next.querySelectorAll("[data-keep]").forEach(function (fresh) {
      var old = live.querySelector("[data-keep=\"" + fresh.getAttribute("data-keep") + "\"]");
      if (old) { fresh.replaceWith(old); }
    });
    live.replaceChildren.apply(live, Array.prototype.slice.call(next.childNodes));
    live.setAttribute("data-updated", String(Date.now()));
  }
  function confirmForms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (f) {
      if (f.dataset.bound) { return; }
      f.dataset.bound = "1";
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live) {
      var csrf = live.getAttribute("data-csrf") || "";
      fillCsrf(live, csrf);
      confirmForms(live);
      var src = new EventSource(live.getAttribute("data-src"));
      src.addEventListener("update", function (ev) {
        swap(live, ev.data);
        fillCsrf(live, csrf);
        confirmForms(live);
        tick();
      });
      src.addEventListener("ended", function () { src.close(); window.location.href = "/login"; });
    }
    tick();
    window.setInterval(tick, 1000);
  });
})();
