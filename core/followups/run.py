"""One follow-up run for one user: evaluate the rules, then reconcile the calendar.

Assembled here (token source, pacer, writer) so that the rules and the calendar outbox stay
free of configuration; the workers pass in connectors.registry's writer factory.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction, utcnow
from core.followups.calendar import CalendarRun, calendar_account, sync_user_calendar, time_zone
from core.followups.policy import Preferences, thresholds
from core.followups.store import EvaluateResult, evaluate_user
from core.models import ConnectedAccount, Provider, User
from core.ports import CalendarWriter, OAuthProvider, Pacer, TokenSource
from core.quota import DbPacer
from core.settings import Settings
from core.tokens import get_access_token
from core.vault import Vault


@dataclass(frozen=True)
class FollowupRun:
    evaluated: EvaluateResult | None
    calendar: CalendarRun


def run_user_followups(
    factory: sessionmaker[Session],
    *,
    user_id: uuid.UUID,
    settings: Settings,
    oauth: Mapping[Provider, OAuthProvider],
    vault: Vault,
    limits_for: Callable[[Provider], Mapping[str, Any]],
    build_writer: Callable[[Provider, TokenSource, Pacer], CalendarWriter],
) -> FollowupRun:
    now = utcnow()
    with transaction(factory) as session:
        user = session.get(User, user_id)
        if user is None:
            return FollowupRun(None, CalendarRun())
        prefs = Preferences.of(user.preferences)
        account = calendar_account(session, user, prefs)
        zone = time_zone(prefs, account, settings.followup_default_time_zone)
        evaluated = evaluate_user(
            session,
            user_id=user_id,
            now=now,
            working=prefs.working_time(zone),
            limits=thresholds(settings),
        )

    def writer_for(account: ConnectedAccount) -> CalendarWriter:
        provider = account.provider
        account_id = account.id

        def token(*, force: bool = False) -> str:
            return get_access_token(
                factory,
                account_id=account_id,
                oauth=oauth[provider],
                vault=vault,
                now=utcnow(),
                force=force,
            ).token

        pacer = DbPacer(factory, account_id=account_id, limits=limits_for(provider))
        return build_writer(provider, token, pacer)

    calendar = sync_user_calendar(
        factory,
        user_id=user_id,
        now=now,
        writer_for=writer_for,
        default_time_zone=settings.followup_default_time_zone,
        public_url=settings.effective_public_url,
    )
    return FollowupRun(evaluated, calendar)
