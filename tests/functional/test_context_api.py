"""Contact context through the real path: sandbox consent → sync → derivation → API and sidebar.

Also: the OpenAPI document (every /api/v1 route present, every response here validates against
it) and an authorization matrix built from `app.url_map`, so a route added later is checked too.

Malformed addresses answer 200 `known: false` (`reason: not_an_address`), never 400: a sidebar
passes on whatever a header held, and an error path for that helps nobody.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from core.context import timeline_months
from core.db import transaction
from core.models import (
    AccountState,
    ConnectedAccount,
    Contact,
    Followup,
    FollowupKind,
    FollowupStatus,
)
from core.settings import Settings
from tests.functional.conftest import Browser
from tests.functional.syncing import factory_for, sync_until_idle

if TYPE_CHECKING:
    from sandbox.server import Sandbox

CONTEXT = "/api/v1/contacts/{email}/context"


# Fixtures and helpers


def _connect_and_sync(
    browser: Browser, settings: Settings, sandbox: Sandbox, mailbox: str
) -> uuid.UUID:
    sandbox.state.controls.set_quota_profile("legacy")
    status, body = browser.connect("google", mailbox)
    assert status == 302, body[:300]
    accounts = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    account_id = uuid.UUID(accounts[0]["id"])
    sync_until_idle(settings.model_copy(update={"gmail_quota_profile": "legacy"}), account_id)
    return account_id


def _contacts(settings: Settings, account_id: uuid.UUID) -> list[Contact]:
    with factory_for(settings)() as session:
        user_id = session.get(ConnectedAccount, account_id).user_id
        rows = session.scalars(
            select(Contact)
            .where(Contact.user_id == user_id, Contact.kind == "person")
            .order_by((Contact.inbound_count + Contact.outbound_count).desc(), Contact.address)
        ).all()
        session.expunge_all()
        return list(rows)


def _iso_ms(value: str | None) -> int | None:
    return None if value is None else int(dt.datetime.fromisoformat(value).timestamp() * 1000)


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class Spec:
    """The served OpenAPI document, and a small validator for the JSON Schema pydantic emits."""

    def __init__(self, client: FlaskClient) -> None:
        response = client.get("/api/openapi.json")
        assert response.status_code == 200
        self.doc: dict[str, Any] = response.get_json()

    def check(self, template: str, method: str, response: Any) -> None:
        """Assert `response` is documented for (template, method) and its body validates."""
        operation = self.doc["paths"][template][method.lower()]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, (template, method, response.status_code)
        content = documented.get("content", {}).get("application/json")
        if content is None:
            assert not response.data, (template, method)
            return
        problems = list(self._validate(response.get_json(), content["schema"], "$"))
        assert not problems, (template, method, problems[:5])

    def _validate(self, value: Any, schema: dict[str, Any], where: str) -> Any:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            yield from self._validate(value, self.doc["components"]["schemas"][name], where)
            return
        if "anyOf" in schema:
            if all(list(self._validate(value, s, where)) for s in schema["anyOf"]):
                yield f"{where}: matches none of anyOf"
            return
        if "const" in schema and value != schema["const"]:
            yield f"{where}: {value!r} != {schema['const']!r}"
        if "enum" in schema and value not in schema["enum"]:
            yield f"{where}: {value!r} not in {schema['enum']}"
        kind = schema.get("type")
        types = {
            "object": dict,
            "array": list,
            "string": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
            "null": type(None),
        }
        wrong_type = kind is not None and not isinstance(value, types[kind])
        if wrong_type or (kind in ("integer", "number") and isinstance(value, bool)):
            yield f"{where}: {value!r} is not {kind}"
            return
        if kind == "object":
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    yield f"{where}: missing {name}"
            extra = schema.get("additionalProperties", True)
            for name, item in value.items():
                if name in props:
                    yield from self._validate(item, props[name], f"{where}.{name}")
                elif extra is False:
                    yield f"{where}: undocumented field {name}"
                elif isinstance(extra, dict):
                    yield from self._validate(item, extra, f"{where}.{name}")
        if kind == "array":
            if len(value) > schema.get("maxItems", len(value)):
                yield f"{where}: too many items"
            if len(value) < schema.get("minItems", 0):
                yield f"{where}: too few items"
            for i, item in enumerate(value):
                yield from self._validate(item, schema.get("items", {}), f"{where}[{i}]")
        if kind == "string":
            if "pattern" in schema and not re.search(schema["pattern"], value):
                yield f"{where}: {value!r} does not match {schema['pattern']}"
            if schema.get("format") == "date-time":
                parsed = dt.datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    yield f"{where}: naive date-time {value!r}"
            if schema.get("format") == "uuid":
                uuid.UUID(value)
        if kind in ("integer", "number"):
            if "minimum" in schema and value < schema["minimum"]:
                yield f"{where}: {value} < {schema['minimum']}"
            if "maximum" in schema and value > schema["maximum"]:
                yield f"{where}: {value} > {schema['maximum']}"


# The context of a real correspondent


def test_context_of_a_real_correspondent(
    browser: Browser, make_mailbox, settings: Settings, sandbox: Sandbox
) -> None:
    from sandbox.truth import ground_truth

    # 300 days of history: every counted interaction falls inside the 12-month timeline.
    mailbox = make_mailbox("google", messages=300, days=300)
    status, _ = browser.connect("google", mailbox)
    assert status == 302
    # Before the first sync: "still syncing", and nobody is known yet.
    before = browser.client.get(CONTEXT.format(email="someone@example.org")).get_json()
    assert before["known"] is False
    assert before["reason"] == "no_history"
    assert before["sync"]["syncing"] is True
    page = browser.client.get("/sidebar?email=someone@example.org").get_data(as_text=True)
    assert 'data-testid="sync-progress"' in page
    assert 'data-testid="empty-state"' in page

    account_id = uuid.UUID(browser.client.get("/api/v1/accounts").get_json()["accounts"][0]["id"])
    sync_until_idle(settings.model_copy(update={"gmail_quota_profile": "legacy"}), account_id)
    spec = Spec(browser.client)
    contacts = _contacts(settings, account_id)
    assert contacts, "the sandbox mailbox should yield contacts"
    best = contacts[0]

    response = browser.client.get(CONTEXT.format(email=quote(best.address)))
    assert response.status_code == 200
    spec.check(CONTEXT, "GET", response)
    ctx = response.get_json()
    assert ctx["known"] is True
    assert ctx["address"] == best.address
    assert ctx["contact"]["display_name"] == best.display_name
    assert ctx["contact"]["kind"] == "person"
    email = ctx["email"]
    assert (email["inbound_count"], email["outbound_count"]) == (
        best.inbound_count,
        best.outbound_count,
    )
    assert email["threads_together"] == best.threads_together
    assert _iso_ms(email["last_contact_at"]) == _ms(best.last_contact_at)
    assert ctx["strength"] == best.strength
    assert ctx["strength_reasons"] == best.strength_reasons
    assert ctx["meetings"]["past_count"] == best.past_meetings
    assert ctx["last_contact_words"]
    assert ctx["follow_ups"] == []
    assert ctx["sync"]["syncing"] is False
    assert ctx["sync"]["percent"] == 100
    assert [a["email"] for a in ctx["sync"]["accounts"]] == [mailbox]

    # The sandbox's own ground truth (shares no code with Warmline).
    now = dt.datetime.now(dt.UTC)
    truth = ground_truth(sandbox.state.store, mailbox, now_ms=int(now.timestamp() * 1000))
    fact = truth["contacts"][best.address]
    assert (email["inbound_count"], email["outbound_count"]) == (
        fact["inbound_count"],
        fact["outbound_count"],
    )
    assert ctx["meetings"]["past_count"] == fact["past_meetings"]

    # Timeline: twelve months, and with 300 days of history its sums are the counts.
    assert [m["month"] for m in ctx["timeline"]] == timeline_months(now)
    for contact in contacts[:8]:
        one = browser.client.get(CONTEXT.format(email=quote(contact.address))).get_json()
        sums = {k: sum(m[k] for m in one["timeline"]) for k in ("inbound", "outbound", "meetings")}
        assert sums == {
            "inbound": contact.inbound_count,
            "outbound": contact.outbound_count,
            "meetings": contact.past_meetings,
        }, contact.address
        threads = one["recent_threads"]
        assert len(threads) >= min(10, contact.threads_together)
        times = [t["last_message_at"] for t in threads]
        assert times == sorted(times, reverse=True)
        assert all(t["message_count"] >= 1 for t in threads)

    # Unknown, malformed, own: 200 known false with the full shape.
    for raw, reason in [
        ("nobody-at-all@example.org", "no_history"),
        ("not an address", "not_an_address"),
        (mailbox.upper(), "yourself"),
    ]:
        answer = browser.client.get(CONTEXT.format(email=quote(raw)))
        assert answer.status_code == 200
        spec.check(CONTEXT, "GET", answer)
        body = answer.get_json()
        assert (body["known"], body["reason"]) == (False, reason), raw
        assert len(body["timeline"]) == 12
    # A header-style address resolves to its canonical form.
    named = browser.client.get(CONTEXT.format(email=quote(f"Some One <{best.address.upper()}>")))
    assert named.get_json()["address"] == best.address

    # Batch: deduplicated by canonical address, input order kept.
    csrf = {"X-CSRF-Token": browser.csrf()}
    emails = [best.address, best.address.upper(), "nobody@example.org", contacts[-1].address]
    batch = browser.client.post("/api/v1/contexts", json={"emails": emails}, headers=csrf)
    assert batch.status_code == 200, batch.get_data(as_text=True)
    spec.check("/api/v1/contexts", "POST", batch)
    got = batch.get_json()["contexts"]
    assert [c["address"] for c in got] == [best.address, "nobody@example.org", contacts[-1].address]
    assert got[0]["email"] == ctx["email"]
    for body, words in [
        ({"emails": [f"p{i}@example.org" for i in range(51)]}, "at most 50"),
        ({"emails": ["a@example.org", 7]}, "emails.1"),
        ({"emails": "a@example.org"}, "emails"),
        ({"addresses": []}, "emails"),
        ([1, 2], "JSON object"),
    ]:
        bad = browser.client.post("/api/v1/contexts", json=body, headers=csrf)
        assert bad.status_code == 400, body
        spec.check("/api/v1/contexts", "POST", bad)
        assert words in bad.get_json()["error"]["message"], bad.get_json()
    not_json = browser.client.post("/api/v1/contexts", data="emails", headers=csrf)
    assert not_json.status_code == 400
    no_csrf = browser.client.post("/api/v1/contexts", json={"emails": []})
    assert no_csrf.status_code == 403

    # The sidebar page shows the same numbers, with stable hooks for the browser test.
    html = browser.client.get(f"/sidebar?email={quote(best.address)}")
    assert html.status_code == 200
    page = html.get_data(as_text=True)
    assert f'data-testid="strength" data-value="{best.strength}"' in page
    assert f'data-testid="inbound-count">{best.inbound_count}<' in page
    assert 'data-testid="timeline-chart"' in page
    assert "<script>" not in page
    assert " style=" not in page  # CSP: no inline styles
    assert 'data-testid="reconnect-banner"' not in page
    assert "default-src 'self'" in html.headers["Content-Security-Policy"]

    # Reconnect: an account that lost its grant shows a banner and says so in the JSON.
    with transaction(factory_for(settings)) as session:
        session.execute(
            update(ConnectedAccount)
            .where(ConnectedAccount.id == account_id)
            .values(state=AccountState.NEEDS_REAUTH)
        )
    stale = browser.client.get(CONTEXT.format(email=quote(best.address)))
    spec.check(CONTEXT, "GET", stale)
    assert stale.get_json()["sync"]["needs_reauth"] is True
    page = browser.client.get(f"/sidebar?email={quote(best.address)}").get_data(as_text=True)
    assert 'data-testid="reconnect-banner"' in page

    # Existing v1 routes validate against the document too.
    for template in ("/api/v1/me", "/api/v1/accounts", "/api/v1/tokens", "/healthz"):
        spec.check(template, "GET", browser.client.get(template))
    spec.check(
        "/api/v1/accounts/{account_id}", "GET", browser.client.get(f"/api/v1/accounts/{account_id}")
    )
    created = browser.client.post("/api/v1/tokens", json={"name": "cli"}, headers=csrf)
    spec.check("/api/v1/tokens", "POST", created)


# The document


def test_openapi_document_covers_the_api(app: Flask) -> None:
    client = app.test_client()
    spec = Spec(client)
    doc = spec.doc
    assert doc["openapi"].startswith("3.1")
    assert {"title", "version"} <= set(doc["info"])
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/v1") or rule.rule in ("/healthz", "/readyz")):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (path, method)
            assert op["responses"], (path, method)
            names = re.findall(r"{(\w+)}", path)
            assert sorted(p["name"] for p in op["parameters"] if p["in"] == "path") == sorted(names)
            for response in op["responses"].values():
                ref = response.get("content", {}).get("application/json", {}).get("schema", {})
                if "$ref" in ref:
                    assert ref["$ref"].rsplit("/", 1)[1] in doc["components"]["schemas"]
    request_body = doc["paths"]["/api/v1/contexts"]["post"]["requestBody"]
    assert request_body["content"]["application/json"]["schema"]["$ref"].endswith("ContextsRequest")
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    page = docs.get_data(as_text=True)
    assert "api_docs.js" in page
    assert "<script>" not in page
    assert "http" not in re.sub(r'href="[^"]*"', "", page).replace("http-equiv", "")


# Authorization matrix


def _fill(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values[m.group(1)], rule)


def _guarded_rules(app: Flask) -> list[tuple[str, str]]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1") or rule.rule == "/sidebar":
            rules.extend((rule.rule, m) for m in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return sorted(rules)


def test_authorization_matrix(
    app: Flask,
    browser: Browser,
    other_browser: Browser,
    make_mailbox,
    settings: Settings,
    sandbox: Sandbox,
) -> None:
    """User B (cookie or token) never sees user A's data; no credentials → 401 / login."""
    a_mailbox = make_mailbox("google", messages=120)
    a_account = _connect_and_sync(browser, settings, sandbox, a_mailbox)
    a_contact = _contacts(settings, a_account)[0]
    a_token = browser.client.post(
        "/api/v1/tokens", json={"name": "a"}, headers={"X-CSRF-Token": browser.csrf()}
    ).get_json()
    b_mailbox = make_mailbox("google", messages=5)
    status, _ = other_browser.connect("google", b_mailbox)
    assert status == 302
    b_token = other_browser.client.post(
        "/api/v1/tokens", json={"name": "b"}, headers={"X-CSRF-Token": other_browser.csrf()}
    ).get_json()["token"]
    b_bearer = app.test_client()
    b_headers = {"Authorization": f"Bearer {b_token}"}
    anonymous = app.test_client()

    with transaction(factory_for(settings)) as session:
        a_followup = Followup(
            user_id=a_contact.user_id,
            address=a_contact.address,
            kind=FollowupKind.WAITING_ON_YOU,
            cause_key="in:1",
            reason="A's secret reason",
            due_at=dt.datetime.now(dt.UTC),
        )
        session.add(a_followup)
        session.flush()
        a_followup_id = a_followup.id
    values = {
        "email": quote(a_contact.address),
        "account_id": str(a_account),
        "token_id": a_token["id"],
        "followup_id": str(a_followup_id),
    }
    secrets = {
        a_contact.address,
        a_mailbox,
        str(a_account),
        a_token["id"],
        a_token["prefix"],
        "A's secret reason",
    }
    rules = _guarded_rules(app)
    assert ("/api/v1/contacts/<path:email>/context", "GET") in rules
    assert ("/api/v1/contexts", "POST") in rules
    assert ("/sidebar", "GET") in rules
    for rule, method in rules:
        url = _fill(rule, values)
        if rule == "/sidebar":
            url += f"?email={values['email']}"
        body = {"emails": [a_contact.address]} if rule == "/api/v1/contexts" else None
        if rule == "/api/v1/tokens" and method == "POST":
            body = {"name": "probe"}
        if rule == "/api/v1/preferences" and method == "PATCH":
            body = {"auto_schedule": False}
        if rule.endswith("/snooze"):
            body = {"until": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()}

        # No credentials at all.
        answer = anonymous.open(url, method=method, json=body)
        if rule == "/sidebar":
            assert answer.status_code == 302, rule
            assert answer.headers["Location"].endswith("/login")
        else:
            assert answer.status_code == 401, (rule, method, answer.status_code)
            assert answer.get_json()["error"]["status"] == "unauthorized"

        # User B: by cookie (with CSRF, as their own page would send) and by API token.
        if (rule, method) == ("/api/v1/me", "DELETE"):
            continue  # would delete B; it is scoped to the caller by construction
        for client, headers in (
            (other_browser.client, {"X-CSRF-Token": other_browser.csrf()}),
            (b_bearer, b_headers),
        ):
            answer = client.open(url, method=method, json=body, headers=headers)
            text = answer.get_data(as_text=True)
            assert answer.status_code in (200, 201, 204, 404), (rule, method, answer.status_code)
            if "/contacts/" in rule or rule in ("/api/v1/contexts", "/sidebar"):
                assert answer.status_code == 200, (rule, method)
                if rule == "/sidebar":
                    assert 'data-known="false"' in text
                    assert 'data-testid="strength"' not in text
                else:
                    json_body = answer.get_json()
                    contexts = json_body.get("contexts", [json_body])
                    assert all(c["known"] is False for c in contexts), (rule, contexts)
                    assert all(c["email"]["inbound_count"] == 0 for c in contexts)
                # The address B asked about is echoed back; nothing else of A's may be.
                leaked = {s for s in secrets - {a_contact.address} if s in text}
            else:
                leaked = {s for s in secrets if s in text}
                if "<uuid:" in rule or "<int:" in rule:
                    assert answer.status_code == 404, (rule, method)
            assert not leaked, (rule, method, leaked)

    # Nothing B did touched A: A's account, token, contact and follow-up are still there.
    with factory_for(settings)() as session:
        assert session.get(Followup, a_followup_id).status is FollowupStatus.OPEN
    assert browser.client.get(f"/api/v1/accounts/{a_account}").status_code == 200
    assert browser.client.get(CONTEXT.format(email=values["email"])).get_json()["known"] is True
    a_bearer = {"Authorization": f"Bearer {a_token['token']}"}
    assert anonymous.get("/api/v1/me", headers=a_bearer).status_code == 200


@pytest.mark.parametrize("path", ["/sidebar", "/sidebar?email=x@example.org", "/api/docs"])
def test_pages_are_csp_clean(browser: Browser, make_mailbox, path: str) -> None:
    # Signed in, nothing synced yet: pages render, with no inline script or style.
    status, _ = browser.connect("google", make_mailbox("google", messages=1))
    assert status == 302
    response = browser.client.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>" not in page
    assert " style=" not in page
    assert " on" + "click=" not in page
