"""Access tokens for an account: refreshed before they expire, and re-auth detected once.

`get_access_token` is what the sync engine calls before talking to a provider. It never holds a
database transaction across the provider call. A grant the provider refuses (`ReauthRequired`)
marks the account `needs_reauth` — syncs stop retrying it and the API and sidebar say
"reconnect" — and the error is re-raised for the caller to stop.

The access token is kept inside the account's encrypted credential (Google: next to the refresh
token; Microsoft: in msal's cache) and refreshed a few minutes before it expires, so a busy
account costs one token call an hour, and a database dump holds no usable token.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session, sessionmaker

from core import accounts
from core.db import transaction
from core.errors import ReauthRequired
from core.models import AccountState, ConnectedAccount
from core.ports import AccessToken, OAuthProvider
from core.vault import Vault


class AccountUnavailable(Exception):
    """The account is gone, disabled or waiting for the user to reconnect it."""


def get_access_token(
    factory: sessionmaker[Session],
    *,
    account_id: uuid.UUID,
    oauth: OAuthProvider,
    vault: Vault,
    now: dt.datetime,
    force: bool = False,
) -> AccessToken:
    """Return a fresh access token for the account; mark it needs_reauth if the grant is gone."""
    with factory() as session:
        account = session.get(ConnectedAccount, account_id)
        if account is None or account.token_ciphertext is None:
            raise AccountUnavailable("the account is not connected")
        if account.state is not AccountState.ACTIVE:
            raise AccountUnavailable(f"the account is {account.state.value}")
        ciphertext = account.token_ciphertext
    try:
        token = oauth.refresh(vault.decrypt(ciphertext), force=force)
    except ReauthRequired as exc:
        with transaction(factory) as session:
            accounts.mark_needs_reauth(session, account_id=account_id, reason=str(exc), now=now)
        raise
    if token.credential is not None:  # refreshed: keep the new access/refresh token
        with transaction(factory) as session:
            accounts.store_credential(
                session,
                account_id=account_id,
                credential=token.credential,
                expires_at=token.expires_at,
                vault=vault,
            )
    return token
