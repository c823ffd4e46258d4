"""Microsoft Graph v1.0 stand-in: one blueprint ``bp`` serving ``/v1.0/...``.

The routes live in small modules that all register on the blueprint from graphbase.py:

- mail.py: ``/me``, ``/me/mailFolders[...]``, ``/me/messages/{id}``, per-folder message delta;
- calendar.py: ``/me/calendars``, ``/me/calendar``, ``/me/events[...]`` (and event rendering);
- calendar_view.py: ``/me/calendarView/delta``;
- schedule.py: ``/me/calendar/getSchedule``;
- batch.py: ``/$batch``;
- subscriptions.py: ``/subscriptions``.

Every call authenticates a Graph JWT from identity.py, then passes
``state.controls.call(service="graph", mailbox=..., method=...)`` (PROVIDERS.md §4).
"""

from __future__ import annotations

from sandbox.microsoft import batch, calendar, calendar_view, mail, schedule, subscriptions
from sandbox.microsoft.graphbase import bp

__all__ = [
    "batch",
    "bp",
    "calendar",
    "calendar_view",
    "mail",
    "schedule",
    "subscriptions",
]
