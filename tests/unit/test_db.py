from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from core.db import make_engine, make_session_factory, transaction
from core.models import Base, ConnectedAccount, Message, Provider, User
from core.settings import Settings


def test_migrations_create_exactly_the_models(migrated_settings: Settings) -> None:
    engine = make_engine(migrated_settings.effective_database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    tables = set(inspect(engine).get_table_names())
    for table in (
        "users",
        "connected_accounts",
        "sync_streams",
        "messages",
        "message_participants",
        "calendar_events",
        "event_attendees",
        "contacts",
    ):
        assert table in tables


def test_timestamps_come_back_as_utc_and_naive_ones_are_refused(
    migrated_settings: Settings,
) -> None:
    factory = make_session_factory(make_engine(migrated_settings.effective_database_url))
    berlin = dt.datetime(2026, 7, 1, 14, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    with transaction(factory) as session:
        user = User(email="ada@example.com", created_at=berlin)
        session.add(user)
    with factory() as session:
        stored = session.scalars(select(User)).one().created_at
    assert stored.tzinfo is dt.UTC
    assert stored == berlin
    assert stored.hour == 12

    with pytest.raises(Exception, match="naive datetime"), transaction(factory) as session:
        session.add(User(email="bob@example.com", created_at=dt.datetime(2026, 1, 1)))  # noqa: DTZ001


def test_a_message_is_stored_once_per_account(migrated_settings: Settings) -> None:
    factory = make_session_factory(make_engine(migrated_settings.effective_database_url))
    now = dt.datetime.now(dt.UTC)
    with transaction(factory) as session:
        user = User(email="ada@example.com")
        account = ConnectedAccount(
            user=user, provider=Provider.GOOGLE, provider_account_id="1", email="ada@example.com"
        )
        session.add(account)
        session.flush()
        session.add(Message(account_id=account.id, provider_message_id="m1", received_at=now))
    with pytest.raises(IntegrityError), transaction(factory) as session:
        session.add(Message(account_id=account.id, provider_message_id="m1", received_at=now))


def test_deleting_a_user_deletes_everything_they_own(migrated_settings: Settings) -> None:
    factory = make_session_factory(make_engine(migrated_settings.effective_database_url))
    now = dt.datetime.now(dt.UTC)
    with transaction(factory) as session:
        user = User(email="ada@example.com")
        other = User(email="bob@example.com")
        for owner, mid in ((user, "a"), (other, "b")):
            account = ConnectedAccount(
                user=owner, provider=Provider.GOOGLE, provider_account_id=mid, email="x@y.z"
            )
            session.add(account)
            session.flush()
            session.add(Message(account_id=account.id, provider_message_id=mid, received_at=now))
    with transaction(factory) as session:
        session.delete(session.get(User, user.id))
    with factory() as session:
        remaining = session.scalars(select(Message.provider_message_id)).all()
    assert remaining == ["b"]
