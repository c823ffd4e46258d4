"""The sync engine: keeps Warmline's copy of an account in step with the provider.

State machine, per stream (`SyncStream`):

    initial ──(last backfill page committed)──▶ incremental ──(new changes)──▶ incremental
       ▲                                             │
       └────(CursorExpired: generation + 1)──────────┘

- *initial*: a full listing; `backfill_cursor` says where it continues. Every row it writes is
  stamped with the stream's generation; when the listing completes, rows of older generations
  are swept (they were deleted while we were not looking). An initial sync is just generation 1.
- *incremental*: changes since `cursor` (Gmail historyId, Calendar syncToken, Graph deltaLink).
  An expired cursor starts a new full listing that loses nothing (from the connector's
  `CursorExpired.restart_from` when it gives one). A source with no change feed for a stream
  expires its cursor every round, so each round is a full listing and its sweep.

Per account (`ConnectedAccount.state`): active → needs_reauth (the provider refused the grant;
syncs stop until the user reconnects, which sets the account active and its streams due again)
and disabled.

Durability lives in the database, not the broker. A worker claims the account's lease (one sync
per account at a time across all workers), then commits each page together with the cursor that
produced it — a worker killed at any instant leaves the last committed page and an expiring
lease, and whoever claims the account next resumes there: no loss, no duplicate. No database
transaction is open during provider I/O.

Faults: RateLimited → the stream waits Retry-After (the pacer also holds the bucket for every
process); ProviderUnavailable / ProviderRejected → exponential backoff with jitter; ReauthRequired
→ needs_reauth. Progress (items seen, provider's estimate, phase, errors) is on the stream rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import String, cast, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import accounts, derive, mailstore
from core.db import transaction
from core.derive import dirty
from core.errors import (
    CursorExpired,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    ReauthRequired,
)
from core.models import (
    AccountState,
    CalendarEvent,
    ConnectedAccount,
    Message,
    SyncPhase,
    SyncStream,
)
from core.ports import SyncSource
from core.records import MessageRecord, Page
from core.tokens import AccountUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncPolicy:
    """Timing knobs of the engine (from settings)."""

    poll_interval_s: float = 300.0  # incremental sync of an idle account
    lease_s: float = 120.0  # renewed with every page
    run_budget_s: float = 600.0  # a run yields the account after this, for fairness
    backoff_base_s: float = 5.0
    backoff_max_s: float = 900.0
    derive_every_s: float = 10.0  # how often a running sync refreshes the contacts it touched


@dataclass
class RunResult:
    claimed: bool
    pages: int = 0
    changes: int = 0
    errors: list[str] = field(default_factory=list)
    state: str = "active"


SourceFactory = Callable[[ConnectedAccount], SyncSource]


def claim_account(
    session: Session, *, account_id: uuid.UUID, owner: str, now: dt.datetime, lease_s: float
) -> bool:
    """Take the account's sync lease if nobody holds a live one (atomic on every backend)."""
    result = session.execute(
        update(ConnectedAccount)
        .where(
            ConnectedAccount.id == account_id,
            ConnectedAccount.state == AccountState.ACTIVE,
            (ConnectedAccount.sync_lease_expires_at.is_(None))
            | (ConnectedAccount.sync_lease_expires_at <= now)
            | (ConnectedAccount.sync_lease_owner == owner),
        )
        .values(sync_lease_owner=owner, sync_lease_expires_at=now + dt.timedelta(seconds=lease_s))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _renew(
    session: Session, *, account_id: uuid.UUID, owner: str, now: dt.datetime, lease_s: float
) -> bool:
    result = session.execute(
        update(ConnectedAccount)
        .where(ConnectedAccount.id == account_id, ConnectedAccount.sync_lease_owner == owner)
        .values(sync_lease_expires_at=now + dt.timedelta(seconds=lease_s))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_due_accounts(session: Session, *, now: dt.datetime, limit: int = 100) -> list[uuid.UUID]:
    """Active accounts whose sync is due and whose lease is free or expired, oldest due first."""
    rows = session.scalars(
        select(ConnectedAccount.id)
        .where(
            ConnectedAccount.state == AccountState.ACTIVE,
            (ConnectedAccount.sync_due_at.is_(None)) | (ConnectedAccount.sync_due_at <= now),
            (ConnectedAccount.sync_lease_expires_at.is_(None))
            | (ConnectedAccount.sync_lease_expires_at <= now),
        )
        .order_by(ConnectedAccount.sync_due_at.is_not(None), ConnectedAccount.sync_due_at)
        .limit(limit)
    )
    return list(rows)


def claim_due_for_dispatch(
    session: Session, *, now: dt.datetime, redispatch_after_s: float, limit: int = 100
) -> list[uuid.UUID]:
    """Return the accounts to wake now, and push their due time back a little.

    The push keeps the dispatcher from queueing the same account every tick while its wake-up
    message waits for a free worker; if no worker takes it by then (the message was lost with a
    killed worker), the account is due again and gets a fresh message.
    """
    due = list_due_accounts(session, now=now, limit=limit)
    if due:
        session.execute(
            update(ConnectedAccount)
            .where(ConnectedAccount.id.in_(due))
            .values(sync_due_at=now + dt.timedelta(seconds=redispatch_after_s))
        )
    return due


def mark_due(session: Session, *, account_id: uuid.UUID, now: dt.datetime) -> None:
    """Ask for a sync of this account as soon as a worker is free (e.g. right after connect)."""
    session.execute(
        update(ConnectedAccount).where(ConnectedAccount.id == account_id).values(sync_due_at=now)
    )
    session.execute(
        update(SyncStream).where(SyncStream.account_id == account_id).values(due_at=now)
    )


class Engine:
    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        source_for: SourceFactory,
        policy: SyncPolicy,
        owner: str,
        clock: Callable[[], dt.datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._last_derive = 0.0
        self.factory = factory
        self.source_for = source_for
        self.policy = policy
        self.owner = owner
        self.clock = clock
        self.monotonic = monotonic

    def run(self, account_id: uuid.UUID) -> RunResult:
        """Sync the account's due streams, if its lease is free. Safe to call any time."""
        now = self.clock()
        with transaction(self.factory) as session:
            claimed = claim_account(
                session,
                account_id=account_id,
                owner=self.owner,
                now=now,
                lease_s=self.policy.lease_s,
            )
            account = session.get(ConnectedAccount, account_id) if claimed else None
        if not claimed or account is None:
            return RunResult(claimed=False)
        result = RunResult(claimed=True)
        try:
            self._run_claimed(account, result)
            self._derive(account.user_id, force=True)
        except (ReauthRequired, AccountUnavailable) as exc:
            result.state = "needs_reauth" if isinstance(exc, ReauthRequired) else "unavailable"
            result.errors.append(type(exc).__name__)
            if isinstance(exc, ReauthRequired):
                with transaction(self.factory) as session:
                    accounts.mark_needs_reauth(
                        session, account_id=account_id, reason=str(exc), now=self.clock()
                    )
        finally:
            self._release(account_id)
        return result

    def _run_claimed(self, account: ConnectedAccount, result: RunResult) -> None:
        with self.factory() as session:
            streams_due = session.scalar(
                select(func.count()).where(
                    SyncStream.account_id == account.id,
                    (SyncStream.due_at.is_(None)) | (SyncStream.due_at <= self.clock()),
                )
            )
            has_streams = session.scalar(
                select(func.count()).where(SyncStream.account_id == account.id)
            )
        if has_streams and not streams_due:
            return  # a duplicate wake-up: nothing to do, and no provider call spent on it
        source = self.source_for(account)
        try:
            streams = source.list_streams()
        except (RateLimited, ProviderUnavailable, ProviderRejected) as exc:
            # Nothing synced this time; the account stays due and beat wakes it again.
            result.errors.append(type(exc).__name__)
            return
        self._ensure_streams(account.id, streams)
        started = self.monotonic()
        for name in _ordered(streams):
            if self.monotonic() - started > self.policy.run_budget_s:
                break  # yield the account; it is still due, so the next wake-up continues
            with self.factory() as session:
                stream = session.scalars(
                    select(SyncStream).where(
                        SyncStream.account_id == account.id, SyncStream.stream == name
                    )
                ).one()
                due = stream.due_at is None or stream.due_at <= self.clock()
            if due:
                self._run_stream(account.id, account.user_id, name, source, result, started)
        self._reconcile_if_caught_up(account.id, source)

    def _ensure_streams(self, account_id: uuid.UUID, streams: list[str]) -> None:
        now = self.clock()
        with transaction(self.factory) as session:
            have = {
                s.stream: s
                for s in session.scalars(
                    select(SyncStream).where(SyncStream.account_id == account_id)
                )
            }
            for name in streams:
                if name not in have:
                    session.add(SyncStream(account_id=account_id, stream=name, due_at=now))
            for name, stream in have.items():
                if name not in streams:  # a folder or calendar that no longer exists
                    _forget_stream(session, account_id, name)
                    session.delete(stream)

    def _run_stream(
        self,
        account_id: uuid.UUID,
        user_id: uuid.UUID,
        name: str,
        source: SyncSource,
        result: RunResult,
        started: float,
    ) -> None:
        while True:
            with self.factory() as session:
                stream = session.scalars(
                    select(SyncStream).where(
                        SyncStream.account_id == account_id, SyncStream.stream == name
                    )
                ).one()
                cursor, backfill = stream.cursor, stream.backfill_cursor
            try:
                page = source.fetch_page(name, cursor=cursor, backfill_cursor=backfill)
            except CursorExpired as exc:
                self._restart_listing(account_id, name, backfill_cursor=exc.restart_from)
                result.errors.append("CursorExpired")
                continue
            except RateLimited as exc:
                self._defer(account_id, name, exc, exc.retry_after_s or 30.0, count_attempt=False)
                result.errors.append("RateLimited")
                return
            except (ProviderUnavailable, ProviderRejected) as exc:
                self._defer(account_id, name, exc, None, count_attempt=True)
                result.errors.append(type(exc).__name__)
                return
            complete = self._commit_page(account_id, name, page)
            self._derive(user_id, force=False)
            result.pages += 1
            result.changes += len(page.changes)
            if complete or self.monotonic() - started > self.policy.run_budget_s:
                return

    def _commit_page(self, account_id: uuid.UUID, name: str, page: Page) -> bool:
        """Commit the page's changes with its cursor; return True when the stream caught up."""
        now = self.clock()
        with transaction(self.factory) as session:
            if not _renew(
                session,
                account_id=account_id,
                owner=self.owner,
                now=now,
                lease_s=self.policy.lease_s,
            ):
                raise AccountUnavailable("lost the account's sync lease")
            stream = session.scalars(
                select(SyncStream).where(
                    SyncStream.account_id == account_id, SyncStream.stream == name
                )
            ).one()
            account = session.get(ConnectedAccount, account_id)
            assert account is not None
            touched = derive.touched_addresses(session, account_id=account_id, changes=page.changes)
            mailstore.apply_changes(
                session, account_id=account_id, changes=page.changes, generation=stream.generation
            )
            dirty.mark_dirty(session, user_id=account.user_id, addresses=touched, now=now)
            for address in page.owner_addresses:
                accounts.record_account_address(session, account=account, address=address)
            stream.items_seen += sum(isinstance(c, MessageRecord) for c in page.changes)
            if page.items_total_estimate is not None:
                stream.items_total_estimate = page.items_total_estimate
            if page.cursor is not None:
                stream.cursor = page.cursor
                stream.cursor_updated_at = now
            stream.backfill_cursor = page.backfill_cursor
            stream.attempts = 0
            stream.last_error = None
            if not page.is_complete:
                return False
            if stream.phase is SyncPhase.INITIAL:
                _sweep(session, account_id, name, stream.generation)
                stream.phase = SyncPhase.INCREMENTAL
            stream.last_success_at = now
            stream.due_at = now + dt.timedelta(seconds=self.policy.poll_interval_s)
            return True

    def _derive(self, user_id: uuid.UUID, *, force: bool) -> None:
        """Refresh the contacts recent pages touched, at most every `derive_every_s`.

        During a long initial sync this makes the sidebar useful early; at the end of a run
        (`force`) it drains everything the run touched.
        """
        if not force and self.monotonic() - self._last_derive < self.policy.derive_every_s:
            return
        self._last_derive = self.monotonic()
        for _ in range(10_000 if force else 1):  # bounded: batches of 500 contacts
            with transaction(self.factory) as session:
                dirty.drain(session, user_id=user_id, now=self.clock())
                if not dirty.has_dirty(session, user_id=user_id):
                    return

    def _restart_listing(
        self, account_id: uuid.UUID, name: str, *, backfill_cursor: str | None = None
    ) -> None:
        with transaction(self.factory) as session:
            stream = session.scalars(
                select(SyncStream).where(
                    SyncStream.account_id == account_id, SyncStream.stream == name
                )
            ).one()
            stream.phase = SyncPhase.INITIAL
            stream.cursor = None
            stream.backfill_cursor = backfill_cursor
            stream.generation += 1
            stream.last_error = "cursor expired: full resync"

    def _defer(
        self,
        account_id: uuid.UUID,
        name: str,
        exc: Exception,
        wait_s: float | None,
        *,
        count_attempt: bool,
    ) -> None:
        with transaction(self.factory) as session:
            stream = session.scalars(
                select(SyncStream).where(
                    SyncStream.account_id == account_id, SyncStream.stream == name
                )
            ).one()
            if count_attempt:
                stream.attempts += 1
            if wait_s is None:
                ceiling = min(
                    self.policy.backoff_max_s, self.policy.backoff_base_s * 2**stream.attempts
                )
                wait_s = random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not crypto)
            stream.due_at = self.clock() + dt.timedelta(seconds=wait_s)
            stream.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.info(
            "sync deferred",
            extra={"account_id": str(account_id), "stream": name, "wait_s": round(wait_s, 1)},
        )

    def _release(self, account_id: uuid.UUID) -> None:
        with transaction(self.factory) as session:
            next_due = session.scalar(
                select(func.min(SyncStream.due_at)).where(SyncStream.account_id == account_id)
            )
            session.execute(
                update(ConnectedAccount)
                .where(
                    ConnectedAccount.id == account_id,
                    ConnectedAccount.sync_lease_owner == self.owner,
                )
                .values(sync_lease_owner=None, sync_lease_expires_at=None, sync_due_at=next_due)
            )

    def _reconcile_if_caught_up(self, account_id: uuid.UUID, source: SyncSource) -> None:
        with self.factory() as session:
            pending = session.scalar(
                select(func.count()).where(
                    SyncStream.account_id == account_id,
                    SyncStream.phase == SyncPhase.INITIAL,
                )
            )
        if pending:
            return
        try:
            provider_counts = source.mailbox_counts()
        except (RateLimited, ProviderUnavailable, ProviderRejected):
            return  # reconcile next time; coverage keeps its last report
        with transaction(self.factory) as session:
            account = session.get(ConnectedAccount, account_id)
            if account is None:
                return
            labels = cast(Message.labels, String)
            stored = {
                # Comparable with the provider's count: spam and trash are not in scope (a
                # message binned after it was synced stays stored, labelled, and never counts).
                "messages": session.scalar(
                    select(func.count()).where(
                        Message.account_id == account_id,
                        ~labels.like('%"SPAM"%'),
                        ~labels.like('%"TRASH"%'),
                    )
                ),
                "events": session.scalar(
                    select(func.count()).where(CalendarEvent.account_id == account_id)
                ),
            }
            account.coverage = {
                "checked_at": self.clock().isoformat(),
                "provider": provider_counts,
                "stored": stored,
            }


def _ordered(streams: list[str]) -> list[str]:
    """Mail before calendars; within mail, sent folders first (they name real relationships)."""

    def rank(name: str) -> tuple[int, str]:
        if name.startswith("mail"):
            return (0 if "sent" in name.lower() else 1, name)
        return (2, name)

    return sorted(streams, key=rank)


def _sweep(session: Session, account_id: uuid.UUID, name: str, generation: int) -> None:
    kind, _, key = name.partition(":")
    if kind == "mail":
        mailstore.sweep_messages(
            session, account_id=account_id, generation=generation, folder=key or None
        )
    elif kind == "calendar":
        mailstore.sweep_events(
            session, account_id=account_id, generation=generation, calendar_id=key or None
        )


def _forget_stream(session: Session, account_id: uuid.UUID, name: str) -> None:
    # A generation no row can have: sweeping with it removes everything the stream brought.
    _sweep(session, account_id, name, generation=2**31 - 1)
