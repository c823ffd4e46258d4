"""A person signs in through the sandbox's consent page, Warmline syncs, and the relationships
page ranks their real correspondents — checked in headless Chromium, with screenshots."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from core.db import utcnow
from core.models import ConnectedAccount, Contact
from core.relationships import list_relationships
from tests.browser.conftest import ARTIFACTS, LiveWarmline
from tests.browser.test_sidebar import _sign_in_with_google
from tests.functional.syncing import factory_for, sync_until_idle

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from sandbox.server import Sandbox

pytestmark = pytest.mark.browser


def test_relationships_page_ranks_real_correspondents_filters_and_fits_a_phone(
    page: Page, live: LiveWarmline, make_mailbox, sandbox: Sandbox
) -> None:
    sandbox.state.controls.set_quota_profile("legacy")
    mailbox = make_mailbox("google", messages=300)
    _sign_in_with_google(page, live, mailbox)
    factory = factory_for(live.settings)
    with factory() as session:
        account = session.scalars(select(ConnectedAccount)).one()
    sync_until_idle(live.settings, uuid.UUID(str(account.id)))
    with factory() as session:
        strongest = session.scalars(
            select(Contact)
            .where(
                Contact.user_id == account.user_id,
                Contact.kind == "person",
                Contact.strength.is_not(None),
            )
            .order_by(Contact.strength.desc(), Contact.id.desc())
            .limit(1)
        ).one()
        never_met = list_relationships(
            session, user_id=account.user_id, now=utcnow(), filter="never_met"
        )

    # From the accounts page, through the main navigation.
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Relationships", exact=True).click()
    page.wait_for_url(f"{live.url}/relationships")
    rows = page.get_by_test_id("relationship")
    assert rows.count() >= 1
    first = rows.first
    assert first.get_attribute("data-address") == strongest.address
    score = first.get_by_test_id("relationship-strength")
    assert score.get_attribute("data-value") == str(strongest.strength)
    name = first.get_by_test_id("relationship-name")
    assert name.inner_text() == (strongest.display_name or strongest.address)
    assert first.get_by_test_id("relationship-last").inner_text().strip()
    strengths = [int(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.strength)")]
    assert strengths == sorted(strengths, reverse=True)
    tabs = page.get_by_role("navigation", name="Show")
    assert tabs.get_by_role("link", name="All", exact=True).get_attribute("aria-current") == "page"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "relationships-wide.png"), full_page=True)

    # A filter tab: only the people never met, the tab marked current.
    tabs.get_by_role("link", name="Never met", exact=True).click()
    page.wait_for_url(lambda url: url == f"{live.url}/relationships?filter=never_met")
    tab = tabs.get_by_role("link", name="Never met", exact=True)
    assert tab.get_attribute("aria-current") == "page"
    shown = page.get_by_test_id("relationship").evaluate_all("rs => rs.map(r => r.dataset.address)")
    assert shown == [item["address"] for item in never_met.items]
    if not shown:
        assert page.get_by_test_id("empty-state").is_visible()

    # On a phone, 360 px wide: nothing may overflow sideways.
    page.set_viewport_size({"width": 360, "height": 800})
    page.goto(f"{live.url}/relationships")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(ARTIFACTS / "relationships-360px.png"), full_page=True)

    # A row's name opens that person's sidebar.
    page.get_by_test_id("relationship-name").first.click()
    page.wait_for_url(lambda url: url.startswith(f"{live.url}/sidebar?email="))
    assert page.get_by_test_id("contact-address").inner_text() == strongest.address
