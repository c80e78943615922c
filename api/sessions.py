"""Dashboard sign-in sessions: a signed cookie naming an API token by its hash, and a CSRF token per session.

Stateless on purpose (the API runs as many replicas as needed): the cookie carries
`<token sha256>.<expiry>.<HMAC>`, so it never holds the bearer token itself. A session never outlives its
token: it ends when the token expires (the cookie's own expiry is the earlier of the two) or is revoked, both
checked on every request. The signing key is derived from the keystore passphrase, a secret every API
process already has. The CSRF token is an HMAC of the session cookie, checked on every form POST.

Sign-in has no session yet, so its form carries a sign-in CSRF token bound to a short-lived random cookie
(`SIGNIN_COOKIE`, double submit): a page on another site can neither read the token nor set the cookie, so
it cannot sign a victim in to the attacker's account (login CSRF). The sign-in POST also checks Origin /
Sec-Fetch-Site (`same_origin_post`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import Request

from api.deps import Caller, caller_for_token
from api.guards import admit_participant
from api.services import Services
from ledger.errors import AuthenticationError
from ledger.store.offchain import ApiToken

__all__ = [
    "COOKIE",
    "SESSION_SECONDS",
    "SIGNIN_COOKIE",
    "SIGNIN_SECONDS",
    "csrf_token",
    "make_session",
    "new_signin_nonce",
    "same_origin_post",
    "session_caller",
    "signin_csrf_token",
    "valid_csrf",
    "valid_signin_csrf",
]

COOKIE = "fundflow_session"
SESSION_SECONDS = 8 * 3600
SIGNIN_COOKIE = "fundflow_signin"
SIGNIN_SECONDS = 3600


def _key(services: Services) -> bytes:
    return hashlib.sha256(
        b"fundflow-dashboard-session\x00" + services.settings.passphrase().encode()
    ).digest()


def _sign(services: Services, message: str) -> str:
    return hmac.new(_key(services), message.encode(), hashlib.sha256).hexdigest()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite gives naive ones


def make_session(
    services: Services, token_hash: str, now: float | None = None, token_expires: datetime | None = None
) -> str:
    """A session cookie for the token with hash `token_hash`, valid for SESSION_SECONDS or until the token
    expires, whichever comes first."""
    expires = int((now or time.time()) + SESSION_SECONDS)
    if token_expires is not None:
        expires = min(expires, int(_utc(token_expires).timestamp()))
    body = f"{token_hash}.{expires}"
    return f"{body}.{_sign(services, body)}"


def session_caller(services: Services, cookie: str | None) -> Caller:
    """The signed-in caller, or AuthenticationError when the cookie is missing, forged, expired or its
    token was revoked."""
    if not cookie:
        raise AuthenticationError("Sign in with your API token.")
    try:
        token_hash, expires, signature = cookie.split(".")
        expiry = int(expires)
    except ValueError:
        raise AuthenticationError("The session cookie is malformed; sign in again.") from None
    if not hmac.compare_digest(signature, _sign(services, f"{token_hash}.{expires}")):
        raise AuthenticationError("The session cookie is not valid; sign in again.")
    if expiry < time.time():
        raise AuthenticationError("The session has expired; sign in again.")
    table = ApiToken.__table__  # type: ignore[attr-defined]
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.token_hash == token_hash)).first()
    if row is None or row.revoked:
        raise AuthenticationError("The API token of this session was revoked; sign in with a new one.")
    if row.expires_at is not None and _utc(row.expires_at) <= datetime.now(UTC):
        raise AuthenticationError("The API token of this session has expired; sign in with a new one.")
    caller = caller_for_token(services, ApiToken.model_validate(dict(row._mapping)))
    admit_participant(caller.name)  # the same per-participant limit as the API's bearer tokens
    return caller


def csrf_token(services: Services, cookie: str) -> str:
    return _sign(services, "csrf:" + cookie)


def valid_csrf(services: Services, cookie: str | None, token: str | None) -> bool:
    return bool(cookie and token) and hmac.compare_digest(csrf_token(services, cookie or ""), token or "")


def new_signin_nonce() -> str:
    """The value of a fresh SIGNIN_COOKIE, set with the sign-in page."""
    return secrets.token_urlsafe(24)


def signin_csrf_token(services: Services, nonce: str) -> str:
    return _sign(services, "signin-csrf:" + nonce)


def valid_signin_csrf(services: Services, nonce: str | None, token: str | None) -> bool:
    """Whether the sign-in form's token belongs to the browser's SIGNIN_COOKIE."""
    return bool(nonce and token) and hmac.compare_digest(
        signin_csrf_token(services, nonce or ""), token or ""
    )


def same_origin_post(request: Request) -> bool:
    """Whether a browser says this POST comes from the dashboard's own pages: Sec-Fetch-Site is
    `same-origin` (or `none`: typed by the user), or else Origin names this host. A request without either
    header is not from a current browser (curl, scripts) and cannot be forged cross-site by one, so it
    passes here and still needs the CSRF token."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # The host alone: behind a TLS-terminating proxy the app may see http while the browser says https.
    return urlsplit(origin).netloc == request.headers.get("host", "")
