"""Who is calling: browser sessions, personal API tokens, and OAuth requests in flight.

Secrets handed to a client (session ids, API tokens) are random, shown once, and stored only as
SHA-256 hashes: a database dump lets nobody sign in. OAuth requests are single use — taken (and
deleted) by the callback whatever its outcome — expire after a few minutes, and are bound to
the browser that started them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.errors import OAuthFlowError
from core.models import ApiToken, OAuthRequest, Provider, User, WebSession
from core.ports import AuthorizationStart
from core.vault import Vault

API_TOKEN_PREFIX = "wl_"
SESSION_TTL = dt.timedelta(days=14)
OAUTH_REQUEST_TTL = dt.timedelta(minutes=10)

LAST_USED_RESOLUTION = dt.timedelta(minutes=5)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_browser_binding() -> str:
    """A random value kept in the browser's cookie to bind OAuth requests to it."""
    return secrets.token_urlsafe(32)


# Browser sessions


def create_web_session(session: Session, *, user_id: uuid.UUID, now: dt.datetime) -> str:
    """Start a session for this user; return the raw id to put in the cookie."""
    raw = secrets.token_urlsafe(32)
    session.add(WebSession(user_id=user_id, token_hash=_hash(raw), expires_at=now + SESSION_TTL))
    return raw


def get_user_by_session(session: Session, *, raw: str, now: dt.datetime) -> User | None:
    row = session.scalars(select(WebSession).where(WebSession.token_hash == _hash(raw))).first()
    if row is None or row.expires_at <= now:
        return None
    return session.get(User, row.user_id)


def end_web_session(session: Session, *, raw: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == _hash(raw)))


# Personal API tokens


def create_api_token(
    session: Session, *, user_id: uuid.UUID, name: str, now: dt.datetime
) -> tuple[ApiToken, str]:
    """Create a token; return the row and the raw token (shown to the user once, never again)."""
    raw = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user_id, name=name, token_hash=_hash(raw), prefix=raw[:10], created_at=now
    )
    session.add(token)
    session.flush()
    return token, raw


def get_user_by_api_token(session: Session, *, raw: str, now: dt.datetime) -> User | None:
    if not raw.startswith(API_TOKEN_PREFIX):
        return None
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == _hash(raw))).first()
    if token is None or token.revoked_at is not None:
        return None
    # Recorded to five minutes, not per request: a write on every call would make each API
    # request hold SQLite's write lock until it ends, serialising concurrent readers.
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return session.get(User, token.user_id)


def list_api_tokens(session: Session, *, user_id: uuid.UUID) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at)
        )
    )


def revoke_api_token(
    session: Session, *, user_id: uuid.UUID, token_id: uuid.UUID, now: dt.datetime
) -> bool:
    """Revoke one of the user's tokens; False when the user has no such token."""
    token = session.scalars(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
    ).first()
    if token is None:
        return False
    token.revoked_at = token.revoked_at or now
    return True


# OAuth requests in flight


def record_oauth_request(
    session: Session,
    *,
    start: AuthorizationStart,
    provider: Provider,
    intent: str,
    user_id: uuid.UUID | None,
    browser_binding: str,
    vault: Vault,
    now: dt.datetime,
) -> None:
    session.add(
        OAuthRequest(
            state=start.state,
            browser_binding=_hash(browser_binding),
            provider=provider,
            intent=intent,
            user_id=user_id,
            payload_ciphertext=vault.encrypt(json.dumps(start.secret_payload).encode()),
            created_at=now,
            expires_at=now + OAUTH_REQUEST_TTL,
        )
    )


@dataclass(frozen=True)
class PendingRequest:
    """An OAuth request taken out of the database, to check against its callback."""

    provider: Provider
    intent: str
    user_id: uuid.UUID | None
    browser_binding_hash: str
    expires_at: dt.datetime
    payload_ciphertext: bytes = field(repr=False)


def pop_oauth_request(session: Session, *, state: str) -> PendingRequest | None:
    """Delete and return the request with this state (single use, whatever happens next)."""
    request = session.get(OAuthRequest, state) if state else None
    if request is None:
        return None
    pending = PendingRequest(
        provider=request.provider,
        intent=request.intent,
        user_id=request.user_id,
        browser_binding_hash=request.browser_binding,
        expires_at=request.expires_at,
        payload_ciphertext=request.payload_ciphertext,
    )
    session.delete(request)
    return pending


def check_oauth_request(
    pending: PendingRequest | None,
    *,
    provider: Provider,
    browser_binding: str | None,
    vault: Vault,
    now: dt.datetime,
) -> dict[str, object]:
    """Return the request's secret payload, or raise OAuthFlowError if it must be refused."""
    if pending is None:
        raise OAuthFlowError("unknown or already used authorization state")
    if pending.provider != provider:
        raise OAuthFlowError("the state belongs to another provider's flow")
    if pending.expires_at <= now:
        raise OAuthFlowError("the authorization took too long; please start again")
    if browser_binding is None or not hmac.compare_digest(
        pending.browser_binding_hash, _hash(browser_binding)
    ):
        raise OAuthFlowError("this authorization was started in another browser session")
    payload: dict[str, object] = json.loads(vault.decrypt(pending.payload_ciphertext))
    return payload


def purge_expired(session: Session, *, now: dt.datetime) -> None:
    """Delete expired sessions and OAuth requests."""
    session.execute(delete(OAuthRequest).where(OAuthRequest.expires_at <= now))
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
