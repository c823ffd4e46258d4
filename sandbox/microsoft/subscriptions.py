"""Graph change-notification subscriptions: ``/v1.0/subscriptions``.

https://learn.microsoft.com/graph/api/subscription-post-subscriptions and
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks (PROVIDERS.md §4):

- On create, Graph POSTs ``{notificationUrl}?validationToken=<opaque, URL-encoded>`` (and the
  same for ``lifecycleNotificationUrl``) and expects, within 10 s, 200 with the decoded token as
  the ``text/plain`` body; otherwise the create fails with 400 ``ValidationError``
  ("Subscription validation request failed. ...").
- ``expirationDateTime`` at most 10,080 minutes ahead for Outlook messages/events
  (https://learn.microsoft.com/graph/api/resources/subscription#subscription-lifetime);
  ``clientState`` at most 128 characters; ``changeType`` a comma list of
  created/updated/deleted.
- ``notificationUrl`` must be HTTPS. Sandbox concession: plain ``http`` is accepted for loopback
  hosts (``state.config["graph_allow_http_loopback_webhooks"]``, default True) so a test can run
  a tiny HTTP receiver.
- Renewal is a PATCH of ``expirationDateTime`` (no new handshake); DELETE answers 204.

Gap: the sandbox does not deliver change notifications yet (creation, renewal and the handshake
only).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Response, request

from sandbox.errors import GraphError
from sandbox.microsoft.common import now_ms
from sandbox.microsoft.graphbase import (
    CAL_READ,
    GRAPH,
    MAIL_READ_BASIC,
    Caller,
    bp,
    context_url,
    graph_call,
    json_response,
    parse_graph_datetime,
)
from sandbox.state import get_state

MAX_MINUTES = 10_080
MAX_CLIENT_STATE = 128
HANDSHAKE_TIMEOUT_S = 10.0
_CHANGE_TYPES = {"created", "updated", "deleted"}
_MAIL = re.compile(
    r"^(me|users/[^/]+)/(messages|mailfolders(\('[^']+'\)|/[^/]+)/messages)$", re.IGNORECASE
)
_EVENTS = re.compile(
    r"^(me|users/[^/]+)/(events|calendars?(\('[^']+'\)|/[^/]+)?/events)$", re.IGNORECASE
)


def _invalid(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


def _permissions_for(resource: str) -> tuple[str, ...]:
    path = resource.strip("/")
    if _MAIL.match(path):
        return MAIL_READ_BASIC
    if _EVENTS.match(path):
        return CAL_READ
    raise _invalid(f"Resource '{resource}' is not supported for subscriptions in the sandbox.")


def _expiry(raw: Any) -> int:
    if not raw:
        raise _invalid("expirationDateTime is required.")
    moment = parse_graph_datetime(str(raw), "UTC")
    ms = int(moment.timestamp() * 1000)
    if ms <= now_ms():
        raise _invalid("Subscription expiration time must be in the future.")
    if ms > now_ms() + MAX_MINUTES * 60_000:
        raise _invalid(f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.")
    return ms


def _check_url(url: Any, field: str) -> str:
    parts = urlsplit(str(url or ""))
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    allow_http = bool(get_state().config.get("graph_allow_http_loopback_webhooks", True))
    if parts.scheme == "https" or (parts.scheme == "http" and loopback and allow_http):
        return str(url)
    raise _invalid(f"The {field} must be an HTTPS URL.")


def _handshake(url: str) -> None:
    """Run Graph's validation handshake against a subscriber URL; raise 400 when it fails."""
    token = (
        "Validation: Testing client application reachability for subscription Request-Id: "
        f"{uuid.uuid4()}"
    )
    target = url + ("&" if urlsplit(url).query else "?") + urlencode({"validationToken": token})
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify (PROVIDERS.md §5)
    verify = get_state().config.get("graph_notification_verify", True)
    try:
        answer = session.post(
            target,
            data=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=HANDSHAKE_TIMEOUT_S,
            verify=verify,
        )
    except requests.Timeout:
        raise GraphError(
            400, "ValidationError", "Subscription validation request timeout."
        ) from None
    except requests.RequestException:
        raise GraphError(
            400,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
        ) from None
    finally:
        session.close()
    if answer.status_code != 200:
        raise GraphError(
            400,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with 200 "
            "OK to validation request.",
        )
    if answer.text != token:
        raise GraphError(
            400,
            "ValidationError",
            "Subscription validation request failed. Response must exactly match validationToken "
            "query parameter.",
        )


def _resource(sub: dict[str, Any]) -> dict[str, Any]:
    body = dict(sub["body"])
    body["expirationDateTime"] = (
        dt.datetime.fromtimestamp(sub["expiration_ms"] / 1000, tz=dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        )
        + "0Z"
    )
    return body


@bp.post(f"{GRAPH}/subscriptions")
def create_subscription() -> Response:
    """Create a subscription after a successful validation handshake."""
    try:
        payload = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    resource = str(payload.get("resource") or "")
    with graph_call("subscriptions.create") as caller:
        # Creating a subscription needs the permission that reads the resource.
        if not caller.has_any(_permissions_for(resource)):
            raise GraphError.access_denied()
        change_type = str(payload.get("changeType") or "")
        kinds = [c.strip() for c in change_type.split(",") if c.strip()]
        if not kinds or any(k not in _CHANGE_TYPES for k in kinds):
            raise _invalid(f"Invalid changeType '{change_type}'.")
        client_state = payload.get("clientState")
        if client_state is not None and len(str(client_state)) > MAX_CLIENT_STATE:
            raise _invalid(f"The clientState must not exceed {MAX_CLIENT_STATE} characters.")
        expiration_ms = _expiry(payload.get("expirationDateTime"))
        url = _check_url(payload.get("notificationUrl"), "notificationUrl")
        lifecycle = payload.get("lifecycleNotificationUrl")
        if lifecycle:
            lifecycle = _check_url(lifecycle, "lifecycleNotificationUrl")
        _handshake(url)
        if lifecycle and lifecycle != url:
            _handshake(lifecycle)
        sub_id = str(uuid.uuid4())
        body = {
            "id": sub_id,
            "resource": resource,
            "applicationId": caller.claims.get("appid"),
            "changeType": ",".join(kinds),
            "clientState": client_state,
            "notificationUrl": url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": lifecycle or None,
            "expirationDateTime": None,
            "creatorId": caller.oid,
            "includeResourceData": bool(payload.get("includeResourceData", False)),
            "latestSupportedTlsVersion": payload.get("latestSupportedTlsVersion") or "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }
        sub = get_state().store.create_subscription(
            caller.email,
            provider="microsoft",
            resource=resource,
            notification_url=url,
            client_state=client_state,
            expiration_ms=expiration_ms,
            body={**body, "secret": secrets.token_hex(8)},
            id=sub_id,
        )
        out = {"@odata.context": context_url("subscriptions/$entity"), **_public(sub)}
        return json_response(out, 201)


def _public(sub: dict[str, Any]) -> dict[str, Any]:
    body = _resource(sub)
    body.pop("secret", None)
    return body


def _owned(caller: Caller, sub_id: str) -> dict[str, Any]:
    sub = get_state().store.get_subscription(sub_id)
    if sub is None or sub["mailbox"] != caller.email or sub["provider"] != "microsoft":
        raise GraphError(404, "ResourceNotFound", f"The object '{sub_id}' was not found.")
    return sub


@bp.get(f"{GRAPH}/subscriptions")
def list_subscriptions() -> Response:
    """List the caller's subscriptions."""
    with graph_call("subscriptions.list") as caller:
        subs = get_state().store.list_subscriptions(caller.email, provider="microsoft")
        body = {"@odata.context": context_url("subscriptions"), "value": [_public(s) for s in subs]}
        return json_response(body)


@bp.get(f"{GRAPH}/subscriptions/<sub_id>")
def get_subscription(sub_id: str) -> Response:
    """Get one subscription."""
    with graph_call("subscriptions.get") as caller:
        sub = _owned(caller, sub_id)
        return json_response(
            {"@odata.context": context_url("subscriptions/$entity"), **_public(sub)}
        )


@bp.patch(f"{GRAPH}/subscriptions/<sub_id>")
def renew_subscription(sub_id: str) -> Response:
    """Renew a subscription (new expirationDateTime)."""
    with graph_call("subscriptions.update") as caller:
        _owned(caller, sub_id)
        try:
            payload = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
        expiration_ms = _expiry(payload.get("expirationDateTime"))
        sub = get_state().store.update_subscription(sub_id, expiration_ms=expiration_ms)
        assert sub is not None
        return json_response(
            {"@odata.context": context_url("subscriptions/$entity"), **_public(sub)}
        )


@bp.delete(f"{GRAPH}/subscriptions/<sub_id>")
def delete_subscription(sub_id: str) -> Response:
    """Delete a subscription."""
    with graph_call("subscriptions.delete") as caller:
        _owned(caller, sub_id)
        get_state().store.delete_subscription(sub_id)
        return Response(status=204)
