"""JSON errors for every 4xx and 5xx: a client never gets an HTML page or a stack trace.

Shape: `{"error": {"code": 404, "status": "not_found", "message": "..."}}`.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def error_response(code: int, message: str, *, status: str | None = None) -> Response:
    """Return the JSON error response used across the API."""
    slug = status or _slug(code)
    response = jsonify({"error": {"code": code, "status": slug, "message": message}})
    response.status_code = code
    return response


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():
            if name.lower() in {"allow", "retry-after", "www-authenticate"}:
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, InternalServerError.description)


def _slug(code: int) -> str:
    try:
        return HTTPStatus(code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"
