"""MicrosoftSyncSource: core.ports.SyncSource for one Microsoft account over Graph v1.0.

Streams and cursors (the sync engine stores `cursor` and `backfill_cursor` per stream):

- "mail:<folderId>" for every synced mail folder (mail.py says which and why). Both cursors are
  Graph's own absolute links: `backfill_cursor` is the `@odata.nextLink` of the round in
  progress, `cursor` the `@odata.deltaLink` that starts the next round
  (https://learn.microsoft.com/graph/delta-query-messages: "Store the whole deltaLink URL"; the
  query options live in its token). A round that spans several pages — the initial listing or a
  large incremental one — continues through `backfill_cursor` while `cursor` keeps the previous
  deltaLink, so a crash replays at most one page.
- "calendar:<id>" for each calendar the user owns (cursors.py has the cursor shapes). v1.0
  documents calendarView delta for the **default calendar only**, `GET /me/calendarView/delta`
  (https://learn.microsoft.com/graph/api/event-delta; extending it to other calendars was
  refused in review, microsoftgraph/microsoft-graph-docs PR 13204, issue 5194), so the default
  calendar uses that. Another calendar first tries `me/calendars/{id}/calendarView/delta`
  (undocumented, yet answered by some tenants); refused as unsupported (400/404/501 with a Graph
  error body), the stream falls back to the documented
  `me/calendars/{id}/calendarView?startDateTime&endDateTime` listing
  (https://learn.microsoft.com/graph/api/calendar-list-calendarview) and remembers so in its
  cursor. A listing has no changes feed: every later round raises CursorExpired with
  `restart_from` the start of a new listing, so the engine lists the calendar afresh under a new
  generation and sweeps what the listing no longer holds (deleted events).
  A delta window is fixed by the first call; once its future horizon has shrunk by
  `calendar_renew_days` (default 30), the next incremental call raises CursorExpired so the
  engine restarts the stream with a fresh window — otherwise meetings booked beyond the original
  `now + window_future_days` would never arrive.

**Sparse rows** of either delta (mail.py, calendar.py) are re-read by id in `$batch`es of 20
before they are mapped; one that is gone (404) is a removal, one refused on its own (400, 403)
is left as stored. No single item fails a page.

`Page.owner_addresses` (primary + proxyAddresses aliases from /me) comes with the first page of
every stream; `items_total_estimate` with the first page of a mail folder (its totalItemCount).

Requests: one per page (up to 500 messages or events each), plus per SyncSource instance one
`$batch` resolving well-known folder ids, the folder listing (one request per folder that has
children, plus paging), /me and the calendar listing. Every request acquires the pacer first
(quota.py). Failures raise the core.errors taxonomy (graph.py) and never return a partial page,
so a cursor only advances over data that was returned. The account-level requests (/me, the
folder and calendar listings) map a permission 403 to ReauthRequired; a stream's or an item's
own 403 is ProviderRejected, which the engine backs off for that stream alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from connectors.microsoft import calendar as cal
from connectors.microsoft import mail
from connectors.microsoft.config import MicrosoftConfig
from connectors.microsoft.cursors import LIST_START, CalendarCursor
from connectors.microsoft.graph import GraphClient, Json
from connectors.microsoft.reread import reread
from core.errors import (
    CursorExpired,
    ProviderRejected,
    ProviderUnavailable,
    ReauthRequired,
)
from core.ports import Pacer, TokenSource
from core.records import Change, MessageDeleted, Page

CALENDAR_PREFIX = "calendar:"
MAIL_PREFIX = "mail:"
FOLDER_PAGE_SIZE = 100  # mailFolders listing `$top`; the default is 10
CALENDAR_PAGE_SIZE = 100  # calendars listing `$top`; more calendars come through nextLink
EVENT_LIST_PAGE_SIZE = 500  # calendarView listing `$top` (a calendar without delta)
ME_SELECT = "id,mail,userPrincipalName,proxyAddresses"
ME_FALLBACK_SELECT = "id,mail,userPrincipalName"
MASTER_SELECT = ",".join(cal.MASTER_FIELDS)
EVENT_SELECT = ",".join(cal.EVENT_SELECT)
MESSAGE_SELECT = ",".join(mail.MESSAGE_SELECT)


def _path_id(graph_id: str) -> str:
    """Quote a Graph id for a URL path segment (ids are base64-like and may hold '=' or '/')."""
    return quote(graph_id, safe="=-_")


def _delta_unsupported(status: int, code: str) -> bool:
    # A refusal of the route itself (e.g. 400 BadRequest "Resource not found for the segment
    # ..."), not a hiccup: it comes with a Graph error body. A calendar that is gone answers
    # 404 too; its listing then fails the same way and the next list_streams drops it.
    return status in (400, 404, 501) and bool(code)


class MicrosoftSyncSource:
    """Mail folders and the owned calendars of one Microsoft account, as SyncSource streams."""

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
        self._default_calendar: str | None = None

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
        link = backfill_cursor or cursor or f"me/mailFolders/{_path_id(folder_id)}/messages/delta"
        body = self.graph.get(
            link,
            params=None if backfill_cursor or cursor else {"$select": MESSAGE_SELECT},
            prefer=prefer,
            account_level=False,  # one folder refusing us is not the grant gone
        )
        changes = self._message_changes(_rows(body), folder)
        next_link, delta_link = self._links(body)
        return Page(
            changes=changes,
            backfill_cursor=next_link,
            cursor=delta_link or cursor,
            is_complete=next_link is None,
            items_total_estimate=folder.total_items if first else None,
            owner_addresses=self._owners() if first else (),
        )

    def _message_changes(self, items: list[Json], folder: mail.SyncFolder) -> list[Change]:
        """Map a page of message delta rows in order, re-reading the sparse ones first."""
        changes: list[Change] = []

        def path_of(message_id: str) -> str:
            return f"me/messages/{_path_id(message_id)}?$select={MESSAGE_SELECT}"

        for message_id, item, reread_ in self._resolved(items, mail.needs_reread, path_of):
            if item is None:
                changes.append(MessageDeleted(provider_message_id=message_id, folder=folder.id))
                continue
            if reread_ and item.get("parentFolderId") not in (None, folder.id):
                # It left this folder since: the @removed here and the row in its new folder's
                # stream say so; mapping it here would misplace it.
                continue
            if reread_ and not mail.has_time(item):
                continue  # not a message we can date; nothing to store
            changes.append(
                mail.map_delta_item(
                    item, folder_id=folder.id, is_sent=folder.is_sent, is_inbox=folder.is_inbox
                )
            )
        return changes

    def _resolved(
        self,
        items: list[Json],
        needs_reread: Callable[[Json], bool],
        path_of: Callable[[str], str],
        prefer: Iterable[str] = (),
    ) -> list[tuple[str, Json | None, bool]]:
        """(id, row, re-read?) per delta row in order; a sparse row is replaced by its re-read,
        or by None when it is gone (404); one refused on its own is left out (keep what is
        stored)."""
        sparse = {str(i["id"]): path_of(str(i["id"])) for i in items if needs_reread(i)}
        fresh = reread(self.graph, sparse, prefer=prefer)
        out: list[tuple[str, Json | None, bool]] = []
        for item in items:
            item_id = str(item["id"])
            if item_id not in sparse:
                out.append((item_id, item, False))
            elif item_id in fresh:
                out.append((item_id, fresh[item_id], True))
        return out

    def _discover_folders(self) -> dict[str, mail.SyncFolder]:
        """Resolve well-known folder ids, walk the folder tree, pick the synced folders."""
        well_known = self._well_known_ids()
        skip = {well_known[n] for n in mail.EXCLUDED_WELL_KNOWN if n in well_known}
        found: list[mail.Folder] = []
        pending = ["me/mailFolders"]
        while pending:
            url: str | None = pending.pop(0)
            # The root listing is the account's; a subfolder's refusal (403) or disappearance
            # (404) since it was listed only drops that subtree.
            root = url == "me/mailFolders"
            params: dict[str, str] | None = {
                "$select": ",".join(mail.FOLDER_SELECT),
                "$top": str(FOLDER_PAGE_SIZE),
            }
            while url:
                try:
                    body = self.graph.get(url, params=params, account_level=root)
                except ProviderRejected as exc:
                    if root or exc.status not in (403, 404):
                        raise
                    break
                for item in _rows(body):
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
        # Any item-level failure means "this mailbox has no such folder": 404, or e.g. 400 for a
        # well-known name a consumer mailbox lacks. Throttling and outages raised in batch().
        return {
            name: str(body["id"])
            for name, (status, body) in answers.items()
            if status == 200 and body.get("id")
        }

    # -- calendar ------------------------------------------------------------------------------

    def _owned_calendars(self) -> list[str]:
        """Ids of the calendars the user owns, default first.

        Meetings count only on the user's own calendars (DEFINITIONS.md); a calendar shared by
        someone else names them as its owner. Each is its own stream (module docstring).
        """
        owners = {a.lower() for a in self._owners()}
        owned: list[tuple[bool, str]] = []
        link: str | None = self.graph.url(
            "me/calendars",
            {"$select": "id,isDefaultCalendar,canEdit,owner", "$top": str(CALENDAR_PAGE_SIZE)},
        )
        while link:
            body = self.graph.get(link)
            for item in _rows(body):
                owner = ((item.get("owner") or {}).get("address") or "").lower()
                if item.get("isDefaultCalendar"):
                    self._default_calendar = str(item["id"])
                if item.get("isDefaultCalendar") or (owner in owners and item.get("canEdit")):
                    owned.append((not item.get("isDefaultCalendar"), str(item["id"])))
            next_link = body.get("@odata.nextLink")
            link = str(next_link) if next_link else None
        return [calendar_id for _, calendar_id in sorted(owned)]

    def _default_calendar_id(self) -> str:
        if self._default_calendar is None:
            body = self.graph.get("me/calendar", params={"$select": "id"})
            self._default_calendar = str(body.get("id") or "")
        return self._default_calendar

    def _calendar_page(
        self, calendar_id: str, *, cursor: str | None, backfill_cursor: str | None
    ) -> Page:
        if backfill_cursor:
            state = CalendarCursor.load(backfill_cursor)
            if state.is_list:
                return self._calendar_list_page(calendar_id, state)
        elif cursor:
            state = CalendarCursor.load(cursor)
            if state.is_list:
                # No changes feed for this calendar: the engine starts a new listing whose sweep
                # removes what was deleted meanwhile.
                raise CursorExpired(
                    "calendar without delta: list it again", restart_from=LIST_START
                )
            self._check_window(state)
        else:
            return self._calendar_first_page(calendar_id)
        assert state.link is not None  # a delta cursor always holds one (cursors.py)
        body = self.graph.get(state.link, prefer=self._delta_prefer(), account_level=False)
        return self._calendar_delta_page(calendar_id, state, body, cursor=cursor, first=False)

    def _calendar_first_page(self, calendar_id: str) -> Page:
        """Open a delta round: the default calendar's documented one, else try the other."""
        start, end = cal.window(
            self._now(), past_days=self.window_past_days, future_days=self.window_future_days
        )
        is_default = calendar_id == self._default_calendar_id()
        path = (
            "me/calendarView/delta"
            if is_default
            else f"me/calendars/{_path_id(calendar_id)}/calendarView/delta"
        )
        state = CalendarCursor(
            self.graph.url(path, cal.graph_window_params(start, end)), start, end
        )
        status, body = self.graph.call(
            "GET",
            str(state.link),
            prefer=self._delta_prefer(),
            accept=None if is_default else _delta_unsupported,
            account_level=False,
        )
        if status >= 300:
            return self._calendar_list_page(calendar_id, CalendarCursor.load(LIST_START))
        return self._calendar_delta_page(calendar_id, state, body, cursor=None, first=True)

    def _calendar_delta_page(
        self,
        calendar_id: str,
        state: CalendarCursor,
        body: Json,
        *,
        cursor: str | None,
        first: bool,
    ) -> Page:
        changes = self._event_changes(calendar_id, _rows(body))
        next_link, delta_link = self._links(body)
        return Page(
            changes=changes,
            backfill_cursor=state.with_link(next_link).dump() if next_link else None,
            cursor=state.with_link(delta_link).dump() if delta_link else cursor,
            is_complete=next_link is None,
            owner_addresses=self._owners() if first else (),
        )

    def _calendar_list_page(self, calendar_id: str, state: CalendarCursor) -> Page:
        """One page of a full calendarView listing (a calendar without delta)."""
        first = state.link is None
        if state.link is None:
            start, end = cal.window(
                self._now(), past_days=self.window_past_days, future_days=self.window_future_days
            )
            params = {
                **cal.graph_window_params(start, end),
                "$select": EVENT_SELECT,
                "$top": str(EVENT_LIST_PAGE_SIZE),
            }
            link = self.graph.url(f"me/calendars/{_path_id(calendar_id)}/calendarView", params)
            state = CalendarCursor(link, start, end, mode=state.mode)
        body = self.graph.get(str(state.link), prefer=[cal.UTC_VIEW], account_level=False)
        changes = self._event_changes(calendar_id, _rows(body))
        raw_next = body.get("@odata.nextLink")
        next_link = self.graph.url(str(raw_next)) if raw_next else None  # same origin only
        return Page(
            changes=changes,
            backfill_cursor=state.with_link(next_link).dump() if next_link else None,
            # Complete: the cursor only says "list again" (cursors.py).
            cursor=None if next_link else state.with_link(None).dump(),
            is_complete=next_link is None,
            owner_addresses=self._owners() if first else (),
        )

    def _event_changes(self, calendar_id: str, items: list[Json]) -> list[Change]:
        """Map a page of calendarView rows in order, re-reading the sparse ones first."""
        resolved = [
            {"id": event_id, "@removed": {"reason": "deleted"}} if item is None else item
            for event_id, item, _ in self._resolved(
                items,
                cal.needs_reread,
                lambda i: f"me/events/{_path_id(i)}?$select={EVENT_SELECT}",
                prefer=[cal.UTC_VIEW],
            )
        ]
        return cal.map_delta_items(
            resolved,
            calendar_id=calendar_id,
            owner_addresses=self._owners(),
            masters=self._missing_masters(resolved),
        )

    def _delta_prefer(self) -> list[str]:
        return [f"odata.maxpagesize={cal.EVENT_DELTA_PAGE_SIZE}", cal.UTC_VIEW]

    def _check_window(self, state: CalendarCursor) -> None:
        if state.window_end is None:
            return
        horizon = state.window_end - self._now().astimezone(dt.UTC)
        if horizon < dt.timedelta(days=self.window_future_days - self.calendar_renew_days):
            raise CursorExpired("the calendarView window needs renewing")

    def _missing_masters(self, items: list[Json]) -> dict[str, Json]:
        """GET the series masters of sparse occurrences whose master is not on this page."""
        on_page = {str(i["id"]) for i in items if cal.is_full_master(i)}
        wanted = {str(i["seriesMasterId"]) for i in items if cal.needs_master(i)} - on_page
        masters: dict[str, Json] = {}
        for master_id in sorted(wanted):
            try:
                masters[master_id] = self.graph.get(
                    f"me/events/{_path_id(master_id)}",
                    params={"$select": MASTER_SELECT},
                    account_level=False,
                )
            except ProviderRejected:
                # Gone (its removal arrives in the delta) or refused on its own (403): keep the
                # occurrence with what it has rather than fail the page.
                continue
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


def _rows(body: Mapping[str, Any]) -> list[Json]:
    """The page's items that are objects with an id (anything else is no change we can use)."""
    return [i for i in body.get("value") or [] if isinstance(i, dict) and i.get("id")]
