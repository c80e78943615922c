"""How the file commands (visits, guarantees, write-off, collateral register, engagements) talk to the running
API: a token from --token or FUNDFLOW_API_TOKEN, the API from --api (default: this machine's
FUNDFLOW_API_HOST/PORT), each write with its own Idempotency-Key and `?wait=true`, and the API's refusal shown
as its message and hint. The CLI goes through the API so these writes take the same checks and policy as the
dashboard's forms."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import httpx
import typer

from ledger.config import get_settings
from ledger.errors import AuthenticationError, FundflowError

__all__ = ["ApiUrl", "Token", "answer", "client", "get_json", "post_write", "unreachable"]

Token = Annotated[
    str | None, typer.Option(envvar="FUNDFLOW_API_TOKEN", help="API token (fundflow tokens create NAME).")
]
ApiUrl = Annotated[str | None, typer.Option("--api", help="API base URL (default: the local API).")]


def client(api: str | None, token: str | None) -> httpx.Client:
    if not token:
        raise AuthenticationError(
            "No API token given.",
            hint="Pass --token or set FUNDFLOW_API_TOKEN (fundflow tokens create NAME).",
        )
    if api is None:
        s = get_settings()
        api = f"http://{s.api_host}:{s.api_port}"
    return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def unreachable(exc: Exception) -> FundflowError:
    return FundflowError(f"The API cannot be reached: {exc}", hint="Is `fundflow serve` running?")


def answer(r: httpx.Response) -> Any:
    if r.status_code < 300:
        return r.json()
    try:
        body = r.json()
    except ValueError:
        body = {"message": r.text}
    raise FundflowError(f"The API refused ({r.status_code}): {body.get('message')}", hint=body.get("hint"))


def post_write(
    api: str | None, token: str | None, path: str, body: dict[str, Any], what: str
) -> dict[str, Any]:
    """POST a write and wait until the indexer has mirrored it; `what` names its Idempotency-Key."""
    with client(api, token) as http:
        try:
            r = http.post(
                path,
                params={"wait": "true"},
                json={k: v for k, v in body.items() if v is not None},
                headers={"Idempotency-Key": f"cli-{what}-{uuid.uuid4()}"},
            )
        except httpx.HTTPError as exc:
            raise unreachable(exc) from exc
        return dict(answer(r))


def get_json(api: str | None, token: str | None, *paths: str) -> Any:
    """GET one path's answer, or a tuple of several paths' answers over one connection."""
    with client(api, token) as http:
        try:
            answers = [answer(http.get(path)) for path in paths]
        except httpx.HTTPError as exc:
            raise unreachable(exc) from exc
    return answers[0] if len(paths) == 1 else tuple(answers)
