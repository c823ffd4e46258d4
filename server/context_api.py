"""Contact context over HTTP: the JSON API, its OpenAPI document and docs page, the sidebar page.

Routes (all thin: parse, authorize, call core/context.py, serialize through server/schemas.py):

* `GET /api/v1/contacts/<email>/context` — one address. Always 200 for a signed-in user: an
  unknown, malformed or own address answers `known: false` with a `reason`, never 400/404, so a
  sidebar needs no error path for what it reads out of a header.
* `POST /api/v1/contexts` `{"emails": [...]}` — all participants of a message, at most 50;
  400 with a JSON error naming the field for anything else.
* `GET /api/openapi.json` (generated, server/openapi.py) and `GET /api/docs` (our own static
  page: works offline, no CDN) — public: they describe the API, they hold no data.
* `GET /sidebar?email=...` — the panel beside a message, rendered server-side from the same
  context (inline SVG chart; sidebar.js only refreshes the sync progress). Signed out → /login.

Scoping is the core's: every read is keyed by the caller's user id, so another user's address
answers exactly like an address nobody knows.
"""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo
from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request
from flask import url_for as flask_url_for

from core.context import contact_context, contacts_context
from core.db import utcnow
from core.followups.calendar import user_time_zone
from server import context, openapi, schemas
from server.identity import current_user, login_required

bp = Blueprint("context_api", __name__)

CHART_WIDTH, CHART_HEIGHT, CHART_PLOT = 240, 92, 70  # viewBox units; plot area height


@bp.get("/api/v1/contacts/<path:email>/context", endpoint="contact_context")
@login_required
def contact_context_view(email: str) -> dict[str, Any]:
    answer = contact_context(context.db(), user_id=_user_id(), email=email, now=_now())
    _add_reconnect_urls(answer["sync"])
    return schemas.ContactContextWithSync.model_validate(answer).model_dump(mode="json")


@bp.post("/api/v1/contexts")
@login_required
def contexts() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='send a JSON object {"emails": ["ann@example.org", ...]}')
    try:
        wanted = schemas.parse_body(schemas.ContextsRequest, body)
    except ValueError as exc:
        abort(400, description=str(exc))
    answer = contacts_context(context.db(), user_id=_user_id(), emails=wanted.emails, now=_now())
    _add_reconnect_urls(answer["sync"])
    return schemas.ContextsResponse.model_validate(answer).model_dump(mode="json")


@bp.get("/api/openapi.json")
def openapi_json() -> dict[str, Any]:
    return openapi.document(current_app)


@bp.get("/api/docs")
def api_docs() -> str:
    return render_template("api_docs.html")


@bp.get("/sidebar")
def sidebar() -> Response | str:
    user = current_user()
    if user is None:
        return redirect(flask_url_for("web.login"))
    email = (request.args.get("email") or "").strip()
    answer = None
    if email:
        answer = contact_context(context.db(), user_id=user.id, email=email, now=_now())
        _add_reconnect_urls(answer["sync"])
    return render_template(
        "sidebar.html",
        user=user,
        email=email,
        ctx=answer,
        chart=_chart(answer["timeline"]) if answer else None,
        context_url=(flask_url_for("context_api.contact_context", email=email) if email else None),
    )


# Helpers


def _now() -> dt.datetime:
    """Now in the user's zone: "yesterday" and "3 days ago" count their days, not UTC's."""
    user = current_user()
    assert user is not None
    zone = user_time_zone(context.db(), user, context.settings().followup_default_time_zone)
    return utcnow().astimezone(zoneinfo.ZoneInfo(zone))


def _user_id() -> Any:
    user = current_user()
    assert user is not None  # guaranteed by login_required
    return user.id


def _add_reconnect_urls(sync: dict[str, Any]) -> None:
    public = context.settings().effective_public_url
    for account in sync["accounts"]:
        account["reconnect_url"] = (
            f"{public}/auth/{account['provider']}/start?intent=connect&login_hint="
            f"{account['email']}"
        )


def _chart(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the geometry of the 12-month bar chart (three bars a month: in, out, meetings)."""
    peak = max([1, *(max(m["inbound"], m["outbound"], m["meetings"]) for m in timeline)])
    slot = CHART_WIDTH / len(timeline)
    base = CHART_PLOT + 6
    months = []
    for i, m in enumerate(timeline):
        year, number = (int(p) for p in m["month"].split("-"))
        bars = []
        for j, series in enumerate(("inbound", "outbound", "meetings")):
            height = round(m[series] / peak * CHART_PLOT, 1)
            bars.append(
                {
                    "series": series,
                    "value": m[series],
                    "x": round(i * slot + 2 + j * 6, 1),
                    "y": round(base - height, 1),
                    "height": height,
                }
            )
        months.append(
            {
                "month": m["month"],
                "name": f"{calendar.month_name[number]} {year}",
                "label": calendar.month_abbr[number][0],
                "label_x": round(i * slot + 10, 1),
                "bars": bars,
                **{k: m[k] for k in ("inbound", "outbound", "meetings")},
            }
        )
    total = {k: sum(m[k] for m in timeline) for k in ("inbound", "outbound", "meetings")}
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "base": base,
        "label_y": CHART_HEIGHT - 2,
        "months": months,
        "total": total,
    }
