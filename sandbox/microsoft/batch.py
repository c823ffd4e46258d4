"""Graph JSON batching: ``POST /v1.0/$batch``.

https://learn.microsoft.com/graph/json-batching (PROVIDERS.md §4):

- ``{"requests": [{id, method, url (relative to /v1.0), headers?, body?, dependsOn?}]}``, at most
  20 requests, else the whole batch is refused with 400.
- A body needs a ``Content-Type`` header in the item; JSON bodies come back as JSON, anything
  else base64-encoded.
- The envelope answers 200; every item carries its own status, so a throttled item is a 429
  with its own ``Retry-After`` header while its neighbours succeed. Items are counted against
  the mailbox's request window one by one; Graph runs them at most 4 at a time, so they do not
  trip the concurrency cap (``controls.batch``).
- An item whose ``dependsOn`` target failed answers 424 Failed Dependency.
- The items reuse the envelope's ``Authorization`` header; each one goes through the same views
  (and the same ``controls.call``) as a direct request.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Response, current_app, request

from sandbox.errors import GraphError
from sandbox.microsoft.graphbase import GRAPH, authenticate, bp, json_response
from sandbox.state import get_state

MAX_REQUESTS = 20
_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
_KEEP_HEADERS = ("Content-Type", "Retry-After", "Location", "Preference-Applied", "ETag")


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


@bp.post(f"{GRAPH}/$batch")
def batch() -> Response:
    """Run up to 20 Graph requests and answer them in one JSON envelope."""
    caller = authenticate()
    try:
        payload = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise _bad("Invalid batch payload format.") from None
    items = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise _bad("Invalid batch payload format.")
    if len(items) > MAX_REQUESTS:
        # [?] message wording; the limit and the 400 are documented (json-batching, "Limitations").
        raise _bad(f"Maximum number of requests in a batch exceeds the limit of {MAX_REQUESTS}.")
    by_id: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("id") or not item.get("url"):
            raise _bad("Invalid batch payload format.")
        if str(item.get("method", "")).upper() not in _METHODS:
            raise _bad(f"Invalid method '{item.get('method')}' in batch request.")
        if str(item["id"]) in by_id:
            raise _bad("Request Id must be unique.")
        by_id[str(item["id"])] = item
    for item in items:
        for dep in item.get("dependsOn") or []:
            if str(dep) not in by_id:
                raise _bad(f"Request '{item['id']}' depends on unknown request '{dep}'.")

    results: dict[str, dict[str, Any]] = {}
    state = get_state()
    with state.controls.batch(service="graph", mailbox=caller.email, parts=len(items)):
        for item in items:
            _run(str(item["id"]), by_id, results, set())
    # Graph does not promise any order; answer in request order.
    return json_response({"responses": [results[str(i["id"])] for i in items]})


def _run(
    item_id: str,
    by_id: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    visiting: set[str],
) -> dict[str, Any]:
    if item_id in results:
        return results[item_id]
    if item_id in visiting:
        raise _bad("Circular dependency in batch request.")
    visiting.add(item_id)
    item = by_id[item_id]
    for dep in item.get("dependsOn") or []:
        if _run(str(dep), by_id, results, visiting)["status"] >= 400:
            results[item_id] = _failed_dependency(item_id)
            return results[item_id]
    results[item_id] = _execute(item_id, item)
    return results[item_id]


def _failed_dependency(item_id: str) -> dict[str, Any]:
    error = GraphError(424, "FailedDependency", "The request depends on a request that failed.")
    return {
        "id": item_id,
        "status": 424,
        "headers": {"Content-Type": "application/json"},
        "body": error.to_dict(),
    }


def _execute(item_id: str, item: dict[str, Any]) -> dict[str, Any]:
    url = str(item["url"])
    if url.lower().startswith(("http://", "https://")):
        return _item_error(item_id, _bad("The batch request URL must be relative."))
    path = url if url.startswith("/") else "/" + url
    if not path.startswith(GRAPH + "/"):
        path = GRAPH + path
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    data: bytes | None = None
    if "body" in item and item["body"] is not None:
        if not any(k.lower() == "content-type" for k in headers):
            return _item_error(
                item_id, _bad("Content-Type header must be specified for a request with a body.")
            )
        body = item["body"]
        data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    auth = request.headers.get("Authorization")
    if auth:
        headers["Authorization"] = auth
    client = current_app.test_client()
    response = client.open(
        path,
        method=str(item["method"]).upper(),
        headers=headers,
        data=data,
        base_url=request.host_url,
    )
    out_headers = {k: v for k, v in response.headers.items() if k in _KEEP_HEADERS}
    result: dict[str, Any] = {"id": item_id, "status": response.status_code, "headers": out_headers}
    raw = response.get_data()
    if raw:
        if "json" in response.headers.get("Content-Type", ""):
            result["body"] = json.loads(raw)
        else:
            result["body"] = base64.b64encode(raw).decode("ascii")
    return result


def _item_error(item_id: str, error: GraphError) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": error.status,
        "headers": {"Content-Type": "application/json"},
        "body": error.to_dict(),
    }
