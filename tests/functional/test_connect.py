"""Connecting accounts through the sandbox's real redirect flows (issue: connect an account)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from sqlalchemy import select

from core.accounts import count_rows_for_user
from core.db import make_engine, make_session_factory, transaction
from core.errors import OAuthFlowError, ReauthRequired
from core.models import (
    AccountState,
    ConnectedAccount,
    Message,
    Provider,
    SyncPhase,
    SyncStream,
    User,
)
from core.settings import Settings
from core.tokens import AccountUnavailable, get_access_token
from tests.functional.browser import Callback
from tests.functional.conftest import Browser
from tests.functional.syncing import expire_stored_access_token

if TYPE_CHECKING:
    from sandbox.server import Sandbox

GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"


def _factory(settings: Settings):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(settings.effective_database_url))


def _accounts(browser: Browser) -> list[dict]:  # type: ignore[type-arg]
    response = browser.client.get("/api/v1/accounts")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["accounts"]  # type: ignore[no-any-return]


def test_google_sign_in_creates_the_user_and_connects_the_mailbox(
    browser: Browser, make_mailbox, app: Flask
) -> None:
    mailbox = make_mailbox("google", messages=5)
    status, _ = browser.connect("google", mailbox)
    assert status == 302
    cookie = browser.client.get_cookie("warmline_session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"

    [account] = _accounts(browser)
    assert account["email"] == mailbox
    assert account["provider"] == "google"
    assert account["state"] == "active"
    assert GMAIL_METADATA in account["granted_scopes"]
    # Least privilege: nothing that reads bodies or writes mail.
    assert not any(
        s.endswith(("gmail.readonly", "gmail.modify", "mail.google.com/"))
        for s in account["granted_scopes"]
    )
    me = browser.client.get("/api/v1/me").get_json()
    assert me["email"] == mailbox


def test_microsoft_sign_in_then_google_connect_gives_one_user_two_accounts(
    browser: Browser, make_mailbox
) -> None:
    outlook = make_mailbox("microsoft", messages=5)
    gmail = make_mailbox("google", messages=5)
    assert browser.connect("microsoft", outlook)[0] == 302
    assert browser.connect("google", gmail, intent="connect")[0] == 302
    accounts = _accounts(browser)
    assert sorted((a["provider"], a["email"]) for a in accounts) == [
        ("google", gmail),
        ("microsoft", outlook),
    ]
    ms = next(a for a in accounts if a["provider"] == "microsoft")
    assert "Mail.ReadBasic" in " ".join(ms["granted_scopes"])


def test_signing_in_again_reuses_the_user_and_the_account(
    browser: Browser, other_browser: Browser, make_mailbox, settings: Settings
) -> None:
    mailbox = make_mailbox("google", messages=5)
    browser.connect("google", mailbox)
    other_browser.connect("google", mailbox)  # same person, another device
    [first] = _accounts(browser)
    [second] = _accounts(other_browser)
    assert first["id"] == second["id"]
    with _factory(settings)() as session:
        assert session.query(User).count() == 1
        assert session.query(ConnectedAccount).count() == 1


def test_denied_consent_connects_nothing(
    browser: Browser, make_mailbox, settings: Settings
) -> None:
    mailbox = make_mailbox("google", messages=5)
    status, page = browser.connect("google", mailbox, allow=False)
    assert status == 400
    assert "access_denied" in page
    with _factory(settings)() as session:
        assert session.query(ConnectedAccount).count() == 0


def test_refresh_then_revocation_marks_needs_reauth_and_reconnect_resumes(
    browser: Browser, make_mailbox, settings: Settings, app: Flask, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox("google", messages=5)
    browser.connect("google", mailbox)
    [account] = _accounts(browser)
    factory = _factory(settings)
    oauth = app.extensions["warmline"]["oauth"][Provider.GOOGLE]
    vault = app.extensions["warmline"]["vault"]
    account_id = __import__("uuid").UUID(account["id"])
    # A stream mid-sync, with a saved cursor, as the sync engine leaves it.
    with transaction(factory) as session:
        session.add(
            SyncStream(
                account_id=account_id, stream="gmail", phase=SyncPhase.INCREMENTAL, cursor="4242"
            )
        )

    token = get_access_token(
        factory, account_id=account_id, oauth=oauth, vault=vault, now=dt.datetime.now(dt.UTC)
    )
    assert sandbox.state.store.get_access_token(token.token) is not None  # the provider knows it

    # The user revokes Warmline at the provider; the stored access token is also dead, so make
    # Warmline's copy look expired to force a refresh.
    with sandbox.state.lock:
        sandbox.state.store.revoke_all_grants(mailbox, "google")
    expire_stored_access_token(settings, account_id)
    with pytest.raises(ReauthRequired):
        get_access_token(
            factory, account_id=account_id, oauth=oauth, vault=vault, now=dt.datetime.now(dt.UTC)
        )
    [account] = _accounts(browser)
    assert account["state"] == "needs_reauth"
    assert account["needs_reauth"] is True
    assert "login_hint=" in account["reconnect_url"]
    # Syncs stop asking: the account is unavailable until the user acts.
    with pytest.raises(AccountUnavailable):
        get_access_token(
            factory, account_id=account_id, oauth=oauth, vault=vault, now=dt.datetime.now(dt.UTC)
        )

    assert browser.connect("google", mailbox, intent="connect")[0] == 302
    [again] = _accounts(browser)
    assert again["id"] == account["id"]
    assert again["state"] == "active"
    with factory() as session:
        stream = session.scalars(select(SyncStream)).one()
        assert stream.cursor == "4242"  # resumes, does not start over
        assert session.query(ConnectedAccount).count() == 1
    get_access_token(
        factory, account_id=account_id, oauth=oauth, vault=vault, now=dt.datetime.now(dt.UTC)
    )


def test_microsoft_refresh_and_revocation(
    browser: Browser, make_mailbox, settings: Settings, app: Flask, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox("microsoft", messages=5)
    browser.connect("microsoft", mailbox)
    [account] = _accounts(browser)
    factory = _factory(settings)
    oauth = app.extensions["warmline"]["oauth"][Provider.MICROSOFT]
    vault = app.extensions["warmline"]["vault"]
    account_id = __import__("uuid").UUID(account["id"])
    token = get_access_token(
        factory, account_id=account_id, oauth=oauth, vault=vault, now=dt.datetime.now(dt.UTC)
    )
    assert token.token

    with sandbox.state.lock:
        sandbox.state.store.revoke_all_grants(mailbox, "microsoft")
    expire_stored_access_token(settings, account_id)
    with pytest.raises(ReauthRequired):
        get_access_token(
            factory, account_id=account_id, oauth=oauth, vault=vault, now=dt.datetime.now(dt.UTC)
        )
    with factory() as session:
        assert session.get(ConnectedAccount, account_id).state is AccountState.NEEDS_REAUTH


def test_disconnect_revokes_at_the_provider_and_purges_only_that_account(
    browser: Browser, other_browser: Browser, make_mailbox, settings: Settings, sandbox: Sandbox
) -> None:
    mine, theirs = make_mailbox("google", messages=5), make_mailbox("google", messages=5)
    browser.connect("google", mine)
    other_browser.connect("google", theirs)
    [account] = _accounts(browser)
    factory = _factory(settings)
    with transaction(factory) as session:  # data a sync would have stored
        for acc in session.scalars(select(ConnectedAccount)):
            session.add(
                Message(
                    account_id=acc.id, provider_message_id="m1", received_at=dt.datetime.now(dt.UTC)
                )
            )
    with factory() as session:
        mine_user = session.scalars(select(User).where(User.email == mine)).one().id
        their_user = session.scalars(select(User).where(User.email == theirs)).one().id
        their_before = count_rows_for_user(session, user_id=their_user)
    live_grants = lambda box: [  # noqa: E731
        g
        for g in sandbox.state.store.connection().execute(
            'SELECT is_revoked FROM "grant" WHERE mailbox = ?', (box,)
        )
        if not g[0]
    ]
    assert live_grants(mine)

    # Without the CSRF token a cookie-authenticated delete is refused.
    assert browser.client.delete(f"/api/v1/accounts/{account['id']}").status_code == 403
    # Another user cannot disconnect it: it does not exist for them.
    other = other_browser.client.delete(
        f"/api/v1/accounts/{account['id']}", headers={"X-CSRF-Token": other_browser.csrf()}
    )
    assert other.status_code == 404

    response = browser.client.delete(
        f"/api/v1/accounts/{account['id']}", headers={"X-CSRF-Token": browser.csrf()}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["revoked_at_provider"] is True
    assert not live_grants(mine)
    with factory() as session:
        counts = count_rows_for_user(session, user_id=mine_user)
        assert {
            k: v for k, v in counts.items() if k not in ("users", "web_sessions")
        } == dict.fromkeys([k for k in counts if k not in ("users", "web_sessions")], 0)
        assert count_rows_for_user(session, user_id=their_user) == their_before


def test_delete_my_data_removes_the_user_entirely(
    browser: Browser, other_browser: Browser, make_mailbox, settings: Settings
) -> None:
    mine, theirs = make_mailbox("google", messages=5), make_mailbox("microsoft", messages=5)
    browser.connect("google", mine)
    browser.connect("microsoft", make_mailbox("microsoft", messages=5), intent="connect")
    other_browser.connect("microsoft", theirs)
    factory = _factory(settings)
    with factory() as session:
        mine_user = session.scalars(select(User).where(User.email == mine)).one().id
        their_user = session.scalars(select(User).where(User.email == theirs)).one().id
        their_before = count_rows_for_user(session, user_id=their_user)
    response = browser.client.delete("/api/v1/me", headers={"X-CSRF-Token": browser.csrf()})
    assert response.status_code == 204
    with factory() as session:
        assert set(count_rows_for_user(session, user_id=mine_user).values()) == {0}
        assert count_rows_for_user(session, user_id=their_user) == their_before
    assert browser.client.get("/api/v1/accounts").status_code == 401


def test_no_token_is_stored_in_plaintext(
    browser: Browser, make_mailbox, settings: Settings, sandbox: Sandbox, app: Flask
) -> None:
    gmail, outlook = make_mailbox("google", messages=5), make_mailbox("microsoft", messages=5)
    browser.connect("google", gmail)
    browser.connect("microsoft", outlook, intent="connect")
    factory = _factory(settings)
    secrets = []
    for account in _accounts(browser):  # fetch access tokens too, as a sync would
        provider = Provider(account["provider"])
        token = get_access_token(
            factory,
            account_id=__import__("uuid").UUID(account["id"]),
            oauth=app.extensions["warmline"]["oauth"][provider],
            vault=app.extensions["warmline"]["vault"],
            now=dt.datetime.now(dt.UTC),
        )
        secrets.append(token.token)
    db = sandbox.state.store.connection()
    query = 'SELECT refresh_token FROM "grant" WHERE mailbox IN (?, ?)'
    secrets += [r[0] for r in db.execute(query, (gmail, outlook))]
    assert len(secrets) == 4
    app.extensions["warmline"]["engine"].dispose()  # flush the WAL into the file too
    raw = b"".join(
        p.read_bytes() for p in Path(settings.data_dir).glob("warmline.sqlite*") if p.is_file()
    )
    for secret in secrets:
        assert secret.encode() not in raw
    assert b"refresh_token" not in raw


def test_forged_replayed_and_cross_session_callbacks_are_refused(
    browser: Browser, other_browser: Browser, make_mailbox, settings: Settings
) -> None:
    mailbox = make_mailbox("google", messages=5)
    callback = browser.start_and_consent("google", mailbox)

    # Forged state: never issued.
    forged = Callback("GET", callback.url.replace(callback.params["state"], "forged-state"))
    assert browser.open(forged)[0] == 400

    # The real callback opened in someone else's browser is refused (bound to this browser) ...
    status, page = other_browser.open(callback)
    assert status == 400
    assert "another browser" in page
    # ... and the state is single use: the victim's own callback now fails too (no replay).
    assert browser.open(callback)[0] == 400

    # A callback replayed after success is refused.
    callback = browser.start_and_consent("google", mailbox)
    assert browser.open(callback)[0] == 302
    assert browser.open(callback)[0] == 400
    with _factory(settings)() as session:
        assert session.query(ConnectedAccount).count() == 1


def test_a_connect_callback_for_another_users_session_is_refused(
    browser: Browser, make_mailbox, settings: Settings
) -> None:
    alice, bob, extra = (make_mailbox("google", messages=5) for _ in range(3))
    browser.connect("google", alice)
    callback = browser.start_and_consent("google", extra, intent="connect")
    # Before the callback arrives, this browser signs in as someone else.
    browser.connect("google", bob)
    status, page = browser.open(callback)
    assert status == 400
    assert "another user" in page
    with _factory(settings)() as session:
        assert session.query(ConnectedAccount).filter_by(email=extra).count() == 0


def test_the_pkce_verifier_is_required(
    browser: Browser, make_mailbox, app: Flask, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox("google", messages=5)
    callback = browser.start_and_consent("google", mailbox)
    code = callback.params["code"]
    oauth = app.extensions["warmline"]["oauth"][Provider.GOOGLE]
    # Warmline refuses to finish without the verifier it stored ...
    with pytest.raises(OAuthFlowError):
        oauth.complete_authorization(
            redirect_uri="http://x/cb", secret_payload={}, params={"code": code, "state": "s"}
        )
    # ... and the provider refuses a code exchanged without it.
    import requests

    answer = requests.post(
        f"{sandbox.http_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "warmline-sandbox",
            "client_secret": "sandbox-secret",
            "redirect_uri": callback.url.split("?")[0],
        },
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_api_tokens_are_shown_once_work_as_bearer_and_can_be_revoked(
    browser: Browser, make_mailbox, app: Flask
) -> None:
    browser.connect("google", make_mailbox("google", messages=5))
    created = browser.client.post(
        "/api/v1/tokens", json={"name": "gmail add-on"}, headers={"X-CSRF-Token": browser.csrf()}
    )
    assert created.status_code == 201
    raw = created.get_json()["token"]
    listed = browser.client.get("/api/v1/tokens").get_json()["tokens"]
    assert [t["name"] for t in listed] == ["gmail add-on"]
    assert "token" not in listed[0]

    script = app.test_client()  # no cookies: a script
    bearer = {"Authorization": f"Bearer {raw}"}
    assert script.get("/api/v1/accounts", headers=bearer).status_code == 200
    assert script.get("/api/v1/accounts").status_code == 401
    assert (
        script.get("/api/v1/accounts", headers={"Authorization": "Bearer wl_nope"}).status_code
        == 401
    )
    # Bearer calls need no CSRF token: browsers never attach them on their own.
    token_id = listed[0]["id"]
    assert script.delete(f"/api/v1/tokens/{token_id}", headers=bearer).status_code == 204
    assert script.get("/api/v1/accounts", headers=bearer).status_code == 401


def test_api_errors_are_json(browser: Browser, make_mailbox) -> None:
    browser.connect("google", make_mailbox("google", messages=5))
    bad = browser.client.post(
        "/api/v1/tokens", data="nope", headers={"X-CSRF-Token": browser.csrf()}
    )
    assert bad.status_code == 400
    assert bad.get_json()["error"]["status"] == "bad_request"
    assert browser.client.get("/api/v1/accounts/not-a-uuid").status_code == 404
    assert browser.client.get("/auth/yahoo/start").status_code == 404
