"""Sign-in and account connection, provider-neutral.

`begin` records the request and returns where to send the browser; `finish` checks the callback
against it, lets the provider exchange the code, and stores the result. `finish` owns its
transactions, like the sync engine: it consumes the request in a first, committed transaction (a
replayed callback finds it gone), exchanges the code with no database transaction open, and
stores the account in a second one.

Refusals (`OAuthFlowError`): unknown, expired or already used state; a state started in another
browser; a connect callback arriving in another user's session; anything the provider refuses.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from core import accounts, auth
from core.db import transaction
from core.errors import OAuthFlowError, ProviderError
from core.models import ConnectedAccount, User
from core.ports import OAuthProvider
from core.vault import Vault, VaultError

SIGNIN = "signin"
CONNECT = "connect"


@dataclass(frozen=True)
class Connected:
    user: User
    account: ConnectedAccount
    is_new_account: bool
    is_new_user: bool


def begin(
    session: Session,
    *,
    oauth: OAuthProvider,
    intent: str,
    user_id: uuid.UUID | None,
    browser_binding: str,
    redirect_uri: str,
    vault: Vault,
    now: dt.datetime,
    login_hint: str | None = None,
) -> str:
    """Start an authorization; return the provider URL to redirect the browser to."""
    if intent not in {SIGNIN, CONNECT}:
        raise OAuthFlowError(f"unknown intent {intent!r}")
    if intent == CONNECT and user_id is None:
        raise OAuthFlowError("sign in before connecting another account")
    start = oauth.start_authorization(redirect_uri=redirect_uri, login_hint=login_hint)
    auth.record_oauth_request(
        session,
        start=start,
        provider=oauth.provider,
        intent=intent,
        user_id=user_id,
        browser_binding=browser_binding,
        vault=vault,
        now=now,
    )
    return start.url


def finish(
    factory: sessionmaker[Session],
    *,
    oauth: OAuthProvider,
    params: dict[str, str],
    browser_binding: str | None,
    current_user_id: uuid.UUID | None,
    redirect_uri: str,
    vault: Vault,
    now: dt.datetime,
) -> Connected:
    """Complete the authorization this callback answers."""
    with transaction(factory) as session:
        pending = auth.pop_oauth_request(session, state=params.get("state", ""))
    payload = auth.check_oauth_request(
        pending, provider=oauth.provider, browser_binding=browser_binding, vault=vault, now=now
    )
    assert pending is not None
    intent, request_user_id = pending.intent, pending.user_id
    if intent == CONNECT and request_user_id != current_user_id:
        raise OAuthFlowError("this connection was started by another user's session")
    grant = oauth.complete_authorization(
        redirect_uri=redirect_uri, secret_payload=payload, params=params
    )
    with transaction(factory) as session:
        user: User | None
        if intent == CONNECT:
            user = session.get(User, request_user_id)
            is_new_user = False
        else:
            existing = accounts.get_account_by_identity(session, identity=grant.identity)
            user = session.get(User, existing.user_id) if existing else None
            is_new_user = user is None
            if user is None:
                user = accounts.create_user(session, identity=grant.identity)
        if user is None:
            raise OAuthFlowError("the user this connection was for no longer exists")
        account, created = accounts.upsert_connected_account(
            session, user_id=user.id, grant=grant, vault=vault, now=now
        )
    return Connected(user=user, account=account, is_new_account=created, is_new_user=is_new_user)


@dataclass(frozen=True)
class Disconnected:
    revoked_at_provider: bool
    revoke_error: str | None


def disconnect(
    factory: sessionmaker[Session],
    *,
    user_id: uuid.UUID,
    account_id: uuid.UUID,
    oauth: OAuthProvider | None,
    vault: Vault,
) -> Disconnected | None:
    """Revoke the account's grant at the provider, then delete it and all it brought.

    Revocation is best effort: a provider that is down must not keep a user's data here against
    their will, so the local purge happens either way and the result says what happened.
    Returns None when the user has no such account.
    """
    with transaction(factory) as session:
        account = accounts.get_account(session, user_id=user_id, account_id=account_id)
        if account is None:
            return None
        ciphertext = account.token_ciphertext
    revoked, error = False, None
    if oauth is not None and ciphertext is not None:
        try:
            revoked = oauth.revoke(vault.decrypt(ciphertext))
        except ProviderError as exc:
            error = type(exc).__name__
        except VaultError:
            error = "VaultError"
    with transaction(factory) as session:
        account = accounts.get_account(session, user_id=user_id, account_id=account_id)
        if account is not None:
            accounts.delete_account(session, account=account)
    return Disconnected(revoked_at_provider=revoked, revoke_error=error)
