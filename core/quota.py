"""Per-account quota pacing shared by every worker process (the `Pacer` port).

Quota is the bottleneck of a sync: under Google's 2026 profile a mailbox gets 6,000 units a
minute, and a client that runs into 429s wastes its budget on refusals and backoff. So Warmline
never asks the provider for more than the limit: before each request (or batch) a connector
reserves its cost here, and the reservation is admitted only while the units reserved in the
trailing window stay within `safety * limit` — an exact sliding window, the same shape Google's
per-user-per-minute limit has, widened by a small margin for the time requests take to arrive.
Reservations live in the database, so two workers on two machines
still share one budget per mailbox. A 429 the provider sends anyway becomes a hold (`penalize`)
that every process honours.

Each admission is one short transaction that starts by writing (touching the account row), which
serialises admissions per account on PostgreSQL (row lock) and SQLite (write lock) alike and
avoids SQLite's read-then-write upgrade failures.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction, utcnow
from core.models import ConnectedAccount, QuotaHold, QuotaReservation

# The margin kept past a window is at most this share of it (DbPacer._margin).
MAX_MARGIN_FRACTION = 0.2


@dataclass(frozen=True)
class QuotaLimit:
    """At most `units` in any `window_s` seconds."""

    units: float
    window_s: float


class DbPacer:
    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        account_id: uuid.UUID,
        limits: Mapping[str, QuotaLimit],
        safety: float = 1.0,
        window_margin_s: float = 3.0,
        clock: Callable[[], dt.datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        lease_owner: str | None = None,
        lease_s: float = 0.0,
    ) -> None:
        self.factory = factory
        self.account_id = account_id
        self.limits = dict(limits)
        self.safety = safety
        # Requests reach the provider a little after they are admitted (latency, and the parts
        # of a batch arrive one after another), so a reservation is kept for `window_margin_s`
        # beyond the provider's window: arrival times then never crowd more than the limit
        # into any real window.
        self.window_margin_s = window_margin_s
        self.clock = clock
        self.sleep = sleep
        self.lease_owner = lease_owner  # a sync holding the account's lease renews it here
        self.lease_s = lease_s
        self.waited_s = 0.0  # total time spent waiting for quota, for progress and benchmarks

    def acquire(self, units: float, *, bucket: str) -> None:
        limit = self.limits.get(bucket)
        if limit is None:
            return  # a bucket with no known limit is not paced
        while True:
            wait_s = self._try_reserve(units, bucket, limit)
            if wait_s <= 0:
                return
            self.waited_s += wait_s
            self.sleep(wait_s)

    def penalize(self, retry_after_s: float, *, bucket: str) -> None:
        until = self.clock() + dt.timedelta(seconds=max(retry_after_s, 0.0))
        with transaction(self.factory) as session:
            hold = session.get(QuotaHold, (self.account_id, bucket))
            if hold is None:
                session.add(QuotaHold(account_id=self.account_id, bucket=bucket, until=until))
            elif hold.until < until:
                hold.until = until

    def _try_reserve(self, units: float, bucket: str, limit: QuotaLimit) -> float:
        """Reserve `units` now if the window allows; else return seconds to wait first."""
        budget = limit.units * self.safety
        with transaction(self.factory) as session:
            now = self.clock()
            self._lock_account(session)
            hold = session.get(QuotaHold, (self.account_id, bucket))
            if hold is not None and hold.until > now:
                return (hold.until - now).total_seconds()
            since = now - dt.timedelta(seconds=limit.window_s + self._margin(limit))
            window = (
                QuotaReservation.account_id == self.account_id,
                QuotaReservation.bucket == bucket,
            )
            session.execute(delete(QuotaReservation).where(*window, QuotaReservation.at <= since))
            used = (
                session.scalar(
                    select(func.coalesce(func.sum(QuotaReservation.units), 0.0)).where(*window)
                )
                or 0.0
            )
            # A single request larger than the whole budget may go once the window is empty.
            if used + units <= budget or used == 0:
                session.add(
                    QuotaReservation(account_id=self.account_id, bucket=bucket, at=now, units=units)
                )
                return 0.0
            # Wait until enough of the oldest reservations leave the window.
            excess = used + units - budget
            freed = 0.0
            rows = session.execute(
                select(QuotaReservation.at, QuotaReservation.units)
                .where(*window)
                .order_by(QuotaReservation.at)
            )
            for at, spent in rows:
                freed += spent
                if freed >= excess:
                    return max((at - since).total_seconds(), 0.001)
            return limit.window_s + self._margin(limit)

    def _margin(self, limit: QuotaLimit) -> float:
        # A fixed margin would cost a short window most of its rate (3 s on Gmail's legacy
        # 250 units/s cut it to a quarter); past a fifth of the window, arrivals late by more
        # are rare enough for the provider's burst allowance and the 429 hold to absorb.
        return min(self.window_margin_s, limit.window_s * MAX_MARGIN_FRACTION)

    def _lock_account(self, session: Session) -> None:
        # Serialise reservers per account: a row lock where the database has them (an UPDATE
        # that matches no row, e.g. after a lost lease, locks nothing there), and the write
        # below, which takes SQLite's database lock. A sync waiting for quota also keeps its
        # lease alive.
        session.execute(
            select(ConnectedAccount.id)
            .where(ConnectedAccount.id == self.account_id)
            .with_for_update()
        )
        query = update(ConnectedAccount).where(ConnectedAccount.id == self.account_id)
        if self.lease_owner is None:
            session.execute(query.values(sync_lease_owner=ConnectedAccount.sync_lease_owner))
        else:
            expires = self.clock() + dt.timedelta(seconds=self.lease_s)
            session.execute(
                query.where(ConnectedAccount.sync_lease_owner == self.lease_owner).values(
                    sync_lease_expires_at=expires
                )
            )
