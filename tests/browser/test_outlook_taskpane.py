"""The Outlook task pane in headless Chromium, opened top-level (only Outlook may frame it) with
Microsoft's Office.js CDN unreachable: without an Office host it asks for a Warmline API token,
refuses a wrong one clearly, and shows a real correspondent's numbers for a right one."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from sqlalchemy import select

from core.models import Contact
from tests.browser.conftest import ARTIFACTS, LiveWarmline, sign_in_and_sync
from tests.functional.conftest import CLIENT_ID
from tests.functional.syncing import factory_for

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Request, Route

    from sandbox.server import Sandbox

pytestmark = pytest.mark.browser

AUDIENCE = f"api://{CLIENT_ID}"
OFFICE_JS = "https://appsforoffice.microsoft.com/**"
NAA = pytest.mark.parametrize(
    "live_overrides", [{"microsoft_addin_audience": AUDIENCE}], ids=["naa"], indirect=True
)


def _offline_office(page: Page) -> tuple[list[str], list[str]]:
    """Make Office.js unreachable; return the blocked URLs and the page's CSP violations/errors."""
    blocked: list[str] = []
    problems: list[str] = []

    def block(route: Route) -> None:
        blocked.append(route.request.url)
        route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.route(OFFICE_JS, block)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return blocked, problems


@NAA
def test_taskpane_without_office_asks_for_a_token_and_shows_the_contact(
    page: Page, live: LiveWarmline, make_mailbox, sandbox: Sandbox
) -> None:
    sandbox.state.controls.set_quota_profile("legacy")
    mailbox = make_mailbox("google", messages=120)
    account = sign_in_and_sync(page, live, mailbox)
    with factory_for(live.settings)() as session:
        top = session.scalars(
            select(Contact)
            .where(Contact.user_id == account.user_id, Contact.kind == "person")
            .order_by(Contact.strength.desc(), Contact.address)
            .limit(1)
        ).one()
    assert top.strength, "the sync should have produced a correspondent with a strength"

    # A Warmline API token, created the way a person would: the API, with their session.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    created = page.context.request.post(
        f"{live.url}/api/v1/tokens", data={"name": "outlook"}, headers={"X-CSRF-Token": csrf or ""}
    )
    assert created.status == 201, created.text()
    token = created.json()["token"]

    # Beside a message the pane is about 320px wide: everything below happens at that width.
    page.set_viewport_size({"width": 320, "height": 700})
    blocked, problems = _offline_office(page)
    page.goto(f"{live.url}/addin/outlook/taskpane?email={quote(top.address)}")
    assert blocked, "the page should have asked for Office.js"

    # NAA configured: the vendored MSAL.js is there, under the task pane's CSP.
    main = page.locator("#taskpane")
    assert main.get_attribute("data-naa-scope") == f"{AUDIENCE}/access_as_user"
    assert page.evaluate("typeof window.msal.createNestablePublicClientApplication") == "function"
    assert page.evaluate("typeof window.msal.InteractionRequiredAuthError") == "function"

    # No Office host → no NAA → the token form.
    form = page.get_by_test_id("tp-token-form")
    form.wait_for(state="visible")
    assert "paste a Warmline API token" in page.get_by_test_id("tp-status").inner_text()
    assert page.get_by_test_id("tp-facts").is_hidden()

    # A wrong token: a clear error, no data, the form again, nothing remembered.
    page.get_by_label("Warmline API token").fill("wl_not_a_real_token")
    page.get_by_role("button", name="Save").click()
    status = page.get_by_test_id("tp-status")
    status.filter(has_text="did not accept").wait_for()
    assert "unknown or revoked API token" in status.inner_text()
    assert page.get_by_test_id("tp-facts").is_hidden()
    assert page.get_by_test_id("tp-name").inner_text() == "Warmline"
    assert top.address not in page.locator("body").inner_text()
    assert form.is_visible()
    assert page.evaluate("localStorage.getItem('warmline.apiToken')") is None
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "outlook-taskpane-refused-320px.png"), full_page=True)

    # The real token: the contact's strength and counts, as the database has them.
    page.get_by_label("Warmline API token").fill(token)
    page.get_by_role("button", name="Save").click()
    _assert_shows(page, top)
    assert form.is_hidden()
    assert page.evaluate("localStorage.getItem('warmline.apiToken')") == token

    # Next message: the remembered token answers without asking; nothing overflows.
    page.reload()
    _assert_shows(page, top)
    assert form.is_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.screenshot(path=str(ARTIFACTS / "outlook-taskpane-320px.png"), full_page=True)

    # Someone unknown with a long unbroken address (shown as the name): it wraps, no overflow.
    stranger = "a-long-unbroken-address-of-somebody-new@subdomain.example-organisation.example"
    page.goto(f"{live.url}/addin/outlook/taskpane?email={quote(stranger)}")
    page.get_by_test_id("tp-status").filter(has_text="No history with this person yet").wait_for()
    assert page.get_by_test_id("tp-facts").is_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert problems == []


# An Outlook host stand-in: Office.js itself stays unreachable; onReady waits for the test.
FAKE_OFFICE = """
window.Office = {
  onReady: function (callback) { window.__officeReady = callback; },
  context: {
    requirements: {
      isSetSupported: function (name, version) {
        window.__asked = name + " " + version;
        return window.__naaSupported === true;
      }
    },
    mailbox: { item: { from: { emailAddress: "ann@example.org" } } }
  }
};
"""
# The real MSAL.js, with the host's side of NAA replaced: record calls, answer per `mode`.
FAKE_NAA = """([mode, supported]) => {
  window.__naaSupported = supported;
  const calls = (window.__calls = []);
  msal.createNestablePublicClientApplication = async (config) => {
    calls.push("create " + config.auth.clientId + " " + config.auth.authority);
    return {
      acquireTokenSilent: async (request) => {
        calls.push("silent " + request.scopes.join(" "));
        if (mode === "silent") { return { accessToken: "naa-silent" }; }
        if (mode === "interaction") {
          throw new msal.InteractionRequiredAuthError("consent_required");
        }
        throw new Error("host unavailable");
      },
      acquireTokenPopup: async (request) => {
        calls.push("popup " + request.scopes.join(" "));
        return { accessToken: "naa-popup" };
      },
    };
  };
  window.__officeReady();
}"""
SCOPE = f"{AUDIENCE}/access_as_user"


@NAA
@pytest.mark.parametrize(
    ("mode", "supported", "calls", "sent"),
    [
        ("silent", True, ["create", f"silent {SCOPE}"], "naa-silent"),
        ("interaction", True, ["create", f"silent {SCOPE}", f"popup {SCOPE}"], "naa-popup"),
        ("failure", True, ["create", f"silent {SCOPE}"], None),
        ("silent", False, [], None),
    ],
    ids=["silent", "consent-popup", "host-error", "no-requirement-set"],
)
def test_taskpane_nested_app_auth_follows_microsofts_pattern(
    page: Page,
    live: LiveWarmline,
    mode: str,
    supported: bool,
    calls: list[str],
    sent: str | None,
) -> None:
    blocked, problems = _offline_office(page)
    page.add_init_script(FAKE_OFFICE)
    authorizations: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.endswith("/addin/outlook/context"):
            authorizations.append(request.headers.get("authorization", ""))

    page.on("request", on_request)
    page.goto(f"{live.url}/addin/outlook/taskpane")
    assert blocked
    page.evaluate(FAKE_NAA, [mode, supported])

    form = page.get_by_test_id("tp-token-form")
    form.wait_for(state="visible")  # every case ends at the token form: see below
    assert page.evaluate("window.__asked") == "NestedAppAuth 1.1"
    made = page.evaluate("window.__calls")
    if calls:
        authority = live.settings.microsoft_authority
        assert made[0] == f"create {CLIENT_ID} {authority}"
    assert [call.split(" ", 1)[0] if call.startswith("create") else call for call in made] == calls
    status = page.get_by_test_id("tp-status").inner_text()
    if sent is None:
        # No NAA token: nothing is sent, the person is offered the API-token form.
        assert authorizations == []
        assert "paste a Warmline API token" in status
    else:
        # The NAA token went to Warmline, which cannot verify this stand-in's token: the
        # refusal is shown and the API-token form offered as the way on.
        assert authorizations == [f"Bearer {sent}"]
        assert "did not accept this token (access token rejected" in status
    assert page.get_by_test_id("tp-facts").is_hidden()
    assert problems == []


def test_taskpane_without_naa_leaves_msal_out(page: Page, live: LiveWarmline) -> None:
    blocked, problems = _offline_office(page)
    page.goto(f"{live.url}/addin/outlook/taskpane?email=ann@example.org")
    assert blocked
    assert page.locator("script[src*='msal-browser']").count() == 0
    assert page.evaluate("typeof window.msal") == "undefined"
    page.get_by_test_id("tp-token-form").wait_for(state="visible")
    assert problems == []


def _assert_shows(page: Page, contact: Contact) -> None:
    facts = page.get_by_test_id("tp-facts")
    facts.wait_for(state="visible")
    assert page.get_by_test_id("tp-name").inner_text() == (contact.display_name or contact.address)
    assert page.get_by_test_id("tp-address").inner_text() == contact.address
    assert page.get_by_test_id("tp-strength").inner_text() == f"{contact.strength}/100"
    counts = page.locator("#tp-counts").inner_text()
    assert counts == f"{contact.inbound_count} from them · {contact.outbound_count} from you"
