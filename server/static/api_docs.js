// /api/docs: render the operations of /api/openapi.json and let a person try GET calls.
// Our own small page instead of a CDN-hosted viewer: it works offline and under CSP
// default-src 'self'. Everything is built with DOM calls and textContent (no innerHTML).
(function () {
  "use strict";
  var main = document.getElementById("docs");
  var list = document.getElementById("operations");
  var tokenInput = document.getElementById("docs-token");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function schemaName(ref) { return ref ? ref.split("/").pop() : ""; }

  function responseSummary(op) {
    return Object.keys(op.responses || {}).map(function (code) {
      var content = op.responses[code].content || {};
      var schema = (content["application/json"] || {}).schema || {};
      var name = schemaName(schema.$ref);
      return code + (name ? " " + name : "") + " — " + op.responses[code].description;
    }).join("\n");
  }

  function tryForm(path, op, index) {
    var params = (op.parameters || []);
    var form = el("form", { "aria-label": "Try " + path });
    var inputs = {};
    params.forEach(function (p, i) {
      var id = "op" + index + "-p" + i;
      var input = el("input", { id: id, name: p.name, placeholder: p.schema && p.schema.format || p.in });
      if (p.required) { input.required = true; }
      inputs[p.name] = { input: input, where: p.in };
      form.appendChild(el("label", { for: id }, [document.createTextNode(p.name + " (" + p.in + ")"), input]));
    });
    var out = el("pre", { "aria-live": "polite", "aria-label": "Response" });
    form.appendChild(el("button", { type: "submit", text: "Send GET" }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var url = path;
      var query = new URLSearchParams();
      Object.keys(inputs).forEach(function (name) {
        var value = inputs[name].input.value;
        if (inputs[name].where === "path") {
          url = url.replace("{" + name + "}", encodeURIComponent(value));
        } else if (value) {
          query.append(name, value);
        }
      });
      if (String(query)) { url += "?" + query; }
      var headers = { Accept: "application/json" };
      if (tokenInput.value) { headers.Authorization = "Bearer " + tokenInput.value.trim(); }
      out.textContent = "GET " + url + " …";
      fetch(url, { credentials: "same-origin", headers: headers })
        .then(function (r) {
          return r.text().then(function (body) {
            var pretty = body;
            try { pretty = JSON.stringify(JSON.parse(body), null, 2); } catch (e) { /* not JSON */ }
            out.textContent = r.status + " " + r.statusText + "\n\n" + pretty;
          });
        })
        .catch(function (e) { out.textContent = "failed: " + e; });
    });
    return el("div", {}, [form, out]);
  }

  function render(spec) {
    document.getElementById("docs-description").textContent = spec.info.description;
    var index = 0;
    Object.keys(spec.paths).forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        var op = spec.paths[path][method];
        index += 1;
        var section = el("section", { class: "op", id: op.operationId, "data-method": method, "data-path": path }, [
          el("h3", {}, [
            el("span", { class: "method " + method, text: method }),
            el("code", { class: "path", text: path }),
            el("span", { text: op.summary }),
            el("span", { class: "tag", text: (op.tags || []).join(", ") + (op.security && op.security.length ? "" : " · public") })
          ]),
          op.description ? el("p", { text: op.description }) : null,
          op.requestBody ? el("p", { text: "Body: " + schemaName(op.requestBody.content["application/json"].schema.$ref) }) : null,
          el("details", {}, [el("summary", { text: "Responses" }), el("pre", { text: responseSummary(op) })]),
          method === "get" ? tryForm(path, op, index) : null
        ]);
        list.appendChild(section);
      });
    });
    var schemas = el("details", {}, [
      el("summary", { text: "Schemas" }),
      el("pre", { text: JSON.stringify(spec.components.schemas, null, 2) })
    ]);
    list.appendChild(el("section", { class: "op" }, [el("h2", { text: "Schemas" }), schemas]));
  }

  fetch(main.dataset.specUrl, { headers: { Accept: "application/json" } })
    .then(function (r) { return r.json(); })
    .then(render)
    .catch(function (e) { document.getElementById("docs-description").textContent = "Could not load the document: " + e; });
})();
