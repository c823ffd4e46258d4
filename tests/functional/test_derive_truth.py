"""Derived relationship fields against the sandbox's independently computed ground truth.

The whole path a user relies on: generated mailbox → real connectors → sync engine → storage →
derivation → contacts, compared field by field with what the sandbox's generator knows to be
true (sandbox/truth.py, which shares no code with Warmline).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from core.db import transaction
from core.derive import rebuild_user
from core.models import ConnectedAccount, Contact
from core.settings import Settings
from tests.functional.conftest import Browser
from tests.functional.syncing import factory_for, sync_until_idle

if TYPE_CHECKING:
    from sandbox.server import Sandbox

# Generated "today" (midnight UTC): the same mailbox all day, and never older than Outlook's
# calendarView window (two years back), which it would slide out of if generated at a fixed date.
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
GENERATED_AT_MS = int(TODAY.timestamp() * 1000)

FIELDS = (
    "inbound_count",
    "outbound_count",
    "first_contact_at",
    "last_contact_at",
    "last_inbound_at",
    "last_outbound_at",
    "awaiting_reply_from",
    "past_meetings",
    "last_meeting_at",
    "next_meeting_at",
)


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _derived(settings: Settings, account_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    with factory_for(settings)() as session:
        user_id = session.get(ConnectedAccount, account_id).user_id
        rows = session.scalars(
            select(Contact).where(Contact.user_id == user_id, Contact.kind == "person")
        ).all()
        return {
            c.address: {
                "inbound_count": c.inbound_count,
                "outbound_count": c.outbound_count,
                "first_contact_at": _ms(c.first_contact_at),
                "last_contact_at": _ms(c.last_contact_at),
                "last_inbound_at": _ms(c.last_inbound_at),
                "last_outbound_at": _ms(c.last_outbound_at),
                "awaiting_reply_from": c.awaiting_reply_from,
                "past_meetings": c.past_meetings,
                "last_meeting_at": _ms(c.last_meeting_at),
                "next_meeting_at": _ms(c.next_meeting_at),
            }
            for c in rows
        }


def _truncate(truth: dict[str, Any], provider: str) -> dict[str, Any]:
    if provider == "google":
        return truth
    # Graph reports times in whole seconds.
    return {
        k: (v // 1000 * 1000 if isinstance(v, int) and k.endswith("_at") else v)
        for k, v in truth.items()
    }


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_derived_fields_equal_the_ground_truth(
    provider: str, browser: Browser, make_mailbox, settings: Settings, sandbox: Sandbox
) -> None:
    from sandbox.truth import ground_truth

    sandbox.state.controls.set_quota_profile("legacy")
    settings = settings.model_copy(update={"gmail_quota_profile": "legacy"})
    # A fixed mailbox (seed and generation time), so the comparison is the same on every run.
    mailbox = make_mailbox(provider, messages=400, seed=2, now_ms=GENERATED_AT_MS, days=700)
    browser.connect(provider, mailbox)
    account_id = uuid.UUID(browser.client.get("/api/v1/accounts").get_json()["accounts"][0]["id"])
    sync_until_idle(settings, account_id)
    now = dt.datetime.now(dt.UTC)
    with transaction(factory_for(settings)) as session:
        user_id = session.get(ConnectedAccount, account_id).user_id
        rebuild_user(session, user_id=user_id, now=now)
    truth = ground_truth(sandbox.state.store, mailbox, now_ms=int(now.timestamp() * 1000))
    expected = {
        address: _truncate({f: fact[f] for f in FIELDS}, provider)
        for address, fact in truth["contacts"].items()
        if fact["is_person"]
        and (fact["inbound_count"] or fact["outbound_count"] or fact["past_meetings"]
             or fact["next_meeting_at"])
    }  # fmt: skip
    derived = {a: _truncate(v, provider) for a, v in _derived(settings, account_id).items()}
    missing = sorted(set(expected) - set(derived))
    extra = sorted(set(derived) - set(expected))
    wrong = {
        a: {f: (derived[a][f], expected[a][f]) for f in FIELDS if derived[a][f] != expected[a][f]}
        for a in set(expected) & set(derived)
    }
    wrong = {a: diff for a, diff in wrong.items() if diff}
    assert (missing, extra, wrong) == ([], [], {}), (
        f"{len(missing)} missing, {len(extra)} extra, {len(wrong)} wrong of {len(expected)}: "
        f"missing {missing[:3]} extra {extra[:3]} wrong {list(wrong.items())[:3]}"
    )
