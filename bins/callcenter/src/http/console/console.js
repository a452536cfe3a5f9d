// The console's and the wallboard's script: running timers, the live part replaced from
// Server-Sent Events, and (on the console) the heartbeat while the page is open. Served
// from the binary under a CSP that allows no inline code.
(function () {
  "use strict";

  function meta(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") : null;
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var x = s % 60;
    return h > 0 ? h + ":" + pad(m) + ":" + pad(x) : m + ":" + pad(x);
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = clock((now - Date.parse(el.getAttribute("data-since"))) / 1000);
    });
    document.querySelectorAll("[data-until]").forEach(function (el) {
      el.textContent = clock((Date.parse(el.getAttribute("data-until")) - now) / 1000);
    });
  }
  setInterval(tick, 1000);

  var csrf = meta("csrf-token");
  var events = meta("live-events");
  var live = document.getElementById("live");
  var pending = null;

  // Never pull a control out from under the keyboard or a half-chosen <select>: while
  // focus is inside the live part, the newest version waits until focus leaves.
  function focusInside() {
    var a = document.activeElement;
    return a && a !== document.body && live.contains(a);
  }

  function apply(html) {
    if (focusInside()) {
      pending = html;
      return;
    }
    live.innerHTML = html;
    pending = null;
    tick();
  }

  if (live && events && window.EventSource) {
    live.addEventListener("focusout", function () {
      setTimeout(function () {
        if (pending !== null && !focusInside()) {
          apply(pending);
        }
      }, 0);
    });
    var source = new EventSource(events);
    source.addEventListener("live", function (e) {
      apply(e.data);
    });
    source.addEventListener("ended", function () {
      source.close();
      location.reload();
    });
    source.onerror = function () {
      // The browser reconnects by itself; a refused stream (signed out) reloads the page.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(function () { location.reload(); }, 3000);
      }
    };
  }

  var main = document.getElementById("main");
  var every = main ? Number(main.getAttribute("data-heartbeat") || 0) : 0;
  if (every > 0 && csrf) {
    setInterval(function () {
      fetch("/console/heartbeat", {
        method: "POST",
        headers: { "X-CSRF-Token": csrf },
        credentials: "same-origin"
      }).then(function (r) {
        if (r.status === 401) {
          location.reload();
        }
      }).catch(function () { /* the next beat tries again */ });
    }, every * 1000);
  }
})();
