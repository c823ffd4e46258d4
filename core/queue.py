"""The Celery application both the web process and the workers use.

The broker only wakes workers up; durable work state lives in the database (leases on
`SyncStream`), because no embedded broker keeps a message whose worker is killed mid-task
(PROVIDERS.md §6). The web process sends tasks *by name* (`send`), so it never imports worker
code; `workers/` registers the implementations.

Embedded default: kombu's filesystem transport. It works with a real `celery worker` process,
supports fanout (so `celery inspect` and remote control work), and needs no SQLite writes per
message; the SQLAlchemy transport has no fanout, never deletes delivered rows and contends for the
SQLite write lock with the application itself.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from core.settings import Settings

# Task names: the contract between the web process and the workers.
PING = "warmline.ping"
HEARTBEAT = "warmline.heartbeat"
SYNC_ACCOUNT = "warmline.sync.account"
SYNC_DISPATCH = "warmline.sync.dispatch"
DERIVE_USER = "warmline.derive.user"
DERIVE_REFRESH = "warmline.derive.refresh"
FOLLOWUPS_USER = "warmline.followups.user"
FOLLOWUPS_REFRESH = "warmline.followups.refresh"

QUEUE = "warmline"


def make_celery(settings: Settings) -> Celery:
    """Return a Celery app configured for these settings (no tasks registered)."""
    app = Celery("warmline", set_as_current=False)
    conf: dict[str, Any] = {
        "broker_url": settings.effective_broker_url,
        "result_backend": settings.effective_result_backend,
        "broker_connection_retry_on_startup": True,
        # JSON only: a worker running as root refuses to start when pickle is accepted.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Tasks are idempotent and re-woken from database state, so ack late and take one at a
        # time: a crash replays at most the task in hand.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE,
        "result_expires": 24 * 3600,
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "beat_schedule": {
            "heartbeat": {"task": HEARTBEAT, "schedule": settings.heartbeat_interval_s},
            "sync-dispatch": {"task": SYNC_DISPATCH, "schedule": settings.sync_dispatch_interval_s},
            # Strength decays with time even when no mail arrives: recompute everyone daily.
            "derive-refresh": {
                "task": DERIVE_REFRESH,
                "schedule": settings.derive_refresh_interval_s,
            },
            # Follow-up rules depend on elapsed time (working days pass, cadences lapse), and
            # calendar writes stopped by quota or outages are retried from database state.
            "followups-refresh": {
                "task": FOLLOWUPS_REFRESH,
                "schedule": settings.followup_refresh_interval_s,
            },
        },
    }
    if settings.effective_broker_url.startswith("filesystem://"):
        queue_dir = str(settings.broker_dir / "queue")
        conf["broker_transport_options"] = {
            "data_folder_in": queue_dir,
            "data_folder_out": queue_dir,
            "control_folder": str(settings.broker_dir / "control"),
        }
    app.conf.update(conf)
    return app


def check_broker(app: Celery, timeout_s: float = 2.0) -> None:
    """Raise if the broker cannot be reached within `timeout_s`."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout_s)
        # The filesystem transport "connects" to anything; prove the queue is writable.
        options = app.conf.broker_transport_options or {}
        folder = options.get("data_folder_in")
        if folder is not None and not os.access(folder, os.W_OK):
            raise OSError(f"broker queue folder is not writable: {folder}")
