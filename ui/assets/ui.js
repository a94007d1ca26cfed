// rumor web UI: keeps an open page live. Every page is whole without this script;
// with it, the page's <main> is replaced by the server's rendering whenever it
// changes, over one server-sent-events stream on the page's own URL (the server
// coalesces changes to a few updates a second), "for" times keep counting, and
// command lines get a copy button. Nothing else is loaded and nothing is polled.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var badge = document.getElementById("live-state");

  function age(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-rel]").forEach(function (t) {
      var at = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(at)) t.textContent = t.getAttribute("data-rel") + age(now - at);
    });
  }
  function copyButtons() {
    document.querySelectorAll(".copy-btn").forEach(function (b) {
      b.hidden = !navigator.clipboard;
    });
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest(".copy-btn");
    if (!b) return;
    var code = b.parentNode.querySelector("code");
    navigator.clipboard.writeText(code.textContent).then(function () {
      b.textContent = "copied";
      setTimeout(function () { b.textContent = "copy"; }, 1500);
    });
  });
  copyButtons();
  setInterval(tick, 1000);

  if (!main || !window.EventSource || document.body.dataset.static !== undefined) return;
  var es = new EventSource(location.href);
  es.addEventListener("main", function (e) {
    main.innerHTML = e.data;
    main.dataset.updated = String(Date.now());
    copyButtons();
    tick();
  });
  es.onopen = function () { badge.hidden = false; badge.textContent = "live"; badge.className = "live-state"; };
  es.onerror = function () { badge.hidden = false; badge.textContent = "reconnecting"; badge.className = "live-state off"; };
})();
