"""`/_sandbox/*`: the sandbox's own JSON control API (not part of any provider).

Endpoints (bodies and answers are JSON; bad input answers 400 `{"error": "...", "status": 400}`):

- `GET  /_sandbox/health` → `{ok, http_url, https_url, ca_path}`
- `GET  /_sandbox/mailboxes` → `{mailboxes: [summary]}`
- `POST /_sandbox/mailboxes` `{email, provider, seed? (0), messages? (200), contacts?, days?,
  now_ms?, display_name?, time_zone?}` → 201 summary (`sandbox.generate.generate_mailbox`);
  409 if it exists
- `GET  /_sandbox/mailboxes/{email}` → summary (counts, history id, change seq); 404 unknown
- `DELETE /_sandbox/mailboxes/{email}`
- `POST /_sandbox/mailboxes/{email}/activity` `{seed, new, deleted, label_changes, moved,
  events_changed}` → what changed (`sandbox.generate.generate_activity`)
- `POST /_sandbox/mailboxes/{email}/expire-cursors` → history ids and sync/delta tokens go stale
- `POST /_sandbox/mailboxes/{email}/revoke` → every grant (refresh token) of the mailbox dies
- `GET  /_sandbox/mailboxes/{email}/truth?now=ISO-8601` → ground truth (`sandbox.truth`)
- `GET  /_sandbox/controls` → settings, per-mailbox overrides, quota profiles, queued faults
- `PUT  /_sandbox/controls` `{settings?: {...}, mailboxes?: {email: {...} | null},
  costs?: {profile: {method: units}}, fail_next?: [{fault, count?, service?, mailbox?,
  method?}], clear_faults?: bool, reset?: bool}` (flat setting keys are taken as `settings`)
- `POST /_sandbox/controls/reset` → defaults, no faults, counters and windows cleared
- `GET  /_sandbox/counters?mailbox=` → `{counters: {service: {method: {requests, units,
  rejected, faults}}}}`; `POST /_sandbox/counters/reset`
- `GET|POST /_sandbox/probe?service=&mailbox=&method=&units=` → one call through the controls
  (latency, faults, quotas) answering `{ok: true}`; for tests and for checking a configuration.

The same operations are methods of `Store`/`Controls` for in-process use.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from sandbox import generate, truth
from sandbox.controls import DEFAULT_SETTINGS
from sandbox.state import SandboxState, get_state

bp = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")

_PROVIDERS = ("google", "microsoft")


# -- helpers ------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    """Return the JSON object body (empty when there is none); 400 when it is not an object."""
    if not request.get_data():
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _int(data: dict[str, Any], key: str, default: int | None = None, *, minimum: int = 0) -> int:
    value = data.get(key, default)
    if value is None:
        raise BadRequest(f"{key!r} is required")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"{key!r} must be an integer >= {minimum}")
    return value


def _mailbox_or_404(state: SandboxState, email: str) -> dict[str, Any]:
    box = state.store.get_mailbox(email)
    if box is None:
        raise NotFound(f"no mailbox {email!r}")
    return box


def _summary(state: SandboxState, email: str) -> dict[str, Any]:
    box = _mailbox_or_404(state, email)
    store = state.store
    return {
        "email": box["email"],
        "provider": box["provider"],
        "display_name": box.get("display_name"),
        "aliases": box.get("aliases"),
        "time_zone": box.get("time_zone"),
        "user_id": box.get("user_id"),
        "tenant_id": box.get("tenant_id"),
        "seed": box.get("seed"),
        "messages": store.count_messages(email),
        "history_id": box.get("history_id"),
        "history_floor": box.get("history_floor"),
        "change_seq": box.get("change_seq"),
        "token_floor": box.get("token_floor"),
        "calendars": len(store.list_calendars(email)),
    }


def _jsonable(value: Any) -> Any:
    """Make generator/truth results JSON-safe (datetimes → ISO strings, tuples/sets → lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# -- health and probe ---------------------------------------------------------------------------


@bp.get("/health")
def health() -> Response:
    """Say the sandbox is up and where it listens."""
    state = get_state()
    return jsonify(
        ok=True, http_url=state.http_url, https_url=state.https_url, ca_path=state.ca_path
    )


@bp.route("/probe", methods=["GET", "POST"])
def probe() -> Response:
    """Pass one call through the controls, as a provider view would, and answer ok."""
    args = request.args
    service = args.get("service", "gmail")
    method = args.get("method", "probe")
    units_arg = args.get("units")
    try:
        units = int(units_arg) if units_arg is not None else None
    except ValueError:
        raise BadRequest("units must be an integer") from None
    with get_state().controls.call(
        service=service, mailbox=args.get("mailbox"), method=method, units=units
    ):
        return jsonify(ok=True, service=service, method=method)


# -- mailboxes ----------------------------------------------------------------------------------


@bp.get("/mailboxes")
def list_mailboxes() -> Response:
    """List every mailbox with its summary."""
    state = get_state()
    return jsonify(mailboxes=[_summary(state, m["email"]) for m in state.store.list_mailboxes()])


@bp.post("/mailboxes")
def create_mailbox() -> tuple[Response, int]:
    """Generate a mailbox from a seed."""
    state = get_state()
    data = _body()
    email = data.pop("email", None)
    if not isinstance(email, str) or "@" not in email:
        raise BadRequest("'email' must be an email address")
    provider = data.pop("provider", None)
    if provider not in _PROVIDERS:
        raise BadRequest(f"'provider' must be one of {list(_PROVIDERS)}")
    seed = _int(data, "seed", 0)
    data.pop("seed", None)
    data["messages"] = _int(data, "messages", 200, minimum=1)
    if state.store.get_mailbox(email) is not None:
        raise Conflict(f"mailbox {email!r} exists")
    try:
        with state.lock:
            generate.generate_mailbox(
                state.store, email=email, provider=provider, seed=seed, **data
            )
    except TypeError as exc:  # an option the generator does not know
        raise BadRequest(f"bad generator option: {exc}") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return jsonify(_summary(state, email)), 201


@bp.get("/mailboxes/<email>")
def get_mailbox(email: str) -> Response:
    """Summarise one mailbox."""
    return jsonify(_summary(get_state(), email))


@bp.delete("/mailboxes/<email>")
def delete_mailbox(email: str) -> Response:
    """Delete a mailbox and everything in it."""
    state = get_state()
    _mailbox_or_404(state, email)
    with state.lock:
        state.store.delete_mailbox(email)
    return jsonify(ok=True)


@bp.get("/mailboxes/<email>/calendars")
def calendars(email: str) -> Response:
    """The mailbox's calendars with their live events, to look at what a client wrote."""
    state = get_state()
    _mailbox_or_404(state, email)
    out = []
    for cal in state.store.list_calendars(email):
        rows, _ = state.store.list_events(email, cal["id"], page_size=500)
        events = [
            {
                "id": r["body"]["id"],
                "summary": r["body"].get("summary"),
                "start": r["body"].get("start"),
                "end": r["body"].get("end"),
                "attendees": [a.get("email") for a in r["body"].get("attendees") or []],
            }
            for r in rows
            if not r["is_deleted"]
        ]
        out.append({"id": cal["id"], "summary": cal["summary"], "events": events})
    return jsonify(calendars=out)


@bp.post("/mailboxes/<email>/activity")
def activity(email: str) -> Response:
    """Mutate a mailbox like a living one (new, deleted, relabelled, moved, events changed)."""
    state = get_state()
    _mailbox_or_404(state, email)
    data = _body()
    try:
        with state.lock:
            result = generate.generate_activity(state.store, email, **data)
    except TypeError as exc:
        raise BadRequest(f"bad activity option: {exc}") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return jsonify(_jsonable(result) if result is not None else {"ok": True})


@bp.post("/mailboxes/<email>/expire-cursors")
def expire_cursors(email: str) -> Response:
    """Make every history id and sync/delta token handed out so far stale."""
    state = get_state()
    _mailbox_or_404(state, email)
    with state.lock:
        state.store.expire_cursors(email)
    return jsonify(_summary(state, email))


@bp.post("/mailboxes/<email>/revoke")
def revoke(email: str) -> Response:
    """Revoke the mailbox's consent: its refresh and access tokens stop working."""
    state = get_state()
    box = _mailbox_or_404(state, email)
    with state.lock:
        state.store.revoke_all_grants(email, box["provider"])
    return jsonify(ok=True)


@bp.get("/mailboxes/<email>/truth")
def ground_truth(email: str) -> Response:
    """Return the ground truth per contact, as of `now` (default: the current time)."""
    state = get_state()
    _mailbox_or_404(state, email)
    now_arg = request.args.get("now")
    if now_arg:
        try:
            now = dt.datetime.fromisoformat(now_arg.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest("'now' must be an ISO-8601 date-time") from None
        if now.tzinfo is None:
            raise BadRequest("'now' must carry a UTC offset (e.g. 2026-11-23T12:00:00Z)")
    else:
        now = dt.datetime.now(dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    return jsonify(_jsonable(truth.ground_truth(state.store, email, now_ms=now_ms)))


# -- controls and counters ----------------------------------------------------------------------


@bp.get("/controls")
def get_controls() -> Response:
    """Return the controls' settings, overrides, quota profiles and queued faults."""
    return jsonify(get_state().controls.snapshot())


@bp.put("/controls")
def put_controls() -> Response:
    """Change settings (global or per mailbox), costs, queued faults; see module doc."""
    controls = get_state().controls
    data = _body()
    settings = dict(data.pop("settings", None) or {})
    for key in list(data):
        if key in DEFAULT_SETTINGS:
            settings[key] = data.pop(key)
    mailboxes = data.pop("mailboxes", None) or {}
    costs = data.pop("costs", None) or {}
    fail_next = data.pop("fail_next", None) or []
    clear_faults = data.pop("clear_faults", False)
    reset = data.pop("reset", False)
    if data:
        raise BadRequest(f"unknown fields {sorted(data)}")
    if not isinstance(mailboxes, dict) or not isinstance(costs, dict):
        raise BadRequest("'mailboxes' and 'costs' must be objects")
    if not isinstance(fail_next, list):
        raise BadRequest("'fail_next' must be a list")
    try:
        if reset:
            controls.reset()
        if clear_faults:
            controls.clear_faults()
        controls.configure(**settings)
        for email, overrides in mailboxes.items():
            if overrides is None:
                controls.clear_overrides(email)
            elif isinstance(overrides, dict):
                controls.configure(email, **overrides)
            else:
                raise ValueError(f"overrides for {email!r} must be an object or null")
        for profile, table in costs.items():
            if profile not in controls.profiles or not isinstance(table, dict):
                raise ValueError(f"unknown quota profile {profile!r}")
            for method, units in table.items():
                if isinstance(units, bool) or not isinstance(units, int) or units < 0:
                    raise ValueError(f"cost of {method!r} must be a non-negative integer")
                controls.set_cost(profile, method, units)
        for rule in fail_next:
            if not isinstance(rule, dict) or "fault" not in rule:
                raise ValueError("each fail_next entry needs a 'fault'")
            unknown = set(rule) - {"fault", "count", "service", "mailbox", "method"}
            if unknown:
                raise ValueError(f"unknown fail_next fields {sorted(unknown)}")
            controls.fail_next(**rule)
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from None
    return jsonify(controls.snapshot())


@bp.post("/controls/reset")
def reset_controls() -> Response:
    """Restore default controls; clear faults, windows and counters."""
    controls = get_state().controls
    controls.reset()
    return jsonify(controls.snapshot())


@bp.get("/counters")
def counters() -> Response:
    """Return request/unit/rejected/fault counts per service and method."""
    nested: dict[str, dict[str, dict[str, int]]] = {}
    counts = get_state().controls.counters(request.args.get("mailbox"))
    for (service, method), values in sorted(counts.items()):
        nested.setdefault(service, {})[method] = values
    return jsonify(counters=nested)


@bp.post("/counters/reset")
def reset_counters() -> Response:
    """Zero every counter."""
    get_state().controls.reset_counters()
    return jsonify(ok=True)
