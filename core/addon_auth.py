"""Who is calling an add-on endpoint: checks of provider-signed tokens, and the user they name.

Two callers reach Warmline from inside a mail client (PROVIDERS.md §7):

* **Gmail add-on (HTTP runtime).** Google sends `Authorization: Bearer <ID token>` signed by
  Google for the project's add-ons service agent
  (`service-<PROJECT_NUMBER>@gcp-sa-gsuiteaddons.iam.gserviceaccount.com`) with `aud` = the exact
  endpoint URL (https://developers.google.com/workspace/chat/verify-requests-from-chat — the same
  mechanism). The person is named by `authorizationEventObject.userIdToken`, another Google ID
  token whose `aud` is our OAuth client id and whose `sub` is the Google account we connected.
* **Outlook add-in (nested app authentication).** MSAL.js gets an Entra ID access token for our
  own API (`aud` = our app ID URI, `scp` holding `access_as_user`); its `oid` and `tid` name the
  Microsoft account we connected (`provider_account_id == f"{oid}.{tid}"`).

Everything here is pure apart from reading the database: the caller fetches the signing keys
(Google's `{kid: x509 PEM}`, Entra's JWKS) and the OIDC issuer, and passes them in, so no
provider HTTP happens in core. Every failed check raises `AddonAuthError` with a short reason
that is safe to show (never the token).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import ConnectedAccount, Message, MessageParticipant, ParticipantRole, Provider
from core.settings import GOOGLE_ID_TOKEN_ISSUERS

CLOCK_SKEW_S = 60


class AddonAuthError(Exception):
    """A token failed a check; the message says which check, never what the token held."""


# Google


def verify_google_id_token(
    token: str,
    *,
    certs: Mapping[str, str],
    audience: str,
    issuers: Sequence[str] = GOOGLE_ID_TOKEN_ISSUERS,
) -> dict[str, Any]:
    """Return the claims of a Google-signed ID token for `audience`; raise AddonAuthError.

    Checks the RS256 signature against Google's certificates (`{kid: x509 PEM}`, the shape of
    https://www.googleapis.com/oauth2/v1/certs), `exp`/`iat` (a minute of skew), `aud` and the
    issuer: by default both spellings Google documents
    (https://developers.google.com/identity/openid-connect/reference, `issuer`). PyJWT rather
    than google-auth: google-auth stays in connectors/ (README "Architecture"), and the checks
    are the ones `id_token.verify_token` makes.
    """
    if not token:
        raise AddonAuthError("missing token")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise AddonAuthError("invalid signature or malformed token") from None
    pem = certs.get(kid) if isinstance(kid, str) else None
    if pem is None:
        raise AddonAuthError("unknown signing key")
    try:
        key = x509.load_pem_x509_certificate(pem.encode("ascii")).public_key()
    except ValueError:
        raise AddonAuthError("unreadable signing certificate") from None
    return _decode(token, key, audience=audience, issuers=tuple(issuers), require=["exp", "iat"])


def check_google_addon_caller(claims: Mapping[str, Any], *, service_account: str) -> None:
    """Require the add-ons service agent of our project, with a verified email."""
    email = str(claims.get("email") or "")
    if email.lower() != service_account.lower():
        raise AddonAuthError("wrong service account")
    if claims.get("email_verified") not in (True, "true"):
        raise AddonAuthError("email not verified")


# Microsoft


def verify_microsoft_access_token(
    token: str,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    audience: str,
    required_scope: str,
) -> dict[str, Any]:
    """Return the claims of an Entra ID access token for our API; raise AddonAuthError.

    `issuer` is the authority's OIDC `issuer`; multi-tenant authorities publish it with a
    literal `{tenantid}`, which stands for the token's own `tid`
    (https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-issuer).
    """
    if not token:
        raise AddonAuthError("missing token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AddonAuthError("malformed token") from None
    key = _jwk_for(jwks, header.get("kid"))
    claims = _decode(token, key, audience=audience, require=["exp", "iss", "aud", "tid", "oid"])
    expected_issuer = issuer.replace("{tenantid}", str(claims["tid"]))
    if claims.get("iss") != expected_issuer:
        raise AddonAuthError("wrong issuer")
    if required_scope not in str(claims.get("scp") or "").split():
        raise AddonAuthError(f"scope {required_scope} missing")
    return claims


def _decode(
    token: str,
    key: Any,
    *,
    audience: str,
    require: list[str],
    issuers: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=audience,
            leeway=CLOCK_SKEW_S,
            options={"require": require},
        )
    except jwt.ExpiredSignatureError:
        raise AddonAuthError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise AddonAuthError("token not yet valid") from None
    except jwt.InvalidAudienceError:
        raise AddonAuthError("wrong audience") from None
    except jwt.PyJWTError:
        raise AddonAuthError("invalid signature or malformed token") from None
    if issuers is not None and claims.get("iss") not in issuers:
        raise AddonAuthError("wrong issuer")
    return claims


def _jwk_for(jwks: Mapping[str, Any], kid: Any) -> Any:
    for entry in jwks.get("keys", []):
        if entry.get("kid") == kid and entry.get("kty") == "RSA":
            try:
                return jwt.PyJWK(entry, algorithm="RS256").key
            except jwt.PyJWTError:
                break
    raise AddonAuthError("unknown signing key")


def has_key(jwks_or_certs: Mapping[str, Any], token: str) -> bool:
    """Return whether the token's `kid` is among these keys (else the caller refetches once)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return True  # malformed: refetching will not help
    if "keys" in jwks_or_certs:
        return any(k.get("kid") == kid for k in jwks_or_certs["keys"])
    return kid in jwks_or_certs


# Whose add-on is this


def get_user_id_by_provider_account(
    session: Session, *, provider: Provider, provider_account_id: str
) -> uuid.UUID | None:
    """Return the user who connected this provider account first, or None."""
    return session.scalars(
        select(ConnectedAccount.user_id)
        .where(
            ConnectedAccount.provider == provider,
            ConnectedAccount.provider_account_id == provider_account_id,
        )
        .order_by(ConnectedAccount.created_at)
        .limit(1)
    ).first()


def get_message_sender(
    session: Session, *, user_id: uuid.UUID, provider: Provider, provider_message_id: str
) -> str | None:
    """Return the From address of one of the user's synced messages, or None."""
    return session.scalars(
        select(MessageParticipant.address)
        .join(Message, Message.id == MessageParticipant.message_id)
        .join(ConnectedAccount, ConnectedAccount.id == Message.account_id)
        .where(
            ConnectedAccount.user_id == user_id,
            ConnectedAccount.provider == provider,
            Message.provider_message_id == provider_message_id,
            MessageParticipant.role == ParticipantRole.FROM,
        )
        .order_by(MessageParticipant.position)
        .limit(1)
    ).first()
