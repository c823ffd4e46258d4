// Sidebar progressive enhancement: while the mailbox is still syncing, poll the context API and
// update the progress bar; reload once sync is done so every number is the complete one.
// The page is fully rendered server-side and works without this script.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var main = document.getElementById("sidebar");
  if (!main || main.dataset.syncing !== "true" || !main.dataset.contextUrl) {
    return;
  }
  var text = document.getElementById("sb-sync-text");
  var bar = document.getElementById("sb-sync-bar");

  function poll() {
    fetch(main.dataset.contextUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (ctx) {
        var sync = ctx.sync;
        if (!sync.syncing) {
          window.location.reload();
          return;
        }
        if (sync.percent !== null) {
          if (text) { text.textContent = "Still syncing: " + sync.percent + "%"; }
          if (bar) { bar.value = sync.percent; }
          main.dataset.percent = String(sync.percent);
        }
        window.setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        window.setTimeout(poll, POLL_MS * 3); // offline or signed out: try again later, quietly
      });
  }

  window.setTimeout(poll, POLL_MS);
})();
