"""Google API batch endpoint (``multipart/mixed``), shared by Gmail and Calendar.

``handle_batch(app, service=..., max_parts=..., path_prefixes=...)`` takes the current Flask
request, splits it into its ``application/http`` parts and dispatches each inner request through
the same WSGI app, so every part is authenticated, scope-checked and quota-checked on its own
exactly like a direct call; it then answers one ``multipart/mixed`` document.

Wire format (https://developers.google.com/gmail/api/guides/batch,
https://developers.google.com/calendar/api/guides/batch; PROVIDERS.md §1.2, §1.5):

- Request parts are ``Content-Type: application/http`` with a ``Content-ID`` and a nested request
  whose request line carries only the path (``GET /gmail/v1/users/me/messages/x?format=...``),
  its own headers (notably ``Authorization``: the token is per part) and an optional body.
- Response parts are ``Content-Type: application/http`` with ``Content-ID: <response-ID>`` where
  ``ID`` is the request part's id without its angle brackets. google-api-python-client sends
  ``<uuid + n>`` and splits the answer on ``" + "``, so the id is echoed byte for byte.
- Each nested response is ``HTTP/1.1 <code> <reason>``, headers, a blank line (CRLF CRLF: the
  client splits headers from body on ``"\\r\\n\\r\\n"``), then the body.
- More parts than the API allows is a 400 for the whole envelope; Google's body then has no
  ``errors`` array: ``{"error": {"code": 400, "message": "Inner request count exceeds the limit.
  Received: 250, Limit: 100", "status": "INVALID_ARGUMENT"}}``
  (https://github.com/GAM-team/got-your-back/issues/256,
  https://github.com/mhasbini/gmail_analyzer/issues/12).

Parts run one after another on the request's thread inside ``controls.batch(...)``: the envelope
pays the latency once and, for Gmail, holds one concurrency slot per part, which is how a large
batch trips the per-user concurrency cap ("Too many concurrent requests for user", PROVIDERS.md
§1.1). Each part still passes ``controls.call`` in its view, so a part can get its own 429 while
its neighbours succeed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from email.parser import BytesParser
from email.policy import compat32
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, request
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.test import EnvironBuilder, run_wsgi_app

from sandbox.errors import DropConnection
from sandbox.google.oauth import lookup_access_token
from sandbox.state import get_state

# Marks an environ as a batch part, so a part cannot itself be a batch (Google refuses nesting).
ENVIRON_PART = "sandbox.batch_part"

_CRLF = "\r\n"


def _envelope_error(code: int, message: str) -> Response:
    body = {"error": {"code": code, "message": message, "status": "INVALID_ARGUMENT"}}
    return Response(
        json.dumps(body, indent=2) + "\n",
        status=code,
        content_type="application/json; charset=UTF-8",
    )


def parse_parts(content_type: str, body: bytes) -> list[tuple[str | None, str]]:
    """Split a ``multipart/mixed`` body into ``(content_id, inner_http_text)`` pairs."""
    message = BytesParser(policy=compat32).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    parts: list[tuple[str | None, str]] = []
    for part in message.get_payload():
        payload = part.get_payload(decode=False)
        if isinstance(payload, list):
            raise ValueError("nested multipart parts are not requests")
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8")
        content_id = part.get("Content-ID")
        if content_id is not None:
            content_id = content_id.strip()
            if content_id.startswith("<") and content_id.endswith(">"):
                content_id = content_id[1:-1]
        parts.append((content_id, payload))
    return parts


def _split_http(text: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """Parse an ``application/http`` request: method, target, headers, body."""
    text = text.lstrip("\r\n")
    # Header block ends at the first blank line; clients write CRLF or bare LF.
    cut = len(text)
    sep_len = 0
    for sep in ("\r\n\r\n", "\n\n"):
        at = text.find(sep)
        if at != -1 and at < cut:
            cut, sep_len = at, len(sep)
    head, body = text[:cut], text[cut + sep_len :]
    lines = head.replace("\r\n", "\n").split("\n")
    request_line = lines[0].split()
    if len(request_line) < 2:
        raise ValueError(f"bad request line {lines[0]!r}")
    method, target = request_line[0].upper(), request_line[1]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[0] in " \t" and headers:  # folded header continuation
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return method, target, headers, body.encode("utf-8")


def _dispatch(
    app: Flask, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run one inner request through the app; return (status, headers, body)."""
    parts = urlsplit(target)
    header_map = [(k, v) for k, v in headers if k.lower() not in ("content-length", "host")]
    builder = EnvironBuilder(
        path=parts.path or "/",
        query_string=parts.query,
        method=method,
        headers=header_map,
        data=body if body else None,
        base_url=request.host_url,
        environ_overrides={
            ENVIRON_PART: True,
            "REMOTE_ADDR": request.remote_addr or "127.0.0.1",
        },
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    app_iter, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    try:
        data = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    code = int(status.split(" ", 1)[0])
    return code, list(response_headers.items()), data


def _render_part(
    content_id: str | None, code: int, headers: list[tuple[str, str]], body: bytes
) -> str:
    reason = HTTP_STATUS_CODES.get(code, "Unknown")
    lines = ["Content-Type: application/http"]
    if content_id is not None:
        lines.append(f"Content-ID: <response-{content_id}>")
    lines += ["", f"HTTP/1.1 {code} {reason}"]
    for name, value in headers:
        if name.lower() in ("content-length", "server", "date", "connection"):
            continue
        lines.append(f"{name}: {value}")
    text = body.decode("utf-8", errors="replace")
    lines.append(f"Content-Length: {len(text.encode('utf-8'))}")
    lines += ["", text]
    return _CRLF.join(lines)


def _mailbox_of(parts: list[tuple[str | None, str]]) -> str | None:
    """The user a batch is for: the owner of the first part's access token."""
    for _cid, text in parts:
        try:
            _m, _t, headers, _b = _split_http(text)
        except ValueError:
            continue
        for name, value in headers:
            if name.lower() == "authorization" and value[:7].lower() == "bearer ":
                info = lookup_access_token(value[7:].strip())
                return info["mailbox"] if info else None
    return None


def handle_batch(
    app: Flask,
    *,
    service: str = "gmail",
    max_parts: int = 100,
    path_prefixes: Iterable[str] = ("/",),
) -> Response:
    """Answer the current ``multipart/mixed`` batch request by dispatching each part through
    ``app``. ``service`` names the quota bucket (``gmail``/``calendar``); ``path_prefixes`` are
    the paths inner requests may target ("All the inner requests must go to the same Google
    API", batch guide)."""
    if request.environ.get(ENVIRON_PART):
        return _envelope_error(400, "Nested batch requests are not allowed.")
    content_type = request.headers.get("Content-Type", "")
    if not content_type.lower().startswith("multipart/mixed") or "boundary=" not in content_type:
        return _envelope_error(
            400, "Failed to parse batch request, error: Content-Type is not multipart/mixed."
        )
    try:
        parts = parse_parts(content_type, request.get_data())
    except (ValueError, UnicodeDecodeError) as exc:
        return _envelope_error(400, f"Failed to parse batch request, error: {exc}")
    if not parts:
        return _envelope_error(400, "Failed to parse batch request, error: 0 items.")
    if len(parts) > max_parts:
        return _envelope_error(
            400,
            f"Inner request count exceeds the limit. Received: {len(parts)}, Limit: {max_parts}",
        )
    prefixes = tuple(path_prefixes)
    rendered: list[str] = []
    controls = get_state().controls
    with controls.batch(service=service, mailbox=_mailbox_of(parts), parts=len(parts)):
        for content_id, text in parts:
            rendered.append(_run_part(app, content_id, text, prefixes))
    boundary = "batch_" + secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")
    out = "".join(f"--{boundary}{_CRLF}{part}{_CRLF}" for part in rendered)
    out += f"--{boundary}--{_CRLF}"
    return Response(
        out.encode("utf-8"),
        status=200,
        content_type=f"multipart/mixed; boundary={boundary}",
    )


def _run_part(app: Flask, content_id: str | None, text: str, prefixes: tuple[str, ...]) -> str:
    try:
        method, target, headers, body = _split_http(text)
    except ValueError as exc:
        return _render_part(content_id, *_part_error(400, f"Invalid inner request: {exc}"))
    path = urlsplit(target).path
    if not path.startswith(prefixes):
        return _render_part(
            content_id, *_part_error(400, "Batch requests must all go to the same Google API.")
        )
    try:
        code, response_headers, data = _dispatch(app, method, target, headers, body)
    except ConnectionAbortedError:
        # A part drew an injected "dropped connection" fault: drop the whole envelope's.
        raise DropConnection from None
    return _render_part(content_id, code, response_headers, data)


def _part_error(code: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "badRequest"}],
            "status": "INVALID_ARGUMENT",
        }
    }
    return code, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(body).encode()
