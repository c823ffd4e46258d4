"""JSON API v1: the signed-in user, their accounts, their API tokens.

Every route is scoped to the caller: ids of another user's rows answer 404, exactly like ids that
do not exist, so nobody can probe for them.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, request

from core import accounts, auth
from core.db import utcnow
from core.models import AccountState, ConnectedAccount
from core.status import account_sync_status
from server import context
from server.identity import current_user, login_required, sign_out

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _user_id() -> uuid.UUID:
    user = current_user()
    assert user is not None  # guaranteed by login_required
    return user.id


def _account_json(account: ConnectedAccount) -> dict[str, Any]:
    public = context.settings().effective_public_url
    return {
        "id": str(account.id),
        "provider": account.provider.value,
        "email": account.email,
        "display_name": account.display_name,
        "state": account.state.value,
        "needs_reauth": account.state is AccountState.NEEDS_REAUTH,
        "reconnect_url": (
            f"{public}/auth/{account.provider.value}/start?intent=connect&login_hint={account.email}"
        ),
        "granted_scopes": account.granted_scopes.split(),
        "last_error": account.last_error,
        "connected_at": account.created_at.isoformat(),
        "sync": account_sync_status(context.db(), account=account, now=utcnow()),
    }


@bp.get("/me")
@login_required
def me() -> dict[str, Any]:
    user = current_user()
    assert user is not None
    public = context.settings().effective_public_url
    return {
        "id": str(user.id),
        "email": user.email,
        "display_name": user.display_name,
        "connect_urls": {
            p.value: f"{public}/auth/{p.value}/start?intent=connect"
            for p in context.oauth_providers()
        },
    }


@bp.delete("/me")
@login_required
def delete_me() -> tuple[str, int]:
    """Delete the user and everything Warmline holds for them, after revoking every grant."""
    user_id = _user_id()
    for account in accounts.list_accounts(context.db(), user_id=user_id):
        context.disconnect_account(user_id=user_id, account_id=account.id)
    accounts.delete_user(context.db(), user_id=user_id)
    sign_out()
    return "", 204


@bp.get("/accounts")
@login_required
def list_accounts() -> dict[str, Any]:
    rows = accounts.list_accounts(context.db(), user_id=_user_id())
    return {"accounts": [_account_json(a) for a in rows]}


@bp.get("/accounts/<uuid:account_id>")
@login_required
def get_account(account_id: uuid.UUID) -> dict[str, Any]:
    account = accounts.get_account(context.db(), user_id=_user_id(), account_id=account_id)
    if account is None:
        abort(404, description="no such account")
    return _account_json(account)


@bp.delete("/accounts/<uuid:account_id>")
@login_required
def disconnect_account(account_id: uuid.UUID) -> dict[str, Any]:
    result = context.disconnect_account(user_id=_user_id(), account_id=account_id)
    if result is None:
        abort(404, description="no such account")
    return {
        "disconnected": True,
        "revoked_at_provider": result.revoked_at_provider,
        "revoke_error": result.revoke_error,
    }


@bp.get("/tokens")
@login_required
def list_tokens() -> dict[str, Any]:
    rows = auth.list_api_tokens(context.db(), user_id=_user_id())
    return {"tokens": [_token_json(t) for t in rows]}


@bp.post("/tokens")
@login_required
def create_token() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        abort(400, description='send JSON {"name": "..."} naming the token')
    name = body["name"].strip()
    if not 1 <= len(name) <= 128:
        abort(400, description="the name must be 1 to 128 characters")
    token, raw = auth.create_api_token(context.db(), user_id=_user_id(), name=name, now=utcnow())
    return {**_token_json(token), "token": raw}, 201


@bp.delete("/tokens/<uuid:token_id>")
@login_required
def revoke_token(token_id: uuid.UUID) -> tuple[str, int]:
    if not auth.revoke_api_token(context.db(), user_id=_user_id(), token_id=token_id, now=utcnow()):
        abort(404, description="no such token")
    return "", 204


def _token_json(token: Any) -> dict[str, Any]:
    return {
        "id": str(token.id),
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked": token.revoked_at is not None,
    }
