"""A person signs in through the sandbox's consent page, Warmline syncs, and the sidebar shows
who a real correspondent is to them — checked in headless Chromium, with screenshots."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from core.models import ConnectedAccount, Contact
from tests.browser.conftest import ARTIFACTS, LiveWarmline
from tests.functional.syncing import factory_for, sync_until_idle

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from sandbox.server import Sandbox

pytestmark = pytest.mark.browser


def _sign_in_with_google(page: Page, live: LiveWarmline, mailbox: str) -> None:
    page.goto(f"{live.url}/login")
    page.get_by_role("link", name="Sign in with Google").click()
    # The sandbox's consent page: pick the mailbox, keep every box ticked, press Allow.
    page.get_by_label("Sign in as").select_option(mailbox)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{live.url}/accounts")


def test_connect_sync_and_open_the_sidebar_for_a_real_correspondent(
    page: Page, live: LiveWarmline, make_mailbox, sandbox: Sandbox
) -> None:
    sandbox.state.controls.set_quota_profile("legacy")
    mailbox = make_mailbox("google", messages=300)
    _sign_in_with_google(page, live, mailbox)
    assert page.get_by_role("cell", name=mailbox).is_visible()

    factory = factory_for(live.settings)
    with factory() as session:
        account = session.scalars(select(ConnectedAccount)).one()
    sync_until_idle(live.settings, uuid.UUID(str(account.id)))
    with factory() as session:
        top = session.scalars(
            select(Contact)
            .where(Contact.user_id == account.user_id, Contact.kind == "person")
            .order_by(Contact.strength.desc(), Contact.address)
            .limit(1)
        ).one()

    page.goto(f"{live.url}/sidebar?email={top.address}")
    name = page.get_by_test_id("contact-name")
    assert name.inner_text() == (top.display_name or top.address)
    assert page.get_by_test_id("strength").get_attribute("data-value") == str(top.strength)
    assert page.get_by_test_id("inbound-count").inner_text() == str(top.inbound_count)
    assert page.get_by_test_id("outbound-count").inner_text() == str(top.outbound_count)
    assert page.get_by_test_id("last-contact").inner_text().strip()
    assert page.get_by_test_id("timeline-chart").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sidebar-wide.png"), full_page=True)

    # Beside a message the panel is about 300px wide: nothing may overflow sideways.
    page.set_viewport_size({"width": 300, "height": 900})
    page.goto(f"{live.url}/sidebar?email={top.address}")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 300
    page.screenshot(path=str(ARTIFACTS / "sidebar-300px.png"), full_page=True)

    # Someone the user never wrote to: a useful empty answer, not an error.
    page.goto(f"{live.url}/sidebar?email=nobody@unknown.example")
    assert page.get_by_test_id("empty-state").is_visible()


def test_signed_out_visitors_are_sent_to_sign_in(page: Page, live: LiveWarmline) -> None:
    page.goto(f"{live.url}/sidebar?email=someone@example.org")
    assert page.url.startswith(f"{live.url}/login")
    assert page.get_by_role("heading", name="Sign in").is_visible()
