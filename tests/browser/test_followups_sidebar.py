"""The follow-up a person sees beside a message, and what its buttons do — in headless Chromium:
schedule it (an event appears in their calendar), snooze it (the event goes), mark it done."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from core.models import ConnectedAccount
from tests.browser.conftest import ARTIFACTS, LiveWarmline
from tests.browser.test_sidebar import _sign_in_with_google
from tests.functional.syncing import factory_for, sync_until_idle
from tests.functional.test_followups import XAVI, ZED, _calendar_events, _followups, _plant

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from sandbox.server import Sandbox

pytestmark = pytest.mark.browser


def test_schedule_a_follow_up_from_the_sidebar_then_mark_it_done(
    page: Page, live: LiveWarmline, make_mailbox, sandbox: Sandbox
) -> None:
    sandbox.state.controls.set_quota_profile("legacy")
    mailbox = make_mailbox("google", messages=40, days=120)
    _plant(sandbox, mailbox, dt.datetime.now(dt.UTC))
    _sign_in_with_google(page, live, mailbox)
    factory = factory_for(live.settings)
    with factory() as session:
        account = session.scalars(select(ConnectedAccount)).one()
    user_id = account.user_id
    sync_until_idle(live.settings, uuid.UUID(str(account.id)))
    _followups(live.settings, user_id)  # what the worker does after a sync

    # The relationships page lists who waits for an answer; Xavi's can be dismissed right there.
    page.goto(f"{live.url}/relationships?filter=waiting_on_you")
    waiting = page.get_by_test_id("relationship")
    addresses = {waiting.nth(i).get_attribute("data-address") for i in range(waiting.count())}
    assert {ZED, XAVI} <= addresses
    page.locator(f'[data-address="{XAVI}"]').get_by_test_id("relationship-dismiss").click()
    page.wait_for_url(f"{live.url}/relationships?filter=waiting_on_you")
    assert page.locator(f'[data-address="{XAVI}"]').count() == 0
    assert page.locator(f'[data-address="{ZED}"]').count() == 1

    page.goto(f"{live.url}/sidebar?email={ZED}")
    item = page.get_by_test_id("follow-up")
    assert item.get_attribute("data-kind") == "waiting_on_you"
    assert "Zed Quill wrote" in item.inner_text()
    page.get_by_test_id("follow-up-accept").click()
    page.wait_for_url(f"{live.url}/sidebar?email=*")
    assert page.get_by_test_id("follow-up").get_attribute("data-status") == "accepted"

    _followups(live.settings, user_id)  # the worker writes the event
    [event] = _calendar_events(sandbox, mailbox)
    assert event["summary"] == "Reply to Zed Quill"
    page.reload()
    assert "In your calendar" in page.get_by_test_id("follow-up-slot").inner_text()
    page.set_viewport_size({"width": 300, "height": 900})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 300
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sidebar-follow-up-300px.png"), full_page=True)

    # Snoozed for a week: the event leaves the calendar, the sidebar says until when.
    page.get_by_test_id("follow-up-snooze").click()
    page.wait_for_url(f"{live.url}/sidebar?email=*")
    assert page.get_by_test_id("follow-up").get_attribute("data-status") == "snoozed"
    assert "Snoozed until" in page.get_by_test_id("follow-up").inner_text()
    _followups(live.settings, user_id)
    assert _calendar_events(sandbox, mailbox) == []

    page.get_by_test_id("follow-up-done").click()
    page.wait_for_url(f"{live.url}/sidebar?email=*")
    assert page.get_by_test_id("follow-ups").count() == 0
