// Outlook task pane: who is the sender of the open message to me?
//
// The sender comes from Office.js (read mode: Office.context.mailbox.item.from.emailAddress)
// when Outlook hosts the page, else from `?email=` (for trying the page in a browser).
// The token for POST /addin/outlook/context is, in order:
//   1. nested app authentication, when the operator serves MSAL.js as `window.msal` and
//      WARMLINE_MICROSOFT_ADDIN_AUDIENCE is set (data-naa-scope): an access token for our API;
//   2. a Warmline API token (wl_...) the person pasted once, kept in this browser's storage.
(function () {
  "use strict";
  var main = document.getElementById("taskpane");
  if (!main) { return; }
  var TOKEN_KEY = "warmline.apiToken";
  var el = function (id) { return document.getElementById(id); };

  function status(text) { el("tp-status").textContent = text; }

  function senderFromQuery() {
    var email = new URLSearchParams(window.location.search).get("email");
    return email ? email.trim() : null;
  }

  function senderFromOffice() {
    try {
      var item = window.Office && Office.context && Office.context.mailbox && Office.context.mailbox.item;
      if (item && item.from && item.from.emailAddress) { return item.from.emailAddress; }
    } catch (e) { /* not in Outlook */ }
    return null;
  }

  function naaToken() {
    var scope = main.dataset.naaScope, clientId = main.dataset.clientId;
    if (!scope || !clientId || !window.msal || !msal.createNestablePublicClientApplication) {
      return Promise.resolve(null);
    }
    return msal.createNestablePublicClientApplication({ auth: { clientId: clientId } })
      .then(function (app) {
        var request = { scopes: [scope] };
        return app.acquireTokenSilent(request).catch(function () { return app.acquireTokenPopup(request); });
      })
      .then(function (result) { return result.accessToken; })
      .catch(function () { return null; });
  }

  function storedToken() {
    try { return window.localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function askForToken(then) {
    var form = el("tp-token-form");
    form.hidden = false;
    status("Sign in is not available here: paste a Warmline API token (POST /api/v1/tokens).");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = el("tp-token").value.trim();
      if (!value) { return; }
      try { window.localStorage.setItem(TOKEN_KEY, value); } catch (e) { /* private mode */ }
      form.hidden = true;
      then(value);
    });
  }

  function render(ctx) {
    var name = (ctx.contact && ctx.contact.display_name) || ctx.address || ctx.query;
    el("tp-name").textContent = name;
    el("tp-address").textContent = ctx.address || "";
    var link = main.dataset.publicUrl + "/sidebar?email=" + encodeURIComponent(ctx.address || ctx.query);
    el("tp-open").href = link;
    if (!ctx.known) {
      el("tp-facts").hidden = true;
      status(ctx.reason === "yourself" ? "This is you." : "No history with this person yet.");
      return;
    }
    el("tp-strength").textContent = (ctx.strength === null ? 0 : ctx.strength) + "/100";
    el("tp-reasons").textContent = ctx.strength_reasons.join("; ");
    el("tp-last").textContent = ctx.last_contact_words || "never";
    el("tp-counts").textContent = ctx.email.inbound_count + " from them · " + ctx.email.outbound_count + " from you";
    var next = ctx.meetings.next_meeting;
    el("tp-next").textContent = next ? next.words : "none scheduled";
    el("tp-facts").hidden = false;
    status(ctx.sync && ctx.sync.syncing ? "Still syncing: numbers may grow." : "");
  }

  function load(email, token) {
    status("Looking up " + email + "…");
    fetch(main.dataset.contextUrl, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify({ email: email })
    })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, code: response.status, body: body }; });
      })
      .then(function (result) {
        if (result.ok) { render(result.body); return; }
        if (result.code === 401 && token === storedToken()) {
          try { window.localStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
        }
        status((result.body.error && result.body.error.message) || "Warmline answered " + result.code);
      })
      .catch(function () { status("Could not reach Warmline."); });
  }

  function start() {
    var email = senderFromOffice() || senderFromQuery();
    if (!email) { return; }
    naaToken().then(function (token) {
      token = token || storedToken();
      if (token) { load(email, token); } else { askForToken(function (t) { load(email, t); }); }
    });
  }

  if (window.Office && Office.onReady) {
    Office.onReady(function () { start(); });
  } else {
    start();
  }
})();
