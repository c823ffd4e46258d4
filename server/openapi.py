"""The OpenAPI 3.1 document of Warmline's API, generated from the code that serves it.

`document(app)` walks `app.url_map` and describes every route whose endpoint has an entry in
`OPERATIONS` (summary, parameters, request and response models from server/schemas.py). Paths,
path parameters and methods come from the routing table itself, bodies from the pydantic models
the views validate and serialize with, so the document cannot describe a route that does not
exist, and tests/functional/test_context_api.py fails when an /api/v1 route has no entry here
or answers something its schema does not allow.

Why no library: flask-openapi3 / spectree would rewrite every existing view's signature, and
apispec still needs this table; pydantic already emits JSON Schema 2020-12, which OpenAPI 3.1
uses as is. The generator is this file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server import schemas
from server.converters import ROW_ID_MAX

OPENAPI_VERSION = "3.1.0"
_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
    "rowid": {"type": "integer", "minimum": 1, "maximum": ROW_ID_MAX},
    "float": {"type": "number"},
    "path": {"type": "string"},
    "string": {"type": "string"},
}
_IGNORED_METHODS = {"HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """What the routing table does not know about a view."""

    summary: str
    tag: str
    response: type[BaseModel] | None  # None: 204 No Content
    status: int = 200
    request: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: bool = True
    description: str = ""
    query: tuple[Param, ...] = ()
    path_params: dict[str, str] = field(default_factory=dict)  # name → description


_AUTH_ERRORS = (401,)
_WRITE_ERRORS = (401, 403)  # 403: cookie-authenticated write without its CSRF header

# Keyed by Flask endpoint ("blueprint.view"): the views stay unaware of their documentation.
OPERATIONS: dict[str, Operation] = {
    "health.healthz": Operation(
        "Liveness: the process answers", "health", schemas.Health, auth=False
    ),
    "health.readyz": Operation(
        "Readiness: database migrated and broker reachable",
        "health",
        schemas.Ready,
        auth=False,
        description="Answers 503 with the same body when a check fails.",
        query=(Param("deep", "`1`: also round-trip a ping task through a worker."),),
    ),
    "api.me": Operation("The signed-in user", "me", schemas.Me, errors=_AUTH_ERRORS),
    "api.delete_me": Operation(
        "Delete the user and everything held for them",
        "me",
        None,
        status=204,
        errors=_WRITE_ERRORS,
        description="Revokes every grant at the providers first.",
    ),
    "api.list_accounts": Operation(
        "The user's connected accounts", "accounts", schemas.AccountList, errors=_AUTH_ERRORS
    ),
    "api.get_account": Operation(
        "One connected account",
        "accounts",
        schemas.Account,
        errors=(401, 404),
        path_params={"account_id": "Id of one of the user's accounts."},
    ),
    "api.disconnect_account": Operation(
        "Disconnect an account: revoke at the provider, delete its data",
        "accounts",
        schemas.Disconnected,
        errors=(*_WRITE_ERRORS, 404),
        path_params={"account_id": "Id of one of the user's accounts."},
    ),
    "api.list_tokens": Operation(
        "The user's API tokens", "tokens", schemas.TokenList, errors=_AUTH_ERRORS
    ),
    "api.create_token": Operation(
        "Create an API token (the secret is shown once)",
        "tokens",
        schemas.TokenCreated,
        status=201,
        request=schemas.TokenCreate,
        errors=(400, *_WRITE_ERRORS),
    ),
    "api.revoke_token": Operation(
        "Revoke an API token",
        "tokens",
        None,
        status=204,
        errors=(*_WRITE_ERRORS, 404),
        path_params={"token_id": "Id of one of the user's tokens."},
    ),
    "context_api.contact_context": Operation(
        "Who this person is to me",
        "context",
        schemas.ContactContextWithSync,
        errors=_AUTH_ERRORS,
        description=(
            "Always 200 for a signed-in user: an unknown, malformed or own address answers "
            "`known: false` with a `reason` and the same shape (zero counts, empty lists)."
        ),
        path_params={"email": "An address, as written in a header (`Ann <ann@x.org>` works)."},
    ),
    "context_api.contexts": Operation(
        "Context of every participant of a message (batch)",
        "context",
        schemas.ContextsResponse,
        request=schemas.ContextsRequest,
        errors=(400, *_WRITE_ERRORS),
        description=(
            "At most 50 addresses; duplicates (by canonical address) answer once, in input "
            "order. Read-only, but a POST: cookie-authenticated calls send `X-CSRF-Token`."
        ),
    ),
    "followups_api.list_followups": Operation(
        "The user's follow-up suggestions",
        "follow-ups",
        schemas.FollowUpList,
        errors=(400, 401),
        query=(
            Param(
                "status",
                "`live` (default: open, accepted, snoozed), `all`, or one status.",
            ),
        ),
    ),
    "followups_api.accept_followup": Operation(
        "Accept a suggestion: it goes into the calendar, in a free slot",
        "follow-ups",
        schemas.FollowUp,
        request=schemas.AcceptRequest,
        errors=(400, *_WRITE_ERRORS, 404, 409),
        path_params={"followup_id": "Id of one of the user's follow-ups."},
    ),
    "followups_api.done_followup": Operation(
        "Mark a suggestion done (never again for the same cause)",
        "follow-ups",
        schemas.FollowUp,
        errors=(*_WRITE_ERRORS, 404, 409),
        path_params={"followup_id": "Id of one of the user's follow-ups."},
    ),
    "followups_api.dismiss_followup": Operation(
        "Dismiss a suggestion (never again for the same cause)",
        "follow-ups",
        schemas.FollowUp,
        errors=(*_WRITE_ERRORS, 404, 409),
        path_params={"followup_id": "Id of one of the user's follow-ups."},
    ),
    "followups_api.snooze_followup": Operation(
        "Snooze a suggestion until a date",
        "follow-ups",
        schemas.FollowUp,
        request=schemas.SnoozeRequest,
        errors=(400, *_WRITE_ERRORS, 404, 409),
        path_params={"followup_id": "Id of one of the user's follow-ups."},
    ),
    "followups_api.get_preferences": Operation(
        "Follow-up preferences", "follow-ups", schemas.Preferences, errors=_AUTH_ERRORS
    ),
    "followups_api.update_preferences": Operation(
        "Change follow-up preferences (only the fields sent)",
        "follow-ups",
        schemas.Preferences,
        request=schemas.PreferencesUpdate,
        errors=(400, *_WRITE_ERRORS),
    ),
    "followups_api.create_calendar_feed": Operation(
        "Make the secret ICS feed URL (revokes any earlier one)",
        "follow-ups",
        schemas.CalendarFeed,
        status=201,
        errors=_WRITE_ERRORS,
    ),
    "followups_api.revoke_calendar_feed": Operation(
        "Revoke the ICS feed URL", "follow-ups", None, status=204, errors=_WRITE_ERRORS
    ),
    "relationships_api.list_relationships": Operation(
        "Everyone the user has a relationship with, strongest first",
        "relationships",
        schemas.RelationshipPage,
        errors=(400, 401),
        description=(
            "One row per person (their strongest address; counts over all their addresses), "
            "people only: no lists or automated senders. Keyset-paged: pass `next_cursor` back "
            "as `cursor`. 400 names a bad `filter`, `cursor` or `limit`."
        ),
        query=(
            Param(
                "filter",
                "`going_quiet` / `waiting_on_you`: an open suggestion of that kind; "
                "`never_met`: no meeting past or planned; `new_this_month`: first contact on "
                "or after the 1st, in the user's time zone.",
                {
                    "type": "string",
                    "enum": ["going_quiet", "waiting_on_you", "never_met", "new_this_month"],
                },
            ),
            Param(
                "q",
                "Case-insensitive prefix of an address, the name or a word of it.",
                {"type": "string", "maxLength": 320},
            ),
            Param("cursor", "`next_cursor` of the previous page."),
            Param(
                "limit",
                "Rows per page.",
                {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
            ),
        ),
    ),
    "context_api.openapi_json": Operation(
        "This document", "meta", None, auth=False, description="OpenAPI 3.1, generated."
    ),
}


def document(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route of `app` that has an `OPERATIONS` entry."""
    models = _models()
    keys = [(m, mode) for m, modes in models.items() for mode in sorted(modes)]
    refs, defs = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        operation = OPERATIONS.get(rule.endpoint)
        if operation is None:
            continue
        path, params = _path(rule.rule, operation)
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, operation, params, refs
            )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Warmline API",
            "version": "1",
            "description": (
                "Who each of your contacts is to you, from your mail and calendar metadata. "
                "Authenticate with `Authorization: Bearer wl_...` (create a token with "
                "POST /api/v1/tokens) or the browser session cookie; cookie-authenticated "
                "writes also send `X-CSRF-Token`. Another user's ids answer 404."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "wl_..."},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "warmline_session"},
            },
        },
    }


def _models() -> dict[type[BaseModel], set[str]]:
    found: dict[type[BaseModel], set[str]] = {schemas.Error: {"serialization"}}
    for op in OPERATIONS.values():
        if op.response is not None:
            found.setdefault(op.response, set()).add("serialization")
        if op.request is not None:
            found.setdefault(op.request, set()).add("validation")
    return found


def _path(rule: str, operation: Operation) -> tuple[str, list[dict[str, Any]]]:
    params: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": operation.path_params.get(name, ""),
                "schema": _CONVERTER_SCHEMAS.get(match["converter"] or "string", {}),
            }
        )
        return "{" + name + "}"

    return _ARGUMENT.sub(replace, rule), params


def _operation(
    endpoint: str,
    op: Operation,
    path_params: list[dict[str, Any]],
    refs: dict[tuple[type[BaseModel], str], dict[str, Any]],
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if op.response is None:
        responses[str(op.status)] = {"description": "No content" if op.status == 204 else "OK"}
        if endpoint == "context_api.openapi_json":
            responses["200"]["content"] = {"application/json": {"schema": {"type": "object"}}}
    else:
        responses[str(op.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
        }
    error_ref = refs[(schemas.Error, "serialization")]
    for code in op.errors:
        responses[str(code)] = {
            "description": _ERROR_WORDS.get(code, "Error"),
            "content": {"application/json": {"schema": error_ref}},
        }
    if endpoint == "health.readyz":
        responses["503"] = responses["200"] | {"description": "Not ready"}
    result: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [
            *path_params,
            *(
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in op.query
            ),
        ],
        "responses": responses,
        "security": [{"bearerAuth": []}, {"cookieAuth": []}] if op.auth else [],
    }
    if op.description:
        result["description"] = op.description
    if op.request is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.request, "validation")]}},
        }
    return result


_ERROR_WORDS = {
    400: "Malformed request body or query parameter",
    401: "Not signed in and no valid API token",
    403: "Cookie-authenticated write without a valid X-CSRF-Token",
    404: "No such row among the user's own",
}
