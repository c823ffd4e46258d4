"""The cross-process quota pacer: an exact sliding window per account and bucket."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

from core.db import make_engine, make_session_factory, transaction
from core.models import ConnectedAccount, Provider, User
from core.quota import DbPacer, QuotaLimit
from core.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
        self.slept = 0.0

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += dt.timedelta(seconds=seconds)


def _account(settings: Settings):  # type: ignore[no-untyped-def]
    factory = make_session_factory(make_engine(settings.effective_database_url))
    with transaction(factory) as session:
        account = ConnectedAccount(
            user=User(email="a@b.c"),
            provider=Provider.GOOGLE,
            provider_account_id="1",
            email="a@b.c",
        )
        session.add(account)
        session.flush()
        return factory, account.id


def test_the_2026_gmail_budget_buys_300_message_gets_a_minute_and_no_more(
    migrated_settings: Settings,
) -> None:
    factory, account_id = _account(migrated_settings)
    clock = Clock()
    pacer = DbPacer(
        factory,
        account_id=account_id,
        limits={"gmail": QuotaLimit(6000, 60.0)},
        safety=1.0,
        window_margin_s=0.0,
        clock=clock,
        sleep=clock.sleep,
    )
    start = clock.now
    sent: list[dt.datetime] = []
    for _ in range(60):  # 60 batches of 10 messages.get at 20 units = 12,000 units
        pacer.acquire(200, bucket="gmail")
        sent.append(clock.now)
    # Never more than 6,000 units in any 60 s window ...
    for i, t in enumerate(sent):
        in_window = sum(1 for u in sent[i:] if u < t + dt.timedelta(seconds=60))
        assert in_window * 200 <= 6000
    # ... and no time wasted: the second half waits exactly one window.
    assert (sent[-1] - start).total_seconds() == 60.0
    assert clock.slept == 60.0


def test_a_provider_hold_stops_every_process_for_that_bucket_only(
    migrated_settings: Settings,
) -> None:
    factory, account_id = _account(migrated_settings)
    clock = Clock()
    limits = {"gmail": QuotaLimit(6000, 60.0), "calendar": QuotaLimit(600, 60.0)}
    one = DbPacer(factory, account_id=account_id, limits=limits, clock=clock, sleep=clock.sleep)
    other = DbPacer(factory, account_id=account_id, limits=limits, clock=clock, sleep=clock.sleep)
    one.penalize(30.0, bucket="gmail")
    other.acquire(1, bucket="calendar")
    assert clock.slept == 0.0
    other.acquire(5, bucket="gmail")
    assert clock.slept == 30.0


def test_two_processes_share_one_budget(migrated_settings: Settings) -> None:
    """Threads stand in for processes: each has its own pacer, the database is the only link."""
    factory, account_id = _account(migrated_settings)
    limit = QuotaLimit(100, 3600.0)  # nothing leaves the window during the test
    admitted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        pacer = DbPacer(
            factory,
            account_id=account_id,
            limits={"gmail": limit},
            safety=1.0,
            sleep=lambda s: None,
        )
        for _ in range(40):
            if pacer._try_reserve(5, "gmail", limit) == 0:
                with lock:
                    admitted.append(5)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 100  # exactly the budget, however the workers interleave


def test_unknown_buckets_are_not_paced(migrated_settings: Settings) -> None:
    factory, account_id = _account(migrated_settings)
    clock = Clock()
    pacer = DbPacer(factory, account_id=account_id, limits={}, clock=clock, sleep=clock.sleep)
    pacer.acquire(10**9, bucket="anything")
    assert clock.slept == 0.0
    assert isinstance(account_id, uuid.UUID)


def test_the_arrival_margin_keeps_late_arriving_requests_inside_the_limit(
    migrated_settings: Settings,
) -> None:
    """A request admitted at t may reach the provider seconds later (a batch's last part)."""
    factory, account_id = _account(migrated_settings)
    clock = Clock()
    pacer = DbPacer(
        factory,
        account_id=account_id,
        limits={"gmail": QuotaLimit(6000, 60.0)},
        window_margin_s=3.0,
        clock=clock,
        sleep=clock.sleep,
    )
    admitted = []
    for _ in range(60):
        pacer.acquire(1000, bucket="gmail")
        admitted.append(clock.now)
    # Even if each request arrives up to 3 s after admission, no 60 s window sees over 6,000.
    for i, t in enumerate(admitted):
        late_window_end = t + dt.timedelta(seconds=60 + 3)
        assert sum(1 for u in admitted[i:] if u < late_window_end) * 1000 <= 6000


def test_a_short_window_keeps_most_of_its_rate(migrated_settings: Settings) -> None:
    """Gmail's legacy 250 units/s: a 3 s margin must not cut it to a quarter (62 units/s)."""
    factory, account_id = _account(migrated_settings)
    clock = Clock()
    pacer = DbPacer(
        factory,
        account_id=account_id,
        limits={"gmail": QuotaLimit(250, 1.0)},
        window_margin_s=3.0,
        clock=clock,
        sleep=clock.sleep,
    )
    start = clock.now
    for _ in range(40):  # 40 batches of 50 messages.get at 5 units
        pacer.acquire(250, bucket="gmail")
    elapsed = (clock.now - start).total_seconds()
    assert 39 * 1.0 <= elapsed <= 39 * 1.2 + 0.01  # the window plus at most a fifth of it
