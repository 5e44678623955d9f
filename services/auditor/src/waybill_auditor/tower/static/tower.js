// Live updates: on each new row of the audit trail (server-sent events), fetch this page
// again and swap its main content in, keeping what the person is typing or has opened.
(function () {
  "use strict";
  var source = document.body.getAttribute("data-live");
  if (!source || !window.EventSource) return;
  var pending = null;
  var status = document.querySelector(".live-status");

  function busy() {
    var active = document.activeElement;
    return active && (active.tagName === "TEXTAREA" || active.tagName === "INPUT") && active.value;
  }

  function refresh() {
    pending = null;
    if (busy()) { pending = setTimeout(refresh, 2000); return; }
    var open = Array.prototype.map.call(document.querySelectorAll("main details[open]"), function (d) {
      var entry = d.closest("[id]"); return entry ? entry.id : null;
    });
    fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var main = fresh.querySelector("main"), footer = fresh.querySelector("footer");
        if (!main) return;
        document.querySelector("main").innerHTML = main.innerHTML;
        if (footer) document.querySelector("footer").innerHTML = footer.innerHTML;
        open.forEach(function (id) {
          var d = id && document.getElementById(id) && document.getElementById(id).querySelector("details");
          if (d) d.open = true;
        });
        document.dispatchEvent(new CustomEvent("tower:updated"));
      })
      .catch(function () { /* the next update tries again */ });
  }

  function schedule() { if (!pending) pending = setTimeout(refresh, 400); }

  var events = new EventSource(source, { withCredentials: true });
  events.addEventListener("update", schedule);
  events.addEventListener("resync", schedule);
  events.onerror = function () {
    document.body.setAttribute("data-live-state", "reconnecting");
    if (status) { status.hidden = false; status.textContent = "Live updates paused; reconnecting…"; }
  };
  events.onopen = function () {
    if (status) status.hidden = true;
    document.body.setAttribute("data-live-state", "open");
    // What landed between drawing the page and (re)connecting came with no event: catch up.
    schedule();
  };
})();
