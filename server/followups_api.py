"""Follow-ups over HTTP: list and act on suggestions, preferences, the ICS feed.

* `GET /api/v1/followups?status=` — the user's suggestions (default: open, accepted, snoozed).
* `POST /api/v1/followups/<id>/accept|done|snooze|dismiss` — idempotent; another user's id is a
  404; acting on a finished one is a 409. Each action queues a follow-up run, which brings the
  calendar in line (the event appears, moves or goes).
* `GET/PATCH /api/v1/preferences` — time zone, working hours and days, auto-scheduling, which
  account's calendar.
* `POST /api/v1/calendar-feed` makes the secret ICS URL (revoking any earlier one), `DELETE`
  revokes it; `GET /feeds/<token>.ics` serves it (the token is the only credential; an unknown
  one is a 404 that says nothing).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, request, url_for
from pydantic import ValidationError

from core.db import utcnow
from core.followups import actions, feed
from core.followups.policy import Preferences, is_time_zone
from core.models import ConnectedAccount, FollowupStatus, User
from core.queue import FOLLOWUPS_USER
from server import context, schemas
from server.identity import current_user, login_required

bp = Blueprint("followups_api", __name__)

STATUS_FILTERS: dict[str, tuple[FollowupStatus, ...]] = {
    "live": actions.LIVE,
    "all": tuple(FollowupStatus),
    **{s.value: (s,) for s in FollowupStatus},
}


@bp.get("/api/v1/followups", endpoint="list_followups")
@login_required
def list_view() -> dict[str, Any]:
    wanted = request.args.get("status", "live")
    if wanted not in STATUS_FILTERS:
        abort(400, description=f"status must be one of: {', '.join(STATUS_FILTERS)}")
    session = context.db()
    rows = actions.list_followups(session, user_id=_user_id(), statuses=STATUS_FILTERS[wanted])
    body = {"follow_ups": actions.as_json(session, rows, now=utcnow())}
    return schemas.FollowUpList.model_validate(body).model_dump(mode="json")


@bp.post("/api/v1/followups/<rowid:followup_id>/accept", endpoint="accept_followup")
@login_required
def accept_view(followup_id: int) -> dict[str, Any]:
    body = _body(schemas.AcceptRequest, allow_empty=True)
    return _act(
        lambda s, u, n: actions.accept(
            s, user_id=u, followup_id=followup_id, invite=body.invite, now=n
        )
    )


@bp.post("/api/v1/followups/<rowid:followup_id>/done", endpoint="done_followup")
@login_required
def done_view(followup_id: int) -> dict[str, Any]:
    return _act(lambda s, u, n: actions.done(s, user_id=u, followup_id=followup_id, now=n))


@bp.post("/api/v1/followups/<rowid:followup_id>/dismiss", endpoint="dismiss_followup")
@login_required
def dismiss_view(followup_id: int) -> dict[str, Any]:
    return _act(lambda s, u, n: actions.dismiss(s, user_id=u, followup_id=followup_id, now=n))


@bp.post("/api/v1/followups/<rowid:followup_id>/snooze", endpoint="snooze_followup")
@login_required
def snooze_view(followup_id: int) -> dict[str, Any]:
    body = _body(schemas.SnoozeRequest)
    return _act(
        lambda s, u, n: actions.snooze(
            s, user_id=u, followup_id=followup_id, until=body.until, now=n
        )
    )


@bp.get("/api/v1/preferences", endpoint="get_preferences")
@login_required
def get_preferences() -> dict[str, Any]:
    user = _user()
    return schemas.Preferences.model_validate(
        Preferences.of(user.preferences).as_json()
    ).model_dump(mode="json")


@bp.patch("/api/v1/preferences", endpoint="update_preferences")
@login_required
def update_preferences() -> dict[str, Any]:
    update = _body(schemas.PreferencesUpdate)
    user = _user()
    merged = {**Preferences.of(user.preferences).as_json()}
    for name in update.model_fields_set:
        merged[name] = getattr(update, name)
    if merged.get("time_zone") is not None and not is_time_zone(str(merged["time_zone"])):
        abort(400, description=f"time_zone: unknown time zone {merged['time_zone']!r}")
    if str(merged["work_end"]) <= str(merged["work_start"]):
        abort(400, description="work_end must be after work_start")
    account = merged.get("calendar_account_id")
    if account is not None:
        try:
            found = context.db().get(ConnectedAccount, uuid.UUID(str(account)))
        except ValueError:
            found = None
        if found is None or found.user_id != user.id:
            abort(400, description="calendar_account_id: not one of your accounts")
    user.preferences = Preferences.of(merged).as_json()
    _commit_and_run(user.id)
    return schemas.Preferences.model_validate(user.preferences).model_dump(mode="json")


@bp.post("/api/v1/calendar-feed", endpoint="create_calendar_feed")
@login_required
def create_feed() -> tuple[dict[str, Any], int]:
    raw = feed.rotate_token(context.db(), user_id=_user_id())
    url = f"{context.settings().effective_public_url}/feeds/{raw}.ics"
    return schemas.CalendarFeed(url=url).model_dump(mode="json"), 201


@bp.delete("/api/v1/calendar-feed", endpoint="revoke_calendar_feed")
@login_required
def revoke_feed() -> tuple[str, int]:
    feed.revoke_token(context.db(), user_id=_user_id())
    return "", 204


@bp.get("/feeds/<token>.ics", endpoint="calendar_feed")
def calendar_feed(token: str) -> Response:
    session = context.db()
    user = feed.user_for_token(session, token)
    if user is None:
        abort(404, description="no such feed")
    body = feed.render_user_feed(session, user, now=utcnow())
    response = Response(body, mimetype="text/calendar")
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Disposition"] = 'inline; filename="warmline-follow-ups.ics"'
    return response


# Browser forms (the sidebar's and the relationships page's buttons): same actions, then back.

FORM_ACTIONS = ("accept", "done", "snooze", "dismiss")
SNOOZE_DAYS = (1, 3, 7, 30)


@bp.post("/followups/<rowid:followup_id>/<action>", endpoint="followup_form")
@login_required
def followup_form(followup_id: int, action: str) -> Response:
    if action not in FORM_ACTIONS:
        abort(404, description="no such action")
    invite = request.form.get("invite") == "1"
    days = request.form.get("days", "1")
    if action == "snooze" and not (days.isdigit() and int(days) in SNOOZE_DAYS):
        abort(400, description=f"days: snooze for one of {SNOOZE_DAYS} days")

    def run(session: Any, user_id: uuid.UUID, now: dt.datetime) -> Any:
        common = {"user_id": user_id, "followup_id": followup_id, "now": now}
        if action == "accept":
            return actions.accept(session, invite=invite, **common)
        if action == "snooze":
            until = now + dt.timedelta(days=int(days))
            return actions.snooze(session, until=until, **common)
        return (actions.done if action == "done" else actions.dismiss)(session, **common)

    _perform(run)
    return redirect(_local(request.form.get("next")))


@bp.post("/settings/followups", endpoint="preferences_form")
@login_required
def preferences_form() -> Response:
    user = _user()
    merged = Preferences.of(user.preferences).as_json()
    merged["auto_schedule"] = request.form.get("auto_schedule") == "1"
    zone = (request.form.get("time_zone") or "").strip()
    if zone and not is_time_zone(zone):
        flash(f"Unknown time zone {zone!r}: use a name like Europe/Berlin.", "error")
        return redirect(url_for("web.accounts_page"))
    merged["time_zone"] = zone or None
    for name in ("work_start", "work_end"):
        value = (request.form.get(name) or "").strip()
        if value:
            merged[name] = value
    user.preferences = Preferences.of(merged).as_json()
    _commit_and_run(user.id)
    flash("Follow-up settings saved.", "ok")
    return redirect(url_for("web.accounts_page"))


@bp.post("/settings/calendar-feed", endpoint="feed_form")
@login_required
def feed_form() -> Response:
    user_id = _user_id()
    if request.form.get("action") == "revoke":
        feed.revoke_token(context.db(), user_id=user_id)
        flash("Calendar feed turned off: the old address no longer works.", "ok")
    else:
        raw = feed.rotate_token(context.db(), user_id=user_id)
        url = f"{context.settings().effective_public_url}/feeds/{raw}.ics"
        flash(f"Subscribe to this address in your calendar app (shown once): {url}", "ok")
    return redirect(url_for("web.accounts_page"))


def _local(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/relationships"


# Helpers


def _user() -> User:
    user = current_user()
    assert user is not None  # guaranteed by login_required
    return user


def _user_id() -> uuid.UUID:
    return _user().id


def _body(model: type[schemas.M], *, allow_empty: bool = False) -> schemas.M:
    raw = request.get_json(silent=True)
    if raw is None and allow_empty and not request.data:
        raw = {}
    if not isinstance(raw, dict):
        abort(400, description="send a JSON object")
    try:
        # Not strict: JSON has no datetime type, `until` arrives as an RFC 3339 string.
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        ]
        abort(400, description="; ".join(problems))


def _act(action: Any) -> dict[str, Any]:
    row, now = _perform(action)
    (body,) = actions.as_json(context.db(), [row], now=now)
    return schemas.FollowUp.model_validate(body).model_dump(mode="json")


def _perform(action: Any) -> tuple[Any, dt.datetime]:
    """Run a user action on a follow-up; its errors become 404/409/400; queue the calendar."""
    user_id = _user_id()
    now = utcnow()
    try:
        row = action(context.db(), user_id, now)
    except actions.NotFound as exc:
        abort(404, description=str(exc))
    except actions.Conflict as exc:
        abort(409, description=str(exc))
    except actions.Invalid as exc:
        abort(400, description=str(exc))
    _commit_and_run(user_id)
    return row, now


def _commit_and_run(user_id: uuid.UUID) -> None:
    # Commit before queueing, so the worker reads what the user just did.
    context.db().commit()
    context.celery().send_task(FOLLOWUPS_USER, args=[str(user_id)])
