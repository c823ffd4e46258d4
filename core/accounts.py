"""Users and connected accounts: connect, reconnect, mark for re-auth, disconnect, delete.

Invariants:
- A mailbox is one `ConnectedAccount` per user, keyed by (user, provider, provider account id):
  connecting it again *updates* that row — new credential, state back to active — and keeps its
  sync cursors, so a reconnect resumes instead of starting over (nylas duplicated accounts on
  re-auth; we don't).
- The credential is stored only as vault ciphertext.
- Disconnect deletes the account and, by cascade, every message, event and sync stream it brought;
  the user's contacts are derived data and are rebuilt from what remains.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core import models as m
from core.models import (
    AccountAddress,
    AccountState,
    ConnectedAccount,
    Contact,
    SyncStream,
    User,
)
from core.ports import Grant, Identity
from core.vault import Vault


def get_account_by_identity(session: Session, *, identity: Identity) -> ConnectedAccount | None:
    """Return the oldest account for this provider identity, whoever connected it."""
    return session.scalars(
        select(ConnectedAccount)
        .where(
            ConnectedAccount.provider == identity.provider,
            ConnectedAccount.provider_account_id == identity.provider_account_id,
        )
        .order_by(ConnectedAccount.created_at)
        .limit(1)
    ).first()


def get_account(
    session: Session, *, user_id: uuid.UUID, account_id: uuid.UUID
) -> ConnectedAccount | None:
    """Return the user's account with this id, or None (never another user's)."""
    return session.scalars(
        select(ConnectedAccount).where(
            ConnectedAccount.id == account_id, ConnectedAccount.user_id == user_id
        )
    ).first()


def list_accounts(session: Session, *, user_id: uuid.UUID) -> list[ConnectedAccount]:
    return list(
        session.scalars(
            select(ConnectedAccount)
            .where(ConnectedAccount.user_id == user_id)
            .order_by(ConnectedAccount.created_at)
        )
    )


def create_user(session: Session, *, identity: Identity) -> User:
    user = User(email=identity.email, display_name=identity.display_name)
    session.add(user)
    session.flush()
    return user


def upsert_connected_account(
    session: Session, *, user_id: uuid.UUID, grant: Grant, vault: Vault, now: dt.datetime
) -> tuple[ConnectedAccount, bool]:
    """Store a completed grant for this user; return (account, created).

    An existing account for the same mailbox is updated in place: credential replaced, state
    back to active, error cleared; its sync streams and cursors are untouched.
    """
    identity = grant.identity
    account = session.scalars(
        select(ConnectedAccount).where(
            ConnectedAccount.user_id == user_id,
            ConnectedAccount.provider == identity.provider,
            ConnectedAccount.provider_account_id == identity.provider_account_id,
        )
    ).first()
    created = account is None
    if account is None:
        account = ConnectedAccount(
            user_id=user_id,
            provider=identity.provider,
            provider_account_id=identity.provider_account_id,
            email=identity.email,
        )
        session.add(account)
    account.email = identity.email
    account.display_name = identity.display_name
    account.granted_scopes = " ".join(grant.granted_scopes)
    account.token_ciphertext = vault.encrypt(grant.credential)
    account.token_expires_at = grant.access_expires_at
    account.state = AccountState.ACTIVE
    account.last_error = None
    account.updated_at = now
    account.sync_due_at = now  # sync (or resume) right away
    session.flush()
    record_account_address(session, account=account, address=identity.email, is_primary=True)
    if not created:
        # Wake every stream now: a reconnect should resume at once, from the saved cursors.
        for stream in session.scalars(
            select(SyncStream).where(SyncStream.account_id == account.id)
        ):
            stream.due_at = now
            stream.attempts = 0
            stream.last_error = None
    return account, created


def record_account_address(
    session: Session, *, account: ConnectedAccount, address: str, is_primary: bool = False
) -> None:
    """Remember that `address` is the account owner (primary address or alias)."""
    address = address.strip().lower()
    existing = session.scalars(
        select(AccountAddress).where(
            AccountAddress.account_id == account.id, AccountAddress.address == address
        )
    ).first()
    if existing is None:
        session.add(AccountAddress(account_id=account.id, address=address, is_primary=is_primary))
    elif is_primary:
        existing.is_primary = True


def mark_needs_reauth(
    session: Session, *, account_id: uuid.UUID, reason: str, now: dt.datetime
) -> None:
    """Stop syncing this account until the user reconnects it."""
    account = session.get(ConnectedAccount, account_id)
    if account is None:
        return
    account.state = AccountState.NEEDS_REAUTH
    account.last_error = reason[:500]
    account.updated_at = now


def store_credential(
    session: Session,
    *,
    account_id: uuid.UUID,
    credential: bytes,
    expires_at: dt.datetime | None,
    vault: Vault,
) -> None:
    """Replace the account's stored credential (e.g. an msal cache after a refresh)."""
    account = session.get(ConnectedAccount, account_id)
    if account is not None:
        account.token_ciphertext = vault.encrypt(credential)
        account.token_expires_at = expires_at


def delete_account(session: Session, *, account: ConnectedAccount) -> None:
    """Delete the account and everything it brought; drop the user's derived contacts.

    Contacts are derived across all of the user's accounts, so they are removed here and
    rebuilt from the accounts that remain (derivation), never left holding the gone account's
    history.
    """
    user_id = account.user_id
    session.delete(account)
    session.flush()
    session.execute(delete(Contact).where(Contact.user_id == user_id))


def delete_user(session: Session, *, user_id: uuid.UUID) -> None:
    """Delete the user and, by cascade, every row that belongs to them."""
    user = session.get(User, user_id)
    if user is not None:
        session.delete(user)
        session.flush()


def count_rows_for_user(session: Session, *, user_id: uuid.UUID) -> dict[str, int]:
    """Rows held for this user, per table (used to prove a purge)."""
    account_ids = select(m.ConnectedAccount.id).where(m.ConnectedAccount.user_id == user_id)
    message_ids = select(m.Message.id).where(m.Message.account_id.in_(account_ids))
    event_ids = select(m.CalendarEvent.id).where(m.CalendarEvent.account_id.in_(account_ids))
    counts = {
        "users": select(func.count()).select_from(m.User).where(m.User.id == user_id),
        "connected_accounts": select(func.count()).where(m.ConnectedAccount.user_id == user_id),
        "account_addresses": select(func.count()).where(
            m.AccountAddress.account_id.in_(account_ids)
        ),
        "sync_streams": select(func.count()).where(m.SyncStream.account_id.in_(account_ids)),
        "messages": select(func.count()).where(m.Message.account_id.in_(account_ids)),
        "message_participants": select(func.count()).where(
            m.MessageParticipant.message_id.in_(message_ids)
        ),
        "calendar_events": select(func.count()).where(m.CalendarEvent.account_id.in_(account_ids)),
        "event_attendees": select(func.count()).where(m.EventAttendee.event_id.in_(event_ids)),
        "contacts": select(func.count()).where(m.Contact.user_id == user_id),
        "web_sessions": select(func.count()).where(m.WebSession.user_id == user_id),
        "api_tokens": select(func.count()).where(m.ApiToken.user_id == user_id),
    }
    return {name: int(session.execute(query).scalar_one()) for name, query in counts.items()}
