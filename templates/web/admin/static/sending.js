// The progress page without reloading: read progress.json every second, update the
// numbers in place. Without script the page's Refresh link does the same.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-source");
  function put(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = value; }
  }
  function tick() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) { return; }
        put("status", p.status_label || p.status); put("note", p.note); put("done", p.done);
        put("total", p.total); put("rate", p.rate); put("eta", p.eta || "\u2013");
        var bar = box.querySelector('[data-field="bar"]');
        if (bar) { bar.max = p.total || 1; bar.value = p.done; }
        Object.keys(p.counts).forEach(function (k) {
          var el = box.querySelector('[data-count="' + k + '"]');
          if (el) { el.textContent = p.counts[k]; }
        });
        if (p.status !== "sent" && p.status !== "cancelled") {
          setTimeout(tick, p.status === "sending" ? 1000 : 5000);
        } else {  // nothing left to cancel: hide what only made sense while sending
          document.querySelectorAll("[data-until-done]").forEach(function (el) {
            el.hidden = true;
          });
        }
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1000);
}());
