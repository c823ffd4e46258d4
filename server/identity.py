"""Who is calling: a browser with a session cookie, or a script/add-on with an API token.

The Flask session cookie (signed, HttpOnly, SameSite=Lax) carries only random values: `sid`
(whose hash names a `WebSession` row), `binding` (ties OAuth requests to this browser) and `csrf`.
Requests authenticated by cookie that change state must carry the CSRF token (header
`X-CSRF-Token` or form field `csrf_token`); bearer-token requests need none, since browsers
never attach them on their own.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, request, session

from core import auth
from core.db import utcnow
from core.models import User
from server import context

F = TypeVar("F", bound=Callable[..., Any])
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def current_user() -> User | None:
    """Return the signed-in user for this request, or None."""
    if "warmline_user" in g:
        return g.warmline_user  # type: ignore[no-any-return]
    user: User | None = None
    g.warmline_via_token = False
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = auth.get_user_by_api_token(context.db(), raw=header[7:].strip(), now=utcnow())
        g.warmline_via_token = user is not None
    elif "sid" in session:
        user = auth.get_user_by_session(context.db(), raw=session["sid"], now=utcnow())
    g.warmline_user = user
    return user


def browser_binding() -> str:
    """Return this browser's binding value, creating it on first use."""
    if "binding" not in session:
        session["binding"] = auth.new_browser_binding()
    return str(session["binding"])


def existing_browser_binding() -> str | None:
    """Return this browser's binding value if it has one (callbacks never create one)."""
    value = session.get("binding")
    return str(value) if value else None


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def sign_in(user: User) -> None:
    """Start a fresh browser session for `user` (new id: no session fixation)."""
    binding = session.get("binding")
    session.clear()
    if binding:
        session["binding"] = binding
    session["sid"] = auth.create_web_session(context.db(), user_id=user.id, now=utcnow())
    session["csrf"] = secrets.token_urlsafe(24)
    session.permanent = True
    g.warmline_user = user


def sign_out() -> None:
    if "sid" in session:
        auth.end_web_session(context.db(), raw=session["sid"])
    session.clear()


def login_required(view: F) -> F:
    """Require a signed-in user (401 JSON); enforce CSRF on cookie-authenticated writes."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            abort(401, description="sign in or send an API token (Authorization: Bearer wl_...)")
        if request.method in UNSAFE_METHODS and not g.warmline_via_token:
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
            if not hmac.compare_digest(sent, session.get("csrf", "")) or not sent:
                abort(403, description="missing or wrong CSRF token")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
