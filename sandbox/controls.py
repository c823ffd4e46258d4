"""Quotas, concurrency caps, latency, injected faults and counters for every sandbox API call.

Every API view wraps its work in

    with state.controls.call(service="gmail", mailbox=email, method="messages.get"):
        ...

which, in order: sleeps the configured latency (fixed RTT + uniform jitter), applies an injected
fault (a queued deterministic one first, then the configured random rates), enforces the
concurrency cap and the sliding quota window, and counts the call. A refusal raises the provider's
own error (`GoogleError`, `GraphError`, `OAuthError`; see errors.py); refused calls are counted as
`rejected` and charge no units. Injected faults are counted as `faults` and charge nothing either.

Provider facts (PROVIDERS.md §1.1, §2, §4):

- Gmail, profile `2026` (default): 6,000 units per user per minute; messages.get 20, threads.get
  40, messages.list 5, threads.list 10, history.list 2
  (https://developers.google.com/workspace/gmail/api/reference/quota; per-method costs from
  https://developer.nylas.com/docs/cookbook/email/gmail-api-quotas/ — secondary).
- Gmail, profile `legacy`: 15,000 units per user per minute (the older "250 units/s moving
  average"); messages.get 5, threads.get 10 (https://developers.google.com/gmail/api/reference/quota).
- Gmail per-user concurrency: undocumented; 429 "Too many concurrent requests for user"; batch
  parts count as concurrent requests (PROVIDERS.md §1.1). Default cap 50.
- Calendar: 600 requests per user per minute, sliding window
  (https://developers.google.com/workspace/calendar/api/guides/quota).
- Graph (Outlook): 10,000 requests per 10 minutes and 4 concurrent requests per app per mailbox;
  429 + Retry-After seconds (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits).

Invariants:
- Windows are exact sliding windows: a deque of (t, units) per (bucket, mailbox); a call is
  admitted iff the units inside (now - window, now] plus its own fit the limit. So under `2026`
  any 60 s holds at most 6,000 units, i.e. 300 messages.get.
- Graph's Retry-After is the time until enough of the oldest entries leave the window for the
  refused call to fit (rounded up, at least 1 s).
- Everything that reads or writes shared state holds `self._lock`; sleeps happen outside it.
- The clock (`time.monotonic`), the sleep function and the random source are injectable.
- Settings resolve per key: a mailbox override if set, else the global value.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import DropConnection, GoogleError, GraphError, OAuthError

FAULT_KINDS = ("429", "500", "503", "slow", "drop")

# Which error family renders a service's refusals.
_FAMILY = {
    "gmail": "google",
    "calendar": "google",
    "oauth": "oauth",
    "google_oauth": "oauth",
    "identity": "oauth",
    "graph": "graph",
}

LEGACY_COSTS: dict[str, int] = {
    # https://developers.google.com/gmail/api/reference/quota
    # (threads.*, watch, stop: PROVIDERS.md §1.1)
    "getProfile": 1,
    "labels.list": 1,
    "labels.get": 1,
    "sendAs.list": 1,
    "settings.sendAs.list": 1,
    "history.list": 2,
    "messages.list": 5,
    "messages.get": 5,
    "messages.modify": 5,
    "messages.batchModify": 50,
    "threads.list": 10,
    "threads.get": 10,
    "watch": 100,
    "stop": 50,
}
GMAIL_2026_COSTS: dict[str, int] = {
    **LEGACY_COSTS,
    # PROVIDERS.md §1.1 (secondary sources; the official 2026 table was not seen)
    "messages.get": 20,
    "threads.get": 40,
}


@dataclass
class QuotaProfile:
    """A Gmail per-user quota: `limit` units in any `window_s` seconds, costs per method."""

    name: str
    limit: int
    window_s: float
    costs: dict[str, int]
    default_cost: int = 1

    def cost(self, method: str) -> int:
        """Return the units `method` costs under this profile."""
        return self.costs.get(method, self.default_cost)


def default_profiles() -> dict[str, QuotaProfile]:
    """Return fresh copies of the built-in Gmail quota profiles."""
    return {
        "legacy": QuotaProfile("legacy", 15_000, 60.0, dict(LEGACY_COSTS)),
        "2026": QuotaProfile("2026", 6_000, 60.0, dict(GMAIL_2026_COSTS)),
    }


DEFAULT_SETTINGS: dict[str, Any] = {
    "enabled": True,  # quotas and caps on; latency and faults apply either way
    "gmail_profile": "2026",
    "gmail_concurrency": 50,
    "calendar_limit": 600,
    "calendar_window_s": 60.0,
    "graph_limit": 10_000,
    "graph_window_s": 600.0,
    "graph_concurrency": 4,
    # Google answers per-user quota with 429 rateLimitExceeded or 403 userRateLimitExceeded
    "google_quota_status": 429,
    "latency_ms": 0.0,  # fixed round-trip time added to every call
    "jitter_ms": 0.0,  # plus uniform(0, jitter_ms)
    "faults": {},  # {kind: probability}, kinds in FAULT_KINDS
    "fault_services": None,  # None = every service; else a list of service names
    "slow_s": 65.0,  # "slow" sleeps this long: past google-api-python-client's 60 s default
    "retry_after_s": 1,  # Retry-After on injected Graph 429/503
}


@dataclass
class _Window:
    """An exact sliding window of (monotonic time, units)."""

    entries: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def prune(self, now: float, window_s: float) -> None:
        cutoff = now - window_s
        while self.entries and self.entries[0][0] <= cutoff:
            self.total -= self.entries.popleft()[1]

    def add(self, now: float, units: int) -> None:
        self.entries.append((now, units))
        self.total += units

    def wait_s(self, now: float, window_s: float, limit: int, units: int) -> float:
        """Seconds until `units` more fit, assuming no other traffic (0 if they fit now)."""
        excess = self.total + units - limit
        if excess <= 0:
            return 0.0
        freed = 0
        for t, u in self.entries:
            freed += u
            if freed >= excess:
                return max(0.0, t + window_s - now)
        return window_s  # a single call larger than the limit never fits; say "a window"


@dataclass
class _Rule:
    """A deterministic fault: the next `count` matching calls fail with `fault`."""

    fault: str | Exception
    count: int
    service: str | None
    mailbox: str | None
    method: str | None

    def matches(self, service: str, mailbox: str | None, method: str) -> bool:
        return (
            (self.service is None or self.service == service)
            and (self.mailbox is None or self.mailbox == mailbox)
            and (self.method is None or fnmatch.fnmatchcase(method, self.method))
        )


@dataclass
class _BatchScope:
    """Concurrency slots a batch holds for its parts (thread-local while the batch runs)."""

    service: str
    mailbox: str | None
    reserved: int  # slots held for the whole batch (Gmail: one per part)
    others: int  # requests of this user already in flight when the batch arrived
    index: int = 0


class Controls:
    """Thread-safe gate every sandbox API request passes through."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._lock = threading.RLock()
        self._local = threading.local()
        self.reset()

    # -- configuration ------------------------------------------------------------------------

    def reset(self) -> None:
        """Restore default settings and profiles; clear overrides, windows, faults, counters."""
        with self._lock:
            self._settings: dict[str, Any] = copy.deepcopy(DEFAULT_SETTINGS)
            self._overrides: dict[str, dict[str, Any]] = {}
            self.profiles: dict[str, QuotaProfile] = default_profiles()
            self._rules: list[_Rule] = []
            self._windows: dict[tuple[str, str | None], _Window] = {}
            self._in_flight: dict[tuple[str, str | None], int] = {}
            self._counters: dict[tuple[str | None, str, str], dict[str, int]] = {}

    def configure(self, mailbox: str | None = None, **settings: Any) -> None:
        """Set settings globally, or as overrides for one mailbox (keys of DEFAULT_SETTINGS).

        >>> controls.configure(gmail_profile="legacy", latency_ms=40, jitter_ms=10)
        >>> controls.configure("ada@example.com", faults={"503": 0.2})
        """
        clean = {key: _validate(key, value, self.profiles) for key, value in settings.items()}
        with self._lock:
            if mailbox is None:
                self._settings.update(clean)
            else:
                self._overrides.setdefault(mailbox.lower(), {}).update(clean)

    def clear_overrides(self, mailbox: str | None = None) -> None:
        """Drop one mailbox's overrides (or every mailbox's)."""
        with self._lock:
            if mailbox is None:
                self._overrides.clear()
            else:
                self._overrides.pop(mailbox.lower(), None)

    def settings(self, mailbox: str | None = None) -> dict[str, Any]:
        """Return the effective settings for `mailbox` (globals when None)."""
        with self._lock:
            return self._effective(_norm(mailbox))

    def set_latency(
        self, latency_ms: float, jitter_ms: float = 0.0, *, mailbox: str | None = None
    ) -> None:
        """Add `latency_ms` + uniform(0, `jitter_ms`) to each call (globally or for a mailbox)."""
        self.configure(mailbox, latency_ms=latency_ms, jitter_ms=jitter_ms)

    def set_faults(self, rates: dict[str, float], *, mailbox: str | None = None) -> None:
        """Set the random fault rates, e.g. {"429": 0.05, "drop": 0.01}."""
        self.configure(mailbox, faults=rates)

    def set_quota_profile(self, name: str, *, mailbox: str | None = None) -> None:
        """Select the Gmail quota profile ("2026" or "legacy" or one added to `profiles`)."""
        self.configure(mailbox, gmail_profile=name)

    def set_cost(self, profile: str, method: str, units: int) -> None:
        """Change what `method` costs under a Gmail profile."""
        with self._lock:
            self.profiles[profile].costs[method] = int(units)

    def fail_next(
        self,
        fault: str | int | Exception,
        *,
        count: int = 1,
        service: str | None = None,
        mailbox: str | None = None,
        method: str | None = None,
    ) -> None:
        """Make the next `count` matching calls fail with `fault`.

        `fault` is a kind of FAULT_KINDS (or 429/500/503), or an exception to raise as is
        (e.g. `GoogleError.not_found()`). None filters match anything; `method` is a glob.
        Rules are consulted in the order they were added.
        """
        if isinstance(fault, int):
            fault = str(fault)
        if isinstance(fault, str) and fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(_Rule(fault, count, service, _norm(mailbox), method))

    def clear_faults(self) -> None:
        """Drop queued deterministic faults and zero the random fault rates everywhere."""
        with self._lock:
            self._rules.clear()
            self._settings["faults"] = {}
            for override in self._overrides.values():
                override.pop("faults", None)

    # -- counters -----------------------------------------------------------------------------

    def counters(self, mailbox: str | None = None) -> dict[tuple[str, str], dict[str, int]]:
        """Return {(service, method): {requests, units, rejected, faults}}, one mailbox or all."""
        wanted = _norm(mailbox)
        out: dict[tuple[str, str], dict[str, int]] = {}
        with self._lock:
            for (mbox, service, method), counts in self._counters.items():
                if wanted is not None and mbox != wanted:
                    continue
                total = out.setdefault((service, method), _zero())
                for key, value in counts.items():
                    total[key] += value
        return out

    def reset_counters(self) -> None:
        """Zero every counter (quota windows are kept)."""
        with self._lock:
            self._counters.clear()

    def reset_windows(self) -> None:
        """Forget the quota windows (as if the last window had passed)."""
        with self._lock:
            self._windows.clear()

    def in_flight(self, service: str, mailbox: str | None) -> int:
        """Return how many calls of this service/mailbox are running now."""
        with self._lock:
            return self._in_flight.get((_bucket(service), _norm(mailbox)), 0)

    def snapshot(self) -> dict[str, Any]:
        """Return settings, overrides, profiles and queued faults as JSON-ready data."""
        with self._lock:
            return {
                "settings": copy.deepcopy(self._settings),
                "mailboxes": copy.deepcopy(self._overrides),
                "profiles": {
                    name: {"limit": p.limit, "window_s": p.window_s, "costs": dict(p.costs)}
                    for name, p in self.profiles.items()
                },
                "pending_faults": [
                    {
                        "fault": r.fault if isinstance(r.fault, str) else repr(r.fault),
                        "count": r.count,
                        "service": r.service,
                        "mailbox": r.mailbox,
                        "method": r.method,
                    }
                    for r in self._rules
                ],
            }

    # -- the gate -----------------------------------------------------------------------------

    def call(
        self,
        *,
        service: str,
        mailbox: str | None,
        method: str,
        units: int | None = None,
    ) -> _Call:
        """Return a context manager that admits (or refuses) one API call; see module doc."""
        return _Call(self, service, _norm(mailbox), method, units)

    @contextmanager
    def batch(self, *, service: str, mailbox: str | None, parts: int) -> Iterator[None]:
        """Hold a batch envelope open; `call()`s for its parts on this thread run inside it.

        The envelope pays the latency once and can be faulted (method "batch"); its parts then
        skip latency. Gmail: the batch takes one concurrency slot per part for its whole life and
        part i (from 1) is refused with 429 "Too many concurrent requests" when the requests
        already in flight plus i exceed the cap — so a 100-part batch under a cap of 50 sees its
        last 50 parts refused. Graph: parts skip the mailbox concurrency check (Graph itself runs
        at most 4 at a time; PROVIDERS.md §4) but each still counts against the 10-minute window.
        """
        mailbox = _norm(mailbox)
        with self._lock:
            cfg = self._effective(mailbox)
        self._apply_latency(cfg)
        self._apply_fault(service, mailbox, "batch", cfg)
        key = (_bucket(service), mailbox)
        reserved = parts if service == "gmail" else 0
        with self._lock:
            others = self._in_flight.get(key, 0)
            self._in_flight[key] = others + reserved
            self._count(mailbox, service, "batch", "requests")
        scopes: dict[tuple[str, str | None], _BatchScope] = self._scopes()
        previous = scopes.get(key)
        scopes[key] = _BatchScope(service, mailbox, reserved, others)
        try:
            yield
        finally:
            if previous is None:
                scopes.pop(key, None)
            else:
                scopes[key] = previous
            with self._lock:
                self._in_flight[key] = self._in_flight.get(key, 0) - reserved

    # -- internals ----------------------------------------------------------------------------

    def _scopes(self) -> dict[tuple[str, str | None], _BatchScope]:
        scopes = getattr(self._local, "scopes", None)
        if scopes is None:
            scopes = self._local.scopes = {}
        return scopes  # type: ignore[no-any-return]

    def _effective(self, mailbox: str | None) -> dict[str, Any]:
        cfg = dict(self._settings)
        if mailbox is not None and mailbox in self._overrides:
            cfg.update(self._overrides[mailbox])
        return cfg

    def _count(self, mailbox: str | None, service: str, method: str, what: str, n: int = 1) -> None:
        counts = self._counters.setdefault((mailbox, service, method), _zero())
        counts[what] += n

    def _apply_latency(self, cfg: dict[str, Any]) -> None:
        delay_ms = float(cfg["latency_ms"])
        jitter_ms = float(cfg["jitter_ms"])
        if jitter_ms > 0:
            with self._lock:
                delay_ms += self.rng.uniform(0.0, jitter_ms)
        if delay_ms > 0:
            self.sleep(delay_ms / 1000.0)

    def _pick_fault(
        self, service: str, mailbox: str | None, method: str, cfg: dict[str, Any]
    ) -> str | Exception | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(service, mailbox, method):
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                    self._count(mailbox, service, method, "faults")
                    return rule.fault
            rates: dict[str, float] = cfg["faults"]
            only = cfg["fault_services"]
            if not rates or (only is not None and service not in only):
                return None
            roll = self.rng.random()
            edge = 0.0
            for kind in FAULT_KINDS:
                edge += float(rates.get(kind, 0.0))
                if roll < edge:
                    self._count(mailbox, service, method, "faults")
                    return kind
        return None

    def _apply_fault(
        self, service: str, mailbox: str | None, method: str, cfg: dict[str, Any]
    ) -> None:
        fault = self._pick_fault(service, mailbox, method, cfg)
        if fault is None:
            return
        if isinstance(fault, Exception):
            raise fault
        if fault == "slow":
            # Sleep past the client's timeout, then carry on: the client has given up, so the
            # late answer is written to a closed socket (werkzeug ignores that).
            self.sleep(float(cfg["slow_s"]))
            return
        if fault == "drop":
            raise DropConnection()
        raise _fault_error(service, int(fault), int(cfg["retry_after_s"]), cfg)

    def _admit(self, call: _Call, cfg: dict[str, Any]) -> None:
        """Enforce caps and windows, then record the call; raises the provider's 429."""
        service, mailbox, method = call.service, call.mailbox, call.method
        bucket = _bucket(service)
        key = (bucket, mailbox)
        scope = self._scopes().get(key)
        enabled = bool(cfg["enabled"])
        with self._lock:
            units = call.units
            if units is None:
                units = self._default_units(service, method, cfg)
            # concurrency
            cap = _concurrency_cap(service, cfg)
            if scope is not None:
                scope.index += 1
                if (
                    enabled
                    and cap is not None
                    and scope.reserved
                    and scope.others + scope.index > cap
                ):
                    self._count(mailbox, service, method, "rejected")
                    raise _concurrency_error(service)
            elif enabled and cap is not None and self._in_flight.get(key, 0) >= cap:
                self._count(mailbox, service, method, "rejected")
                raise _concurrency_error(service)
            # sliding window
            window = _window_spec(service, cfg, self.profiles)
            if enabled and window is not None:
                limit, window_s = window
                now = self.clock()
                win = self._windows.setdefault(key, _Window())
                win.prune(now, window_s)
                if win.total + units > limit:
                    wait = win.wait_s(now, window_s, limit, units)
                    self._count(mailbox, service, method, "rejected")
                    raise _quota_error(service, wait, cfg)
                win.add(now, units)
            elif window is not None:
                # quotas off: still remember the traffic so turning them on is not a clean slate
                now = self.clock()
                win = self._windows.setdefault(key, _Window())
                win.prune(now, window[1])
                win.add(now, units)
            if scope is None:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
                call.holds_slot = True
            self._count(mailbox, service, method, "requests")
            self._count(mailbox, service, method, "units", units)

    def _default_units(self, service: str, method: str, cfg: dict[str, Any]) -> int:
        if service == "gmail":
            return self.profiles[cfg["gmail_profile"]].cost(method)
        return 1  # Calendar and Graph count requests, not units

    def _release(self, call: _Call) -> None:
        if not call.holds_slot:
            return
        key = (_bucket(call.service), call.mailbox)
        with self._lock:
            self._in_flight[key] = self._in_flight.get(key, 0) - 1
        call.holds_slot = False


class _Call:
    """Context manager returned by `Controls.call`."""

    def __init__(
        self, controls: Controls, service: str, mailbox: str | None, method: str, units: int | None
    ) -> None:
        self.controls = controls
        self.service = service
        self.mailbox = mailbox
        self.method = method
        self.units = units
        self.holds_slot = False

    def __enter__(self) -> _Call:
        c = self.controls
        with c._lock:
            cfg = c._effective(self.mailbox)
        in_batch = (_bucket(self.service), self.mailbox) in c._scopes()
        if not in_batch:
            c._apply_latency(cfg)
        c._apply_fault(self.service, self.mailbox, self.method, cfg)
        c._admit(self, cfg)
        return self

    def __exit__(self, *exc: object) -> None:
        self.controls._release(self)


# -- helpers ----------------------------------------------------------------------------------


def _norm(mailbox: str | None) -> str | None:
    return mailbox.lower() if mailbox else None


def _zero() -> dict[str, int]:
    return {"requests": 0, "units": 0, "rejected": 0, "faults": 0}


def _bucket(service: str) -> str:
    # Google's and Microsoft's token endpoints share nothing with the mail APIs' budgets.
    return service


def _concurrency_cap(service: str, cfg: dict[str, Any]) -> int | None:
    if service == "gmail":
        return int(cfg["gmail_concurrency"])
    if service == "graph":
        return int(cfg["graph_concurrency"])
    return None


def _window_spec(
    service: str, cfg: dict[str, Any], profiles: dict[str, QuotaProfile]
) -> tuple[int, float] | None:
    if service == "gmail":
        profile = profiles[cfg["gmail_profile"]]
        return profile.limit, profile.window_s
    if service == "calendar":
        return int(cfg["calendar_limit"]), float(cfg["calendar_window_s"])
    if service == "graph":
        return int(cfg["graph_limit"]), float(cfg["graph_window_s"])
    return None


def _concurrency_error(service: str) -> Exception:
    if _FAMILY.get(service, "google") == "graph":
        return GraphError.mailbox_concurrency(1)
    return GoogleError.too_many_concurrent()


def _quota_error(service: str, wait_s: float, cfg: dict[str, Any]) -> Exception:
    if _FAMILY.get(service, "google") == "graph":
        return GraphError.too_many_requests(max(1, math.ceil(wait_s)))
    return GoogleError.rate_limited(service=service, status_code=int(cfg["google_quota_status"]))


def _fault_error(service: str, status: int, retry_after_s: int, cfg: dict[str, Any]) -> Exception:
    family = _FAMILY.get(service, "google")
    if family == "graph":
        if status == 429:
            return GraphError.too_many_requests(retry_after_s)
        if status == 503:
            return GraphError.service_unavailable(retry_after_s)
        return GraphError.internal()
    if family == "oauth":
        if status == 500:
            return OAuthError("server_error", "The server encountered an unexpected error.", 500)
        return OAuthError(
            "temporarily_unavailable", "The server is temporarily unavailable.", status
        )
    if status == 429:
        return GoogleError.rate_limited(service=service, status_code=429)
    if status == 503:
        return GoogleError.unavailable()
    return GoogleError.backend_error()


def _validate(key: str, value: Any, profiles: dict[str, QuotaProfile]) -> Any:
    """Check one setting; raise ValueError with a message fit for a 400 answer."""
    if key not in DEFAULT_SETTINGS:
        raise ValueError(f"unknown control {key!r}; known: {sorted(DEFAULT_SETTINGS)}")
    if key == "enabled":
        if not isinstance(value, bool):
            raise ValueError("enabled must be true or false")
        return value
    if key == "gmail_profile":
        if value not in profiles:
            raise ValueError(f"gmail_profile must be one of {sorted(profiles)}")
        return value
    if key == "google_quota_status":
        if value not in (403, 429):
            raise ValueError("google_quota_status must be 403 or 429")
        return value
    if key == "faults":
        if not isinstance(value, dict):
            raise ValueError("faults must be an object {kind: probability}")
        rates: dict[str, float] = {}
        for kind, rate in value.items():
            if str(kind) not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
            if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
                raise ValueError(f"fault rate for {kind!r} must be a number in [0, 1]")
            rates[str(kind)] = float(rate)
        if sum(rates.values()) > 1:
            raise ValueError("fault rates must add up to at most 1")
        return rates
    if key == "fault_services":
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError("fault_services must be null or a list of service names")
        return list(value)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be a non-negative number")
    if key in ("gmail_concurrency", "graph_concurrency", "calendar_limit", "graph_limit"):
        if value < 1:
            raise ValueError(f"{key} must be at least 1")
        return int(value)
    return value
