"""Controls: sliding quota windows, concurrency caps, Retry-After, costs, faults, latency.

Pure in-process tests with an injected clock and sleep: nothing here waits on real time.
"""

from __future__ import annotations

import random
import threading
from contextlib import ExitStack

import pytest

from sandbox.controls import Controls
from sandbox.errors import DropConnection, GoogleError, GraphError, OAuthError

BOX = "ada@sandbox-gmail.test"
OUT = "grace@sandbox-outlook.test"


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def controls(clock: FakeClock, sleeps: list[float]) -> Controls:
    return Controls(clock=clock, sleep=sleeps.append, rng=random.Random(7))


def run(controls: Controls, n: int, *, service: str = "gmail", mailbox: str = BOX,
        method: str = "messages.get", units: int | None = None) -> int:  # fmt: skip
    """Make up to n calls; return how many were admitted before the first refusal."""
    for i in range(n):
        try:
            with controls.call(service=service, mailbox=mailbox, method=method, units=units):
                pass
        except (GoogleError, GraphError):
            return i
    return n


# -- Gmail quota windows ------------------------------------------------------------------------


def test_2026_profile_buys_300_messages_get_in_the_first_minute(controls: Controls) -> None:
    assert run(controls, 400) == 300
    counts = controls.counters(BOX)[("gmail", "messages.get")]
    assert counts == {"requests": 300, "units": 6000, "rejected": 1, "faults": 0}


def test_quota_refusal_is_the_real_429_body(controls: Controls) -> None:
    run(controls, 300)
    with pytest.raises(GoogleError) as info:
        run_one(controls)
    body = info.value.to_dict()["error"]
    assert info.value.code == 429
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert body["errors"][0]["reason"] == "rateLimitExceeded"
    assert body["errors"][0]["domain"] == "usageLimits"


def run_one(controls: Controls, **kwargs: object) -> None:
    params = {"service": "gmail", "mailbox": BOX, "method": "messages.get", **kwargs}
    with controls.call(**params):  # type: ignore[arg-type]
        pass


def test_window_slides_exactly(controls: Controls, clock: FakeClock) -> None:
    assert run(controls, 100) == 100  # t=0: 2,000 units
    clock.now += 30
    assert run(controls, 250) == 200  # t=30: 4,000 more, then full
    clock.now += 29.999
    assert run(controls, 1) == 0  # t=59.999: the t=0 calls are still inside the window
    clock.now += 0.001
    assert run(controls, 150) == 100  # t=60: exactly the 2,000 units of t=0 left the window
    clock.now += 30
    assert run(controls, 250) == 200  # t=90: the t=30 calls left


def test_no_sixty_second_span_exceeds_the_limit_under_steady_load(
    controls: Controls, clock: FakeClock
) -> None:
    admitted: list[float] = []
    for _ in range(3000):  # one attempt every 0.1 s for 300 s
        try:
            run_one(controls)
            admitted.append(clock.now)
        except GoogleError:
            pass
        clock.now += 0.1
    for i, t in enumerate(admitted):
        inside = [u for u in admitted[i:] if u < t + 60]
        assert len(inside) * 20 <= 6000
    assert len(admitted) >= 5 * 300 - 1  # and the budget is actually used


def test_legacy_profile_and_per_mailbox_override(controls: Controls) -> None:
    controls.set_quota_profile("legacy", mailbox=BOX)
    assert run(controls, 3100) == 3000  # 15,000 units / 5
    assert run(controls, 400, mailbox="other@sandbox-gmail.test") == 300  # still 2026


def test_cost_tables_are_editable(controls: Controls) -> None:
    controls.set_cost("2026", "messages.get", 40)
    assert run(controls, 200) == 150
    assert run(controls, 10, method="history.list") == 0  # the window is full for every method
    controls.reset_windows()
    assert run(controls, 3001, method="history.list") == 3000  # 2 units each


def test_explicit_units_override_the_table(controls: Controls) -> None:
    assert run(controls, 10, units=1000) == 6


def test_threads_get_costs_40_under_2026(controls: Controls) -> None:
    assert run(controls, 200, method="threads.get") == 150


def test_unknown_method_costs_one_unit(controls: Controls) -> None:
    run_one(controls, method="labels.create")
    assert controls.counters()[("gmail", "labels.create")]["units"] == 1


def test_rejected_calls_charge_nothing(controls: Controls, clock: FakeClock) -> None:
    run(controls, 300)
    for _ in range(50):
        with pytest.raises(GoogleError):
            run_one(controls)
    clock.now += 60
    assert run(controls, 400) == 300  # the refusals did not eat into the next window


def test_quotas_can_be_disabled(controls: Controls) -> None:
    controls.configure(enabled=False)
    assert run(controls, 1000) == 1000


def test_google_quota_status_403(controls: Controls) -> None:
    controls.configure(google_quota_status=403)
    run(controls, 300)
    with pytest.raises(GoogleError) as info:
        run_one(controls)
    assert info.value.code == 403
    assert info.value.reason == "userRateLimitExceeded"
    assert info.value.domain == "usageLimits"


# -- Calendar and Graph ------------------------------------------------------------------------


def test_calendar_600_requests_per_minute(controls: Controls, clock: FakeClock) -> None:
    assert run(controls, 700, service="calendar", method="events.list") == 600
    clock.now += 60
    assert run(controls, 1, service="calendar", method="events.list") == 1


def test_graph_10k_per_10_minutes_with_retry_after_from_the_window(
    controls: Controls, clock: FakeClock
) -> None:
    assert run(controls, 5000, service="graph", mailbox=OUT, method="messages.delta") == 5000
    clock.now += 100
    assert run(controls, 6000, service="graph", mailbox=OUT, method="messages.delta") == 5000
    clock.now += 100  # t=200: the t=0 requests leave at t=600
    with pytest.raises(GraphError) as info:
        run_one(controls, service="graph", mailbox=OUT, method="messages.delta")
    assert info.value.status == 429
    assert info.value.code == "TooManyRequests"
    assert info.value.headers["Retry-After"] == "400"
    clock.now += 399.5
    with pytest.raises(GraphError) as info:
        run_one(controls, service="graph", mailbox=OUT, method="messages.delta")
    assert info.value.headers["Retry-After"] == "1"  # rounded up, never 0
    clock.now += 0.5
    run_one(controls, service="graph", mailbox=OUT, method="messages.delta")


def test_graph_four_concurrent_per_mailbox(controls: Controls) -> None:
    with ExitStack() as stack:
        for _ in range(4):
            stack.enter_context(controls.call(service="graph", mailbox=OUT, method="me"))
        with pytest.raises(GraphError) as info:
            run_one(controls, service="graph", mailbox=OUT, method="me")
        assert info.value.status == 429
        assert info.value.headers["Retry-After"] == "1"
        run_one(controls, service="graph", mailbox="other@sandbox-outlook.test", method="me")
    run_one(controls, service="graph", mailbox=OUT, method="me")
    assert controls.in_flight("graph", OUT) == 0


# -- Gmail concurrency --------------------------------------------------------------------------


def test_gmail_concurrency_cap(controls: Controls) -> None:
    with ExitStack() as stack:
        for _ in range(50):
            stack.enter_context(controls.call(service="gmail", mailbox=BOX, method="getProfile"))
        with pytest.raises(GoogleError) as info:
            run_one(controls)
        assert info.value.code == 429
        assert info.value.message == "Too many concurrent requests for user"
    assert controls.in_flight("gmail", BOX) == 0
    run_one(controls)


def test_a_failing_view_releases_its_slot(controls: Controls) -> None:
    with pytest.raises(RuntimeError), controls.call(service="gmail", mailbox=BOX, method="x"):
        raise RuntimeError("view failed")
    assert controls.in_flight("gmail", BOX) == 0


def test_gmail_batch_parts_count_as_concurrent(controls: Controls) -> None:
    outcomes: list[bool] = []
    with controls.batch(service="gmail", mailbox=BOX, parts=60):
        assert controls.in_flight("gmail", BOX) == 60
        for _ in range(60):
            try:
                run_one(controls)
                outcomes.append(True)
            except GoogleError as exc:
                outcomes.append(exc.message != "Too many concurrent requests for user")
    assert outcomes == [True] * 50 + [False] * 10
    assert controls.in_flight("gmail", BOX) == 0


def test_gmail_batch_counts_requests_already_in_flight(controls: Controls) -> None:
    with controls.call(service="gmail", mailbox=BOX, method="getProfile"):
        with controls.batch(service="gmail", mailbox=BOX, parts=50):
            assert run(controls, 50) == 49
        # while a batch holds its slots a plain request is refused
        with controls.batch(service="gmail", mailbox=BOX, parts=49), pytest.raises(GoogleError):
            threading_call(controls)


def threading_call(controls: Controls) -> None:
    """Make one call on another thread (outside this thread's batch scope); re-raise its error."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_one(controls)
        except BaseException as exc:  # handed back to the test thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_graph_batch_parts_skip_the_concurrency_cap(controls: Controls) -> None:
    with controls.batch(service="graph", mailbox=OUT, parts=20):
        assert run(controls, 20, service="graph", mailbox=OUT, method="messages.get") == 20
    assert controls.counters(OUT)[("graph", "messages.get")]["requests"] == 20


def test_batch_pays_latency_once(controls: Controls, sleeps: list[float]) -> None:
    controls.set_latency(50)
    with controls.batch(service="gmail", mailbox=BOX, parts=10):
        run(controls, 10)
    assert sleeps == [0.05]


def test_calls_are_thread_safe(controls: Controls) -> None:
    controls.configure(enabled=False)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(500):
            run_one(controls)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = controls.counters()[("gmail", "messages.get")]
    assert counts["requests"] == 4000
    assert counts["units"] == 80_000
    assert controls.in_flight("gmail", BOX) == 0


def test_concurrent_admission_never_exceeds_the_window(controls: Controls) -> None:
    barrier = threading.Barrier(8)
    admitted = [0] * 8

    def worker(i: int) -> None:
        barrier.wait()
        admitted[i] = run(controls, 100)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert controls.counters()[("gmail", "messages.get")]["units"] == 6000


# -- faults and latency -------------------------------------------------------------------------


def test_fail_next_is_deterministic_and_targeted(controls: Controls) -> None:
    controls.fail_next("503", count=2, mailbox=BOX, method="messages.get")
    run_one(controls, method="messages.list")  # other method: unaffected
    run_one(controls, mailbox="bob@sandbox-gmail.test")  # other mailbox: unaffected
    for _ in range(2):
        with pytest.raises(GoogleError) as info:
            run_one(controls)
        assert info.value.code == 503
        assert info.value.status == "UNAVAILABLE"
    run_one(controls)
    counts = controls.counters(BOX)[("gmail", "messages.get")]
    assert counts == {"requests": 1, "units": 20, "rejected": 0, "faults": 2}


def test_fail_next_glob_and_exception_instances(controls: Controls) -> None:
    controls.fail_next(GoogleError.not_found(), method="messages.*")
    with pytest.raises(GoogleError) as info:
        run_one(controls, method="messages.list")
    assert info.value.code == 404


@pytest.mark.parametrize(
    ("service", "kind", "expected"),
    [
        ("gmail", "429", (GoogleError, 429)),
        ("gmail", "500", (GoogleError, 500)),
        ("calendar", "503", (GoogleError, 503)),
        ("graph", "429", (GraphError, 429)),
        ("graph", "500", (GraphError, 500)),
        ("graph", "503", (GraphError, 503)),
        ("oauth", "503", (OAuthError, 503)),
    ],
)
def test_fault_kinds_raise_the_family_error(
    controls: Controls, service: str, kind: str, expected: tuple[type[Exception], int]
) -> None:
    controls.fail_next(kind, service=service)
    with pytest.raises(expected[0]) as info:
        run_one(controls, service=service, method="m")
    err = info.value
    assert getattr(err, "code", None) == expected[1] or getattr(err, "status", None) == expected[1]
    if service == "graph" and kind in ("429", "503"):
        assert isinstance(err, GraphError)
        assert err.headers["Retry-After"] == "1"


def test_drop_and_slow(controls: Controls, sleeps: list[float]) -> None:
    controls.configure(slow_s=3.5)
    controls.fail_next("drop")
    controls.fail_next("slow")
    with pytest.raises(DropConnection):
        run_one(controls)
    run_one(controls)  # slow: sleeps past the client's timeout, then answers
    assert sleeps == [3.5]


def test_random_fault_rates(controls: Controls) -> None:
    controls.set_faults({"500": 0.25, "503": 0.25})
    failures = 0
    for _ in range(1000):
        try:
            run_one(controls, service="calendar", method="events.list")
        except GoogleError:
            failures += 1
        controls.reset_windows()
    assert 400 < failures < 600
    assert controls.counters()[("calendar", "events.list")]["faults"] == failures


def test_fault_services_filter(controls: Controls) -> None:
    controls.configure(faults={"500": 1.0}, fault_services=["graph"])
    run_one(controls)
    with pytest.raises(GraphError):
        run_one(controls, service="graph", mailbox=OUT, method="me")


def test_latency_fixed_plus_jitter(controls: Controls, sleeps: list[float]) -> None:
    controls.set_latency(100, 50)
    controls.set_latency(10, mailbox=OUT)
    run(controls, 20)
    assert len(sleeps) == 20
    assert all(0.1 <= s <= 0.15 for s in sleeps)
    assert len(set(sleeps)) > 1
    sleeps.clear()
    run_one(controls, service="graph", mailbox=OUT, method="me")
    assert sleeps == [0.01]


def test_bad_settings_are_refused(controls: Controls) -> None:
    with pytest.raises(ValueError, match="unknown control"):
        controls.configure(latencyms=3)
    with pytest.raises(ValueError, match="gmail_profile"):
        controls.configure(gmail_profile="2027")
    with pytest.raises(ValueError, match="add up"):
        controls.set_faults({"500": 0.7, "503": 0.7})
    with pytest.raises(ValueError, match="unknown fault"):
        controls.fail_next("teapot")


def test_reset_restores_defaults(controls: Controls) -> None:
    run(controls, 3)
    controls.configure(gmail_profile="legacy", latency_ms=5, faults={"500": 1.0})
    controls.fail_next("drop")
    controls.reset()
    assert controls.settings()["gmail_profile"] == "2026"
    assert controls.snapshot()["pending_faults"] == []
    assert controls.counters() == {}
    assert run(controls, 400) == 300
