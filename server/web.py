"""Browser pages: sign-in, the OAuth start/callback routes, and the accounts page."""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from core import accounts, connect
from core.db import utcnow
from core.errors import OAuthFlowError, ProviderError
from core.followups.policy import Preferences
from core.models import Provider
from core.ports import OAuthProvider
from core.queue import SYNC_ACCOUNT
from server import context
from server.identity import (
    browser_binding,
    current_user,
    existing_browser_binding,
    login_required,
    sign_in,
    sign_out,
)

bp = Blueprint("web", __name__)

NAMES = {Provider.GOOGLE: "Google", Provider.MICROSOFT: "Microsoft"}


def _providers() -> dict[Provider, OAuthProvider]:
    return context.oauth_providers()


def _provider_or_404(name: str) -> OAuthProvider:
    try:
        oauth = _providers().get(Provider(name))
    except ValueError:
        oauth = None
    if oauth is None:
        abort(404, description=f"provider {name!r} is not configured")
    return oauth


def _redirect_uri(provider: Provider) -> str:
    return f"{context.settings().effective_public_url}/auth/{provider.value}/callback"


def _page(template: str, **values: Any) -> str:
    return render_template(
        template, user=current_user(), providers=list(_providers()), names=NAMES, **values
    )


@bp.get("/")
def home() -> Response:
    return redirect(url_for("web.accounts_page" if current_user() else "web.login"))


@bp.get("/login")
def login() -> str:
    return _page("login.html")


@bp.get("/auth/<provider>/start")
def start(provider: str) -> Response:
    oauth = _provider_or_404(provider)
    intent = request.args.get("intent", connect.SIGNIN)
    user = current_user()
    if intent == connect.CONNECT and user is None:
        return redirect(url_for("web.login"))
    try:
        url = connect.begin(
            context.db(),
            oauth=oauth,
            intent=intent,
            user_id=user.id if user else None,
            browser_binding=browser_binding(),
            redirect_uri=_redirect_uri(oauth.provider),
            vault=context.vault(),
            now=utcnow(),
            login_hint=request.args.get("login_hint") or None,
        )
    except OAuthFlowError as exc:
        abort(400, description=str(exc))
    except ProviderError:
        return _failure(502, "The provider is unreachable", "Please try again in a moment.")
    return redirect(url)


@bp.route("/auth/<provider>/callback", methods=["GET", "POST"])
def callback(provider: str) -> Response | str | tuple[str, int]:
    oauth = _provider_or_404(provider)
    params = (request.form if request.method == "POST" else request.args).to_dict()
    if request.method == "POST" and existing_browser_binding() is None and "_relayed" not in params:
        # A form_post answer is a cross-site POST: SameSite=Lax cookies stay behind. Post the
        # same fields once more from our own origin, where the browser attaches them.
        return render_template("relay.html", action=request.path, fields=params)
    params.pop("_relayed", None)
    user = current_user()
    try:
        result = connect.finish(
            context.session_factory(),
            oauth=oauth,
            params=params,
            browser_binding=existing_browser_binding(),
            current_user_id=user.id if user else None,
            redirect_uri=_redirect_uri(oauth.provider),
            vault=context.vault(),
            now=utcnow(),
        )
    except OAuthFlowError as exc:
        return _failure(400, "Sign-in was not completed", str(exc))
    except ProviderError:
        return _failure(502, "The provider is unreachable", "Please try again in a moment.")
    # Wake a worker now; beat's dispatcher would also find the account due within seconds.
    context.celery().send_task(SYNC_ACCOUNT, args=[str(result.account.id)])
    if user is None or user.id != result.user.id:
        sign_in(result.user)
    verb = "Connected" if result.is_new_account else "Reconnected"
    flash(f"{verb} {result.account.email}.", "ok")
    return redirect(url_for("web.accounts_page"))


@bp.get("/accounts")
def accounts_page() -> Response | str:
    user = current_user()
    if user is None:
        return redirect(url_for("web.login"))
    return _page(
        "accounts.html",
        accounts=accounts.list_accounts(context.db(), user_id=user.id),
        prefs=Preferences.of(user.preferences),
        feed_enabled=user.ics_token_hash is not None,
    )


@bp.post("/accounts/<uuid:account_id>/disconnect")
@login_required
def disconnect(account_id: uuid.UUID) -> Response:
    user = current_user()
    assert user is not None
    result = context.disconnect_account(user_id=user.id, account_id=account_id)
    if result is None:
        abort(404, description="no such account")
    flash("Disconnected; everything Warmline held for that mailbox is deleted.", "ok")
    return redirect(url_for("web.accounts_page"))


@bp.post("/logout")
@login_required
def logout() -> Response:
    sign_out()
    return redirect(url_for("web.login"))


def _failure(status: int, title: str, message: str) -> tuple[str, int]:
    return _page("error.html", title=title, message=message), status
