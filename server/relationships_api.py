"""The relationships page and its API: every person the user knows, ranked by strength.

Routes (thin: parse, authorize, call core/relationships.py, serialize through server/schemas.py):

* `GET /api/v1/relationships?filter=&q=&cursor=&limit=` — one page, `{items, next_cursor,
  filter}`. An empty parameter counts as absent. An unknown filter, a cursor this API did not
  give out, or a limit outside 1..200 answers 400 with a JSON error naming the parameter.
* `GET /relationships` — the same page for a person: filter tabs, a search box, one row per
  person linking to their sidebar, and a "Next page" link carrying the cursor. Rendered
  server-side, no script. Signed out → /login; bad parameters → the error page with 400.

Scoping is the core's: every read is keyed by the caller's user id.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from core import relationships
from core.context import sync_state
from core.db import utcnow
from server import context, schemas
from server.identity import current_user, login_required

bp = Blueprint("relationships_api", __name__)

SUGGESTION_LABELS = {
    "waiting_on_you": "Your turn",
    "no_reply": "No reply yet",
    "after_meeting": "After your meeting",
    "going_quiet": "Going quiet",
    "off_screen": "Talk in person",
}
TABS = (
    (None, "All"),
    ("going_quiet", "Going quiet"),
    ("waiting_on_you", "Waiting on you"),
    ("never_met", "Never met"),
    ("new_this_month", "New this month"),
)


@bp.get("/api/v1/relationships")
@login_required
def list_relationships() -> dict[str, Any]:
    user = current_user()
    assert user is not None  # guaranteed by login_required
    try:
        page = relationships.list_relationships(
            context.db(), user_id=user.id, now=utcnow(), **_params()
        )
    except relationships.InvalidRequest as exc:
        abort(400, description=str(exc))
    body = {"items": page.items, "next_cursor": page.next_cursor, "filter": page.filter}
    return schemas.RelationshipPage.model_validate(body).model_dump(mode="json")


@bp.get("/relationships")
def relationships_page() -> Response | str | tuple[str, int]:
    user = current_user()
    if user is None:
        return redirect(url_for("web.login"))
    try:
        params = _params()
        page = relationships.list_relationships(
            context.db(), user_id=user.id, now=utcnow(), **params
        )
    except relationships.InvalidRequest as exc:
        page_error = render_template(
            "error.html", user=user, title="Cannot show that page", message=f"The {exc}."
        )
        return page_error, 400
    q = params.get("q") or ""
    return render_template(
        "relationships.html",
        user=user,
        page=page,
        q=q,
        tabs=[
            {
                "label": label,
                "url": url_for(".relationships_page", filter=name, q=q or None),
                "current": name == page.filter,
            }
            for name, label in TABS
        ],
        next_url=(
            url_for(".relationships_page", filter=page.filter, q=q or None, cursor=page.next_cursor)
            if page.next_cursor
            else None
        ),
        first_url=(
            url_for(".relationships_page", filter=page.filter, q=q or None)
            if params.get("cursor")
            else None
        ),
        labels=SUGGESTION_LABELS,
        sync=sync_state(context.db(), user_id=user.id, now=utcnow()),
    )


def _params() -> dict[str, Any]:
    """Read the query string: empty values count as absent; limit must be a whole number."""
    args = request.args
    params: dict[str, Any] = {
        "filter": args.get("filter") or None,
        "q": args.get("q") or None,
        "cursor": args.get("cursor") or None,
    }
    raw_limit = (args.get("limit") or "").strip()
    if raw_limit:
        if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6):
            raise relationships.InvalidRequest(
                f"limit must be an integer from 1 to {relationships.MAX_LIMIT}"
            )
        params["limit"] = int(raw_limit)
    return params
