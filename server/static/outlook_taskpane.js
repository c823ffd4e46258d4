// Outlook task pane: who is the sender of the open message to me?
//
// The sender comes from Office.js (read mode: Office.context.mailbox.item.from.emailAddress)
// when Outlook hosts the page, else from `?email=` (for trying the page in a browser).
// The token for POST /addin/outlook/context is, in order:
//   1. nested app authentication (NAA): when WARMLINE_MICROSOFT_ADDIN_AUDIENCE is set the page
//      carries the API scope (data-naa-scope) and loads the vendored MSAL.js as `window.msal`;
//      used only if the host supports the NestedAppAuth 1.1 requirement set (not Outlook.com or
//      Gmail mailboxes, nor older builds):
//      https://learn.microsoft.com/javascript/api/requirement-sets/common/nested-app-auth-requirement-sets
//      Create the client in Office.onReady, acquireTokenSilent first, a popup only when needed:
//      https://learn.microsoft.com/office/dev/add-ins/develop/enable-nested-app-authentication-in-your-add-in
//      https://learn.microsoft.com/entra/identity-platform/scenario-spa-acquire-token
//   2. a Warmline API token (wl_...) the person pasted, kept in this browser's storage once
//      Warmline has accepted it. NAA unavailable or failing → the form asking for one.
(function () {
  "use strict";
  var main = document.getElementById("taskpane");
  if (!main) { return; }
  var TOKEN_KEY = "warmline.apiToken";
  var el = function (id) { return document.getElementById(id); };
  var sender = null;

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

  function naaSupported() {
    try {
      return Boolean(window.Office && Office.context && Office.context.requirements &&
        Office.context.requirements.isSetSupported("NestedAppAuth", "1.1"));
    } catch (e) { return false; }
  }

  function naaToken() {
    var scope = main.dataset.naaScope, clientId = main.dataset.clientId;
    // Without the requirement set, MSAL would fall back to a standard (redirect/iframe) client
    // that this page's CSP and Outlook's frame cannot host: go straight to the token form.
    if (!scope || !clientId || !window.msal || !msal.createNestablePublicClientApplication || !naaSupported()) {
      return Promise.resolve(null);
    }
    var request = { scopes: [scope] };
    var auth = { clientId: clientId };
    if (main.dataset.authority) { auth.authority = main.dataset.authority; }
    return msal.createNestablePublicClientApplication({ auth: auth })
      .then(function (app) {
        return app.acquireTokenSilent(request).catch(function (error) {
          // Consent or sign-in needed: ask the person. Any other failure: the token form.
          if (error instanceof msal.InteractionRequiredAuthError) { return app.acquireTokenPopup(request); }
          throw error;
        });
      })
      .then(function (result) { return result.accessToken; })
      .catch(function () { return null; });
  }

  function storedToken() {
    try { return window.localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function storeToken(value) {
    try {
      if (value) { window.localStorage.setItem(TOKEN_KEY, value); } else { window.localStorage.removeItem(TOKEN_KEY); }
    } catch (e) { /* private mode: ask again next time */ }
  }

  function askForToken(message) {
    el("tp-facts").hidden = true;
    el("tp-token-form").hidden = false;
    status(message);
  }

  el("tp-token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var value = el("tp-token").value.trim();
    if (!value || !sender) { return; }
    el("tp-token").value = "";
    el("tp-token-form").hidden = true;
    load(sender, value, true);
  });

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

  // isApiToken: a pasted or stored Warmline token (kept once accepted, forgotten once refused).
  function load(email, token, isApiToken) {
    status("Looking up " + email + "…");
    fetch(main.dataset.contextUrl, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify({ email: email })
    })
      .then(function (response) {
        return response.json().catch(function () { return {}; })
          .then(function (body) { return { ok: response.ok, code: response.status, body: body }; });
      })
      .then(function (result) {
        if (result.ok) {
          if (isApiToken) { storeToken(token); }
          render(result.body);
          return;
        }
        var reason = (result.body.error && result.body.error.message) || "Warmline answered " + result.code;
        if (result.code === 401 || result.code === 403) {
          if (isApiToken && token === storedToken()) { storeToken(null); }
          askForToken("Warmline did not accept this token (" + reason + "). Paste a valid Warmline API token.");
          return;
        }
        status(reason);
      })
      .catch(function () { status("Could not reach Warmline."); });
  }

  function start() {
    sender = senderFromOffice() || senderFromQuery();
    if (!sender) { return; }
    naaToken().then(function (token) {
      if (token) { load(sender, token, false); return; }
      var stored = storedToken();
      if (stored) { load(sender, stored, true); return; }
      askForToken("Sign-in through Outlook is not available here: paste a Warmline API token " +
        "(create one while signed in to Warmline: POST /api/v1/tokens).");
    });
  }

  if (window.Office && Office.onReady) {
    Office.onReady(function () { start(); });
  } else {
    start();
  }
})();
