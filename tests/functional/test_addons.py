"""The Gmail add-on and the Outlook add-in endpoints, over the real path (sandbox → sync → API).

Tokens are minted here with the sandbox's own signing keys (`state.google_key`,
`state.microsoft_key`), exactly as Google and Entra would sign them; Warmline fetches the public
halves from the sandbox's certificate and JWKS endpoints. A second RSA key stands in for a
forger.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy import select

import migrations
from core.db import transaction
from core.models import (
    ConnectedAccount,
    Contact,
    Followup,
    FollowupKind,
    Message,
    MessageParticipant,
    ParticipantRole,
)
from core.settings import Settings
from server.app import create_app
from tests.functional.card_schema import validate
from tests.functional.conftest import CLIENT_ID, Browser, sandbox_settings
from tests.functional.syncing import factory_for, sync_until_idle

if TYPE_CHECKING:
    from sandbox.keys import SigningKey
    from sandbox.server import Sandbox

SERVICE_ACCOUNT = "service-123456789012@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
ADDIN_AUDIENCE = f"api://{CLIENT_ID}"
CONTEXT = "/api/v1/contacts/{email}/context"
MESSAGE = "/addon/gmail/message"
SIGNATURE = "invalid signature or malformed token"
GMAIL_REASONS = {
    "forged, own kid": "unknown signing key",
    "forged, Google's kid": SIGNATURE,
    "wrong aud": "wrong audience",
    "other endpoint's aud": "wrong audience",
    "wrong issuer": "wrong issuer",
    "wrong service account": "wrong service account",
    "email unverified": "email not verified",
    "expired": "expired",
    "garbage": SIGNATURE,
}
OUTLOOK_REASONS = {
    "wrong aud": "wrong audience",
    "forged, Microsoft's kid": SIGNATURE,
    "forged, own kid": "unknown signing key",
    "no scp": "scope access_as_user missing",
    "other scope": "scope access_as_user missing",
    "issuer of another tenant": "wrong issuer",
    "expired": "token expired",
    "unknown wl token": "unknown or revoked API token",
}


@pytest.fixture
def settings(sandbox: Sandbox, tmp_path: Path) -> Settings:
    settings = sandbox_settings(
        sandbox,
        tmp_path / "data",
        google_addon_service_account=SERVICE_ACCOUNT,
        google_addon_certs_uri=f"{sandbox.http_url}/oauth2/v1/certs",
        microsoft_addin_audience=ADDIN_AUDIENCE,
        gmail_quota_profile="legacy",
    )
    settings.data_dir.mkdir(parents=True)
    migrations.upgrade(settings.effective_database_url)
    return settings


@pytest.fixture(scope="module")
def forger_key() -> SigningKey:
    from sandbox.keys import SigningKey

    return SigningKey.generate("forger")


# Token minting (what Google and Entra would send)


def _sign(key: SigningKey, claims: dict[str, Any], *, kid: str | None = None) -> str:
    now = int(time.time())
    full = {"iat": now, "nbf": now, "exp": now + 600, **claims}
    return key.sign(
        {k: v for k, v in full.items() if v is not None}, headers={"kid": kid} if kid else None
    )


def _google_caller(sandbox: Sandbox, settings: Settings, path: str = MESSAGE, **claims: Any) -> str:
    base = {
        "iss": "https://accounts.google.com",
        "aud": f"{settings.effective_public_url}{path}",
        "azp": "111111111111111111111",
        "sub": "111111111111111111111",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
    }
    return _sign(sandbox.state.google_key, {**base, **claims})


def _google_user(sandbox: Sandbox, sub: str) -> str:
    claims = {"iss": "accounts.google.com", "aud": CLIENT_ID, "sub": sub, "email_verified": True}
    return _sign(sandbox.state.google_key, claims)


def _event(user_token: str | None, message_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "commonEventObject": {"hostApp": "GMAIL", "platform": "WEB", "userLocale": "en"},
        "authorizationEventObject": {"userOAuthToken": "ya29.sandbox", "systemIdToken": "x"},
    }
    if user_token:
        event["authorizationEventObject"]["userIdToken"] = user_token
    if message_id:
        event["gmail"] = {"messageId": message_id, "threadId": "t", "accessToken": "tmp"}
    return event


def _naa(sandbox: Sandbox, oid: str, tid: str, **claims: Any) -> str:
    base = {
        "aud": ADDIN_AUDIENCE,
        "iss": f"{sandbox.https_url}/{tid}/v2.0",
        "tid": tid,
        "oid": oid,
        "sub": "pairwise-sub",
        "azp": CLIENT_ID,
        "scp": "access_as_user",
        "ver": "2.0",
    }
    return _sign(sandbox.state.microsoft_key, {**base, **claims})


def _connect_and_sync(
    browser: Browser, settings: Settings, sandbox: Sandbox, provider: str, mailbox: str
) -> ConnectedAccount:
    sandbox.state.controls.set_quota_profile("legacy")
    status, body = browser.connect(provider, mailbox)
    assert status == 302, body[:300]
    account_id = uuid.UUID(browser.client.get("/api/v1/accounts").get_json()["accounts"][0]["id"])
    sync_until_idle(settings, account_id)
    with factory_for(settings)() as session:
        account = session.get(ConnectedAccount, account_id)
        session.expunge_all()
    return account


def _best_correspondent(settings: Settings, account: ConnectedAccount) -> tuple[Contact, str]:
    """The contact with most mail, and the provider id of a message they sent."""
    with factory_for(settings)() as session:
        contact = session.scalars(
            select(Contact)
            .where(Contact.user_id == account.user_id, Contact.kind == "person")
            .where(Contact.inbound_count > 0)
            .order_by((Contact.inbound_count + Contact.outbound_count).desc(), Contact.address)
            .limit(1)
        ).one()
        message_id = session.scalars(
            select(Message.provider_message_id)
            .join(MessageParticipant, MessageParticipant.message_id == Message.id)
            .where(
                Message.account_id == account.id,
                MessageParticipant.role == ParticipantRole.FROM,
                MessageParticipant.address == contact.address,
            )
            .limit(1)
        ).one()
        session.expunge_all()
    return contact, message_id


def _texts(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for section in card["sections"]:
        for widget in section["widgets"]:
            if "decoratedText" in widget:
                out[widget["decoratedText"]["topLabel"]] = widget["decoratedText"]
    return out


def _buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        b
        for s in card["sections"]
        for w in s["widgets"]
        if "buttonList" in w
        for b in w["buttonList"]["buttons"]
    ]


def _assert_401(response: Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["status"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# Gmail add-on


def test_gmail_card_for_a_real_correspondent(
    app: Flask, browser: Browser, make_mailbox, settings: Settings, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox("google", messages=120, days=300)
    account = _connect_and_sync(browser, settings, sandbox, "google", mailbox)
    contact, message_id = _best_correspondent(settings, account)
    client = app.test_client()
    user_token = _google_user(sandbox, account.provider_account_id)
    with transaction(factory_for(settings)) as session:
        session.add(
            Followup(
                user_id=contact.user_id,
                address=contact.person_key or contact.address,
                kind=FollowupKind.GOING_QUIET,
                cause_key="quiet:1",
                reason="You usually talk every 6 days; the last time was 3 weeks ago.",
                due_at=dt.datetime.now(dt.UTC),
            )
        )

    response = client.post(
        MESSAGE,
        json=_event(user_token, message_id),
        headers={"Authorization": f"Bearer {_google_caller(sandbox, settings)}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert validate(body) == []
    card = body["action"]["navigations"][0]["pushCard"]
    assert card["header"]["title"] == (contact.display_name or contact.address)
    assert contact.address in card["header"]["subtitle"]
    facts = _texts(card)
    assert facts["Strength"]["text"] == f"{contact.strength}/100"
    assert facts["Emails"]["text"].startswith(f"{contact.inbound_count} from them")
    expected = browser.client.get(CONTEXT.format(email=quote(contact.address))).get_json()
    assert facts["Last contact"]["text"] == expected["last_contact_words"]
    assert facts["Follow up"]["text"].startswith("You usually talk every 6 days")
    link = _buttons(card)[-1]["onClick"]["openLink"]["url"]
    assert link == f"{settings.effective_public_url}/sidebar?email={quote(contact.address, '')}"

    # The homepage trigger (its own audience) and an unknown Google user.
    home = client.post(
        "/addon/gmail/homepage",
        json=_event(user_token),
        headers={
            "Authorization": f"Bearer {_google_caller(sandbox, settings, '/addon/gmail/homepage')}"
        },
    )
    assert home.status_code == 200
    assert validate(home.get_json()) == []
    stranger = client.post(
        MESSAGE,
        json=_event(_google_user(sandbox, "999999999999999999999"), message_id),
        headers={"Authorization": f"Bearer {_google_caller(sandbox, settings)}"},
    )
    assert stranger.status_code == 200
    assert validate(stranger.get_json()) == []
    stranger_card = stranger.get_json()["action"]["navigations"][0]["pushCard"]
    assert stranger_card["header"]["subtitle"] == "Connect your account"
    assert _buttons(stranger_card)[0]["onClick"]["openLink"]["url"].startswith(
        settings.effective_public_url
    )
    assert contact.address not in stranger.get_data(as_text=True)


def test_gmail_calls_without_a_valid_google_signature_are_refused(
    app: Flask, settings: Settings, sandbox: Sandbox, forger_key: SigningKey
) -> None:
    client = app.test_client()
    event = _event(_google_user(sandbox, "1"), "m1")
    google_kid = sandbox.state.google_key.kid
    now = int(time.time())
    good_claims = {
        "iss": "https://accounts.google.com",
        "aud": f"{settings.effective_public_url}{MESSAGE}",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "sub": "1",
    }
    bad_tokens = {
        "forged, own kid": _sign(forger_key, good_claims),
        "forged, Google's kid": _sign(forger_key, good_claims, kid=google_kid),
        "wrong aud": _google_caller(sandbox, settings, aud=f"{settings.effective_public_url}/x"),
        "other endpoint's aud": _google_caller(sandbox, settings, "/addon/gmail/homepage"),
        "wrong issuer": _google_caller(sandbox, settings, iss="https://evil.example"),
        "wrong service account": _google_caller(
            sandbox, settings, email="service-1@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
        ),
        "email unverified": _google_caller(sandbox, settings, email_verified=False),
        "expired": _google_caller(sandbox, settings, iat=now - 7200, exp=now - 3600),
        "garbage": "not-a-jwt",
    }
    for label, token in bad_tokens.items():
        response = client.post(MESSAGE, json=event, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (label, response.get_data(as_text=True)[:300])
        _assert_401(response)
        assert GMAIL_REASONS[label] in response.get_json()["error"]["message"], label
    _assert_401(client.post(MESSAGE, json=event))
    # A genuine caller with a forged userIdToken.
    forged_user = _event(
        _sign(forger_key, {"iss": "accounts.google.com", "aud": CLIENT_ID, "sub": "1"}), "m1"
    )
    caller = {"Authorization": f"Bearer {_google_caller(sandbox, settings)}"}
    _assert_401(client.post(MESSAGE, json=forged_user, headers=caller))

    # Without a configured service account the add-on is off, whatever is sent.
    off = create_app(settings.model_copy(update={"google_addon_service_account": None}))
    try:
        response = off.test_client().post(MESSAGE, json=event, headers=caller)
        assert response.status_code == 503
        assert "WARMLINE_GOOGLE_ADDON_SERVICE_ACCOUNT" in response.get_json()["error"]["message"]
    finally:
        off.extensions["warmline"]["engine"].dispose()


# Outlook add-in


@pytest.fixture
def outlook_user(
    browser: Browser, make_mailbox, settings: Settings, sandbox: Sandbox
) -> tuple[ConnectedAccount, Contact]:
    mailbox = make_mailbox("microsoft", messages=80, days=300)
    account = _connect_and_sync(browser, settings, sandbox, "microsoft", mailbox)
    contact, _ = _best_correspondent(settings, account)
    return account, contact


def test_outlook_context_with_naa_and_api_tokens(
    app: Flask,
    browser: Browser,
    other_browser: Browser,
    make_mailbox,
    outlook_user: tuple[ConnectedAccount, Contact],
    settings: Settings,
    sandbox: Sandbox,
    forger_key: SigningKey,
) -> None:
    account, contact = outlook_user
    oid, tid = account.provider_account_id.split(".", 1)
    client = app.test_client()
    expected = browser.client.get(CONTEXT.format(email=quote(contact.address))).get_json()
    assert expected["known"] is True

    def ask(token: str, email: str = contact.address) -> Any:
        return client.post(
            "/addin/outlook/context",
            json={"email": email},
            headers={"Authorization": f"Bearer {token}"},
        )

    naa = ask(_naa(sandbox, oid, tid))
    assert naa.status_code == 200, naa.get_data(as_text=True)[:500]
    assert naa.get_json() == expected
    assert naa.get_json()["strength"] == contact.strength

    ms_kid = sandbox.state.microsoft_key.kid
    good = {
        "aud": ADDIN_AUDIENCE,
        "iss": f"{sandbox.https_url}/{tid}/v2.0",
        "tid": tid,
        "oid": oid,
        "scp": "access_as_user",
    }
    now = int(time.time())
    for label, token in {
        "wrong aud": _naa(sandbox, oid, tid, aud="https://graph.microsoft.com"),
        "forged, Microsoft's kid": _sign(forger_key, good, kid=ms_kid),
        "forged, own kid": _sign(forger_key, good),
        "no scp": _naa(sandbox, oid, tid, scp=None),
        "other scope": _naa(sandbox, oid, tid, scp="User.Read"),
        "issuer of another tenant": _naa(sandbox, oid, tid, iss=f"{sandbox.https_url}/x/v2.0"),
        "expired": _naa(sandbox, oid, tid, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "unknown wl token": "wl_not_a_real_token",
    }.items():
        response = ask(token)
        assert response.status_code == 401, (label, response.get_data(as_text=True)[:300])
        _assert_401(response)
        assert OUTLOOK_REASONS[label] in response.get_json()["error"]["message"], label
    _assert_401(client.post("/addin/outlook/context", json={"email": contact.address}))
    # A valid token for a Microsoft account nobody connected.
    stranger = ask(_naa(sandbox, str(uuid.uuid4()), tid))
    assert stranger.status_code == 403
    assert contact.address not in stranger.get_data(as_text=True)

    # The self-hoster fallback: a Warmline API token.
    created = browser.client.post(
        "/api/v1/tokens", json={"name": "outlook"}, headers={"X-CSRF-Token": browser.csrf()}
    )
    assert created.status_code == 201
    by_token = ask(created.get_json()["token"])
    assert by_token.status_code == 200
    assert by_token.get_json() == expected

    # Another user's token never reads this user's contact.
    status, _ = other_browser.connect("google", make_mailbox("google", messages=5))
    assert status == 302
    other_token = other_browser.client.post(
        "/api/v1/tokens", json={"name": "b"}, headers={"X-CSRF-Token": other_browser.csrf()}
    ).get_json()["token"]
    theirs = ask(other_token)
    assert theirs.status_code == 200
    assert (theirs.get_json()["known"], theirs.get_json()["email"]["inbound_count"]) == (False, 0)
    assert theirs.get_json()["strength"] is None


def test_outlook_taskpane_page_and_its_headers(app: Flask) -> None:
    client = app.test_client()
    for path in ("/addin/outlook/taskpane", "/addin/outlook/taskpane.html"):
        page = client.get(f"{path}?email=ann@example.org")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'src="https://appsforoffice.microsoft.com/lib/1/hosted/office.js"' in html
        assert "outlook_taskpane.js" in html
        assert "<script>" not in html  # no inline script
        assert "X-Frame-Options" not in page.headers
        csp = dict(
            part.strip().split(" ", 1)
            for part in page.headers["Content-Security-Policy"].split(";")
        )
        assert csp["script-src"].split() == ["'self'", "https://appsforoffice.microsoft.com"]
        assert csp["default-src"] == "'self'"
        assert csp["connect-src"] == "'self'"
        assert sorted(csp["frame-ancestors"].split()) == [
            "https://outlook.live.com",
            "https://outlook.office.com",
            "https://outlook.office365.com",
        ]
    script = client.get("/static/outlook_taskpane.js")
    assert script.status_code == 200
    script.close()
    # Everything else stays unframeable.
    other = client.get("/api/docs")
    assert other.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"]
