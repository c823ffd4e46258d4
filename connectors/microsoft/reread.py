"""Re-read Graph items by id, 20 to a `$batch` (sparse delta rows, sync.py).

Delta may send an update as "their id with at least the properties that have been updated"
(https://learn.microsoft.com/graph/delta-query-overview); the caller re-reads those rows rather
than map them. Batching is documented at https://learn.microsoft.com/graph/json-batching: each
item carries its own status, and each counts against the mailbox's quota on its own (quota.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from connectors.microsoft.graph import GraphClient, Json
from connectors.microsoft.quota import BATCH_MAX_REQUESTS


def reread(
    graph: GraphClient, paths: Mapping[str, str], *, prefer: Iterable[str] = ()
) -> dict[str, Json | None]:
    """GET each id's relative `paths[id]`: id → body, or None when it is gone (404).

    Items refused on their own (400 malformed id, 403) are left out: the caller keeps what it
    stored. Throttling and outages raise (graph.py), failing the caller's page for a retry.
    """
    ids = list(paths)
    prefer = tuple(prefer)
    out: dict[str, Json | None] = {}
    for at in range(0, len(ids), BATCH_MAX_REQUESTS):
        chunk = ids[at : at + BATCH_MAX_REQUESTS]
        # Batch request ids must be unique and short; Graph ids are neither guaranteed.
        answers = graph.batch(
            [(str(n), paths[item_id]) for n, item_id in enumerate(chunk)], prefer=prefer
        )
        for n, item_id in enumerate(chunk):
            status, body = answers.get(str(n), (0, {}))
            if status == 404:
                out[item_id] = None
            elif status == 200 and body.get("id"):
                out[item_id] = body
    return out
