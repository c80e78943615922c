"""Dashboard sign-in sessions: a signed cookie naming an API token by its hash, and a CSRF token per session.

Stateless on purpose (the API runs as many replicas as needed): the cookie carries
`<token sha256>.<expiry>.<HMAC>`, so it never holds the bearer token itself, and revoking the token ends every
session made with it. The signing key is derived from the keystore passphrase, a secret every API process
already has. The CSRF token is an HMAC of the session cookie, checked on every form POST.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import sqlalchemy as sa

from api.deps import Caller, caller_for_token
from api.services import Services
from ledger.errors import AuthenticationError
from ledger.store.offchain import ApiToken

__all__ = ["COOKIE", "SESSION_SECONDS", "csrf_token", "make_session", "session_caller", "valid_csrf"]

COOKIE = "fundflow_session"
SESSION_SECONDS = 8 * 3600


def _key(services: Services) -> bytes:
    return hashlib.sha256(
        b"fundflow-dashboard-session\x00" + services.settings.passphrase().encode()
    ).digest()


def _sign(services: Services, message: str) -> str:
    return hmac.new(_key(services), message.encode(), hashlib.sha256).hexdigest()


def make_session(services: Services, token_hash: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
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
    return caller_for_token(services, ApiToken.model_validate(dict(row._mapping)))


def csrf_token(services: Services, cookie: str) -> str:
    return _sign(services, "csrf:" + cookie)


def valid_csrf(services: Services, cookie: str | None, token: str | None) -> bool:
    return bool(cookie and token) and hmac.compare_digest(csrf_token(services, cookie or ""), token or "")
