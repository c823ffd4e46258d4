"""Google per-user quotas as data: what each call costs and how much fits in a window.

The connector calls `Pacer.acquire(cost, bucket=...)` before every request with these costs, and
the cross-process pacer enforces `LIMITS`. Buckets: "gmail" (quota units) and "calendar"
(requests).

Gmail has two quota profiles (PROVIDERS.md §1.1):

- "legacy": 15,000 units per user per minute, documented as "250 units per user per second,
  moving average"; messages.get 5, threads.get 10
  (https://developers.google.com/gmail/api/reference/quota). We pace it as 250 units per 1 s,
  the stricter reading that still allows 15,000/min.
- "2026" (Cloud projects created on or after 2026-05-01): 6,000 units per user per minute
  (https://developers.google.com/workspace/gmail/api/reference/quota). The per-method costs
  messages.get 20 and threads.get 40 come from secondary sources
  (https://developer.nylas.com/docs/cookbook/email/gmail-api-quotas/); Google's own 2026 table
  was not seen, so they are data here, not constants in code.

Calendar counts requests, not units: 600 per user per minute, sliding window
(https://developers.google.com/workspace/calendar/api/guides/quota).

A batch costs the sum of its parts: "n requests batched together count toward your usage limit
as n requests, not as one" (https://developers.google.com/gmail/api/guides/batch).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from core.quota import QuotaLimit

GMAIL: Final = "gmail"
CALENDAR: Final = "calendar"
PROFILES: Final = ("legacy", "2026")


_LEGACY_COSTS: dict[str, int] = {
    "getProfile": 1,
    "labels.list": 1,
    "labels.get": 1,
    "sendAs.list": 1,
    "history.list": 2,
    "messages.list": 5,
    "messages.get": 5,
    "threads.list": 10,
    "threads.get": 10,
}

# Method costs per Gmail profile (read-only views: the pacer and tests share these dicts).
GMAIL_COSTS: Final = MappingProxyType(
    {
        "legacy": MappingProxyType(dict(_LEGACY_COSTS)),
        "2026": MappingProxyType({**_LEGACY_COSTS, "messages.get": 20, "threads.get": 40}),
    }
)

# Limits per profile and bucket. Calendar does not depend on the Gmail profile.
LIMITS: Final = MappingProxyType(
    {
        "legacy": MappingProxyType({GMAIL: QuotaLimit(250, 1.0), CALENDAR: QuotaLimit(600, 60.0)}),
        "2026": MappingProxyType({GMAIL: QuotaLimit(6_000, 60.0), CALENDAR: QuotaLimit(600, 60.0)}),
    }
)

CALENDAR_REQUEST_COST: Final = 1


def gmail_cost(profile: str, method: str) -> int:
    """Return the units one Gmail `method` call costs under `profile` (unknown methods: 1)."""
    return GMAIL_COSTS[profile].get(method, 1)


def check_profile(profile: str) -> str:
    """Return `profile` if it is a known Gmail quota profile, else raise ValueError."""
    if profile not in GMAIL_COSTS:
        raise ValueError(f"unknown Gmail quota profile {profile!r}; expected one of {PROFILES}")
    return profile
