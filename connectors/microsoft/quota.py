"""Microsoft Graph (Outlook) throttling limits, as data for the account's Pacer.

Outlook resources (mail, calendar) are throttled per app per mailbox
(https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits, PROVIDERS.md §4):

- **10,000 API requests per 10 minutes** → the "graph" bucket below. Every request counts,
  including each inner request of a JSON `$batch` ("Each request in a batch is evaluated against
  throttling limits individually", https://learn.microsoft.com/graph/json-batching#throttling), so
  a batch acquires as many units as it carries requests.
- **4 concurrent requests** per mailbox. This is not a rate, so it is not a bucket: the sync
  engine runs one sync per account at a time and this connector never issues requests in
  parallel (no threads, `$batch` items are run by Graph at most 4 at a time). A concurrency 429
  (`ApplicationThrottled` "MailboxConcurrency") is handled like any other 429.
- 15 MB upload per 30 s: irrelevant to a reader.

A 429 carries `Retry-After` seconds; the connector passes it to `Pacer.penalize` so every worker
on the account waits (https://learn.microsoft.com/graph/throttling#best-practices-to-handle-throttling).
"""

from __future__ import annotations

from core.quota import QuotaLimit

GRAPH_BUCKET = "graph"
MAX_CONCURRENT_REQUESTS_PER_MAILBOX = 4
BATCH_MAX_REQUESTS = 20  # https://learn.microsoft.com/graph/json-batching#batch-size-limitations
# Used when a 429 comes without Retry-After ("use an exponential backoff", throttling doc); the
# engine backs off further on repeats, so one conservative constant is enough here.
DEFAULT_RETRY_AFTER_S = 10.0


LIMITS: dict[str, QuotaLimit] = {
    GRAPH_BUCKET: QuotaLimit(units=10_000, window_s=600.0),
}


def batch_cost(requests: int) -> int:
    """Return the units a `$batch` of `requests` inner requests costs (each one counts)."""
    return requests
