"""MicrosoftSyncSource: core.ports.SyncSource for one Microsoft account over Graph v1.0.

Streams and cursors (the sync engine stores `cursor` and `backfill_cursor` per stream):

- "mail:<folderId>" for every synced mail folder (mail.py says which and why). Both cursors are
  Graph's own absolute links: `backfill_cursor` is the `@odata.nextLink` of the round in
  progress, `cursor` the `@odata.deltaLink` that starts the next round
  (https://learn.microsoft.com/graph/delta-query-messages: "Store the whole deltaLink URL"; the
  query options live in its token). A round that spans several pages — the initial listing or a
  large incremental one — continues through `backfill_cursor` while `cursor` keeps the previous
  deltaLink, so a crash replays at most one page.
- "calendar:<id>": calendarView delta of each calendar the user owns (calendar.py). Cursors are JSON
  `{"link": <nextLink|deltaLink>, "window_start": ISO, "window_end": ISO}`: the window is fixed
  by the first call and lives inside Graph's tokens, so its bounds are kept beside the link.
  Once the future horizon has shrunk by `calendar_renew_days` (default 30), the next
  incremental call raises CursorExpired so the engine restarts the stream with a fresh window —
  otherwise meetings booked beyond the original `now + window_future_days` would never arrive.

`Page.owner_addresses` (primary + proxyAddresses aliases from /me) comes with the first page of
every stream; `items_total_estimate` with the first page of a mail folder (its totalItemCount).

Requests: one per page (up to 500 messages or events each), plus per SyncSource instance one
`$batch` resolving well-known folder ids, the folder listing (one request per folder that has
children, plus paging), /me and /me/calendar. Every request acquires the pacer first (quota.py).
Failures raise the core.errors taxonomy (graph.py) and never return a partial page, so a cursor
only advances over data that was returned.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from connectors.microsoft import calendar as cal
from connectors.microsoft import mail
from connectors.microsoft.config import MicrosoftConfig
from connectors.microsoft.graph import GraphClient, Json
from core.errors import (
    CursorExpired,
    ProviderRejected,
    ProviderUnavailable,
    ReauthRequired,
)
from core.ports import Pacer, TokenSource
from core.records import Change, Page

CALENDAR_PREFIX = "calendar:"
MAIL_PREFIX = "mail:"
FOLDER_PAGE_SIZE = 100  # mailFolders listing `$top`; the default is 10
ME_SELECT = "id,mail,userPrincipalName,proxyAddresses"
ME_FALLBACK_SELECT = "id,mail,userPrincipalName"
MASTER_SELECT = ",".join(cal.MASTER_FIELDS)


def _path_id(graph_id: str) -> str:
    """Quote a Graph id for a URL path segment (ids are base64-like and may hold '=' or '/')."""
    return quote(graph_id, safe="=-_")


class MicrosoftSyncSource:
    """Mail folders and the primary calendar of one Microsoft account, as SyncSource streams."""

    def __init__(
        self,
        config: MicrosoftConfig,
        *,
        token: TokenSource,
        pacer: Pacer,
        window_past_days: int = 730,
        window_future_days: int = 183,
        now: Callable[[], dt.datetime] | None = None,
        calendar_renew_days: int = 30,
    ) -> None:
        self.graph = GraphClient(config, token=token, pacer=pacer)
        self.window_past_days = window_past_days
        self.window_future_days = window_future_days
        self.calendar_renew_days = calendar_renew_days
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._folders: dict[str, mail.SyncFolder] | None = None
        self._owner_addresses: tuple[str, ...] | None = None
        self._calendar_id: str | None = None

    # -- SyncSource ----------------------------------------------------------------------------

    def list_streams(self) -> list[str]:
        """Return "mail:<id>" per synced folder (Sent Items and Inbox first), then
        "calendar:<id>" per calendar the user owns (default first)."""
        folders = self._discover_folders()
        ordered = sorted(folders.values(), key=lambda f: (not f.is_sent, not f.is_inbox))
        return [MAIL_PREFIX + f.id for f in ordered] + [
            CALENDAR_PREFIX + c for c in self._owned_calendars()
        ]

    def fetch_page(self, stream: str, *, cursor: str | None, backfill_cursor: str | None) -> Page:
        """Return the next page of `stream` (see the module docstring for the cursor shapes)."""
        if stream.startswith(CALENDAR_PREFIX) and len(stream) > len(CALENDAR_PREFIX):
            return self._calendar_page(
                stream[len(CALENDAR_PREFIX) :], cursor=cursor, backfill_cursor=backfill_cursor
            )
        if stream.startswith(MAIL_PREFIX) and len(stream) > len(MAIL_PREFIX):
            return self._mail_page(
                stream[len(MAIL_PREFIX) :], cursor=cursor, backfill_cursor=backfill_cursor
            )
        raise ProviderRejected("unknown Microsoft stream")

    def mailbox_counts(self) -> dict[str, int]:
        """Return {"messages": total over synced folders, "folder:<id>": per folder}."""
        folders = self._discover_folders()
        counts = {f"folder:{f.id}": f.total_items for f in folders.values()}
        return {"messages": sum(counts.values()), **counts}

    # -- mail ----------------------------------------------------------------------------------

    def _mail_page(
        self, folder_id: str, *, cursor: str | None, backfill_cursor: str | None
    ) -> Page:
        folders = self._folders if self._folders is not None else self._discover_folders()
        folder = folders.get(folder_id)
        if folder is None:
            # Not (or no longer) a synced folder: let Graph answer for it (404 if it is gone)
            # but never mark its mail sent or inbox.
            folder = mail.SyncFolder(id=folder_id, total_items=0)
        first = cursor is None and backfill_cursor is None
        prefer = [f"odata.maxpagesize={mail.MESSAGE_DELTA_PAGE_SIZE}"]
        if backfill_cursor:
            body = self.graph.get(backfill_cursor, prefer=prefer)
        elif cursor:
            body = self.graph.get(cursor, prefer=prefer)
        else:
            body = self.graph.get(
                f"me/mailFolders/{_path_id(folder_id)}/messages/delta",
                params={"$select": ",".join(mail.MESSAGE_SELECT)},
                prefer=prefer,
            )
        changes: list[Change] = [
            mail.map_delta_item(
                item, folder_id=folder.id, is_sent=folder.is_sent, is_inbox=folder.is_inbox
            )
            for item in body.get("value") or []
        ]
        next_link, delta_link = self._links(body)
        return Page(
            changes=changes,
            backfill_cursor=next_link,
            cursor=delta_link or cursor,
            is_complete=next_link is None,
            items_total_estimate=folder.total_items if first else None,
            owner_addresses=self._owners() if first else (),
        )

    def _discover_folders(self) -> dict[str, mail.SyncFolder]:
        """Resolve well-known folder ids, walk the folder tree, pick the synced folders."""
        well_known = self._well_known_ids()
        skip = {well_known[n] for n in mail.EXCLUDED_WELL_KNOWN if n in well_known}
        found: list[mail.Folder] = []
        pending = ["me/mailFolders"]
        while pending:
            url: str | None = pending.pop(0)
            params: dict[str, str] | None = {
                "$select": ",".join(mail.FOLDER_SELECT),
                "$top": str(FOLDER_PAGE_SIZE),
            }
            while url:
                body = self.graph.get(url, params=params)
                for item in body.get("value") or []:
                    folder = mail.folder_from_graph(item)
                    found.append(folder)
                    # Excluded subtrees are never synced: do not spend requests walking them.
                    if folder.child_count and folder.id not in skip:
                        pending.append(f"me/mailFolders/{_path_id(folder.id)}/childFolders")
                url, params = body.get("@odata.nextLink"), None
        self._folders = {f.id: f for f in mail.select_sync_folders(found, well_known)}
        return self._folders

    def _well_known_ids(self) -> dict[str, str]:
        requests_ = [
            (name, f"me/mailFolders/{name}?$select=id") for name in mail.WELL_KNOWN_TO_RESOLVE
        ]
        answers = self.graph.batch(requests_)
        return {
            name: str(body["id"])
            for name, (status, body) in answers.items()
            if status == 200 and body.get("id")  # 404: this mailbox has no such folder
        }

    # -- calendar ------------------------------------------------------------------------------

    def _owned_calendars(self) -> list[str]:
        """Ids of the calendars the user owns, default first.

        Meetings count only on the user's own calendars (DEFINITIONS.md); a calendar shared by
        someone else names them as its owner. /me/calendarView covers only the default one, so
        each owned calendar is its own calendarView delta
        (https://learn.microsoft.com/graph/delta-query-events: "... of the default calendar or
        some other specified calendar of a user").
        """
        owners = {a.lower() for a in self._owners()}
        body = self.graph.get(
            "me/calendars", params={"$select": "id,isDefaultCalendar,canEdit,owner", "$top": "100"}
        )
        owned: list[tuple[bool, str]] = []
        for item in body.get("value") or []:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            owner = ((item.get("owner") or {}).get("address") or "").lower()
            if item.get("isDefaultCalendar") or (owner in owners and item.get("canEdit")):
                owned.append((not item.get("isDefaultCalendar"), str(item["id"])))
        return [calendar_id for _, calendar_id in sorted(owned)]

    def _calendar_page(
        self, calendar_id: str, *, cursor: str | None, backfill_cursor: str | None
    ) -> Page:
        prefer = [f"odata.maxpagesize={cal.EVENT_DELTA_PAGE_SIZE}", 'outlook.timezone="UTC"']
        first = cursor is None and backfill_cursor is None
        if backfill_cursor:
            state = _CalendarCursor.load(backfill_cursor)
        elif cursor:
            state = _CalendarCursor.load(cursor)
            self._check_window(state)
        else:
            start, end = cal.window(
                self._now(), past_days=self.window_past_days, future_days=self.window_future_days
            )
            state = _CalendarCursor(
                link=self.graph.url(
                    f"me/calendars/{_path_id(calendar_id)}/calendarView/delta",
                    cal.graph_window_params(start, end),
                ),
                window_start=start,
                window_end=end,
            )
        body = self.graph.get(state.link, prefer=prefer)
        owners = self._owners()
        items = [i for i in body.get("value") or [] if isinstance(i, dict) and i.get("id")]
        changes = cal.map_delta_items(
            items,
            calendar_id=calendar_id,
            owner_addresses=owners,
            masters=self._missing_masters(items),
        )
        next_link, delta_link = self._links(body)
        return Page(
            changes=changes,
            backfill_cursor=state.with_link(next_link).dump() if next_link else None,
            cursor=state.with_link(delta_link).dump() if delta_link else cursor,
            is_complete=next_link is None,
            owner_addresses=owners if first else (),
        )

    def _check_window(self, state: _CalendarCursor) -> None:
        if state.window_end is None:
            return
        horizon = state.window_end - self._now().astimezone(dt.UTC)
        if horizon < dt.timedelta(days=self.window_future_days - self.calendar_renew_days):
            raise CursorExpired("the calendarView window needs renewing")

    def _missing_masters(self, items: list[Json]) -> dict[str, Json]:
        """GET the series masters of sparse occurrences whose master is not on this page."""
        on_page = {str(i["id"]) for i in items if i.get("type") == cal.SERIES_MASTER}
        wanted = {str(i["seriesMasterId"]) for i in items if cal.needs_master(i)} - on_page
        masters: dict[str, Json] = {}
        for master_id in sorted(wanted):
            try:
                masters[master_id] = self.graph.get(
                    f"me/events/{_path_id(master_id)}", params={"$select": MASTER_SELECT}
                )
            except ProviderRejected as exc:
                if exc.status != 404:
                    raise
                # The series is gone; its removal arrives in the delta. Keep the occurrence.
        return masters

    # -- shared --------------------------------------------------------------------------------

    def _owners(self) -> tuple[str, ...]:
        if self._owner_addresses is None:
            try:
                me = self.graph.get("me", params={"$select": ME_SELECT})
            except (ProviderRejected, ReauthRequired):
                # proxyAddresses may be withheld by the directory for this token: fall back to
                # the profile's own fields. A genuinely missing grant fails again just below.
                me = self.graph.get("me", params={"$select": ME_FALLBACK_SELECT})
            self._owner_addresses = mail.owner_addresses(me)
        return self._owner_addresses

    def _links(self, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
        next_link = body.get("@odata.nextLink")
        delta_link = body.get("@odata.deltaLink")
        if not next_link and not delta_link:
            raise ProviderUnavailable("Graph delta page without nextLink or deltaLink")
        for link in (next_link, delta_link):
            if link:
                self.graph.url(str(link))  # refuse now a link we would refuse to follow later
        return (str(next_link) if next_link else None), (str(delta_link) if delta_link else None)


class _CalendarCursor:
    """The calendar stream's cursor: Graph's link plus the window it was opened with."""

    def __init__(
        self, link: str, window_start: dt.datetime | None, window_end: dt.datetime | None
    ) -> None:
        self.link = link
        self.window_start = window_start
        self.window_end = window_end

    @classmethod
    def load(cls, raw: str) -> _CalendarCursor:
        try:
            data = json.loads(raw)
        except ValueError:
            return cls(raw, None, None)  # a bare Graph link: follow it, no renewal check
        if not isinstance(data, dict) or not isinstance(data.get("link"), str):
            raise ProviderRejected("malformed calendar cursor")
        return cls(data["link"], _iso(data.get("window_start")), _iso(data.get("window_end")))

    def with_link(self, link: str) -> _CalendarCursor:
        return _CalendarCursor(link, self.window_start, self.window_end)

    def dump(self) -> str:
        return json.dumps(
            {
                "link": self.link,
                "window_start": self.window_start.isoformat() if self.window_start else None,
                "window_end": self.window_end.isoformat() if self.window_end else None,
            },
            separators=(",", ":"),
        )


def _iso(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
