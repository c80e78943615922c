"""`fundflow serve`, `fundflow tokens create|revoke`, and the demo half of `fundflow up` (the story told
through the API of a running `ApiStack`). Registered on the main CLI by `register_api_commands`."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from fundflow.cli.console import console, err_console
from fundflow.compose import ApiStack, build_api
from ledger.chain.participants import Directory, slugify
from ledger.config import get_settings
from ledger.errors import NotFoundError, ValidationError
from ledger.protocol.codes import RiskClass
from ledger.protocol.money import format_amount
from ledger.store.db import open_database
from ledger.store.offchain import create_token, revoke_tokens, token_fingerprint

__all__ = ["register_api_commands", "seed_and_print"]


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (FUNDFLOW_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (FUNDFLOW_API_PORT).")] = None,
) -> None:
    """Serve the HTTP API (the indexer runs separately: `fundflow index`)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(build_api(settings), host=host or settings.api_host, port=port or settings.api_port)


def tokens_create(
    name: Annotated[str, typer.Argument(help="Participant name, as in `fundflow participants list`.")],
    key_name: Annotated[
        str | None, typer.Option(help="Which of its accounts (default: the name's slug).")
    ] = None,
    expires_days: Annotated[
        float | None, typer.Option(help="Refuse the token after this many days (default: never).", min=0)
    ] = None,
) -> None:
    """Create an API token for a participant account. It is printed once and stored only as a hash."""
    settings = get_settings()
    participant = Directory(settings.participants_file).get(name)
    key = key_name or slugify(name)
    if key not in participant.accounts:
        key = next(iter(participant.accounts), key)
    address = participant.accounts.get(key)
    if address is None:
        raise NotFoundError(f"{name!r} has no account {key!r}", hint="see `fundflow participants list`")
    engine = open_database(settings.database_url)
    from datetime import UTC, datetime, timedelta

    from ledger.store.offchain import hash_token

    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days is not None else None
    token = create_token(engine, participant=name, key_name=key, address=address, expires_at=expires)
    engine.dispose()
    until = f", expires {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    err_console.print(
        f"token {token_fingerprint(hash_token(token))} for {name} ({key}, {address}{until}); "
        "shown once, store it now:"
    )
    print(token)


def tokens_revoke(
    fingerprint: Annotated[
        str | None,
        typer.Argument(help="The token's fingerprint (printed by `tokens create`, logged with refusals)."),
    ] = None,
    participant: Annotated[str | None, typer.Option(help="Revoke every token of this participant.")] = None,
) -> None:
    """Revoke API tokens; the API refuses them from the next request on."""
    if not fingerprint and not participant:
        raise ValidationError(
            "name a token fingerprint or --participant", hint="see `fundflow tokens --help`"
        )
    if fingerprint and len(fingerprint) < 8:
        raise ValidationError(
            f"fingerprint {fingerprint!r} is too short to name one token", hint="give at least 8 hex digits"
        )
    settings = get_settings()
    engine = open_database(settings.database_url)
    rows = revoke_tokens(engine, fingerprint=fingerprint, participant=participant)
    engine.dispose()
    if not rows:
        raise NotFoundError("no active token matches", hint="it may already be revoked")
    for row in rows:
        err_console.print(
            f"revoked token {token_fingerprint(row.token_hash)} of {row.participant} ({row.key_name})"
        )


def seed_and_print(stack: ApiStack, operator: Any) -> None:
    """Onboard the demo participants, tell the demo story through the API, print tokens and curl lines."""
    from fundflow.demo import (
        DEMO_LOAN,
        PARTICIPANTS,
        RISK_OFFICER,
        SHELL_NAMES,
        onboard_demo,
        seed_demo_via_api,
    )

    s = stack.settings
    directory = Directory(s.participants_file)
    tokens, addresses = onboard_demo(
        stack.services.ledger, operator, directory, stack.services.keystore, stack.services.engine
    )
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        loan = seed_demo_via_api(http, tokens, addresses)
        suggestion = http.get(
            f"/v1/loans/{DEMO_LOAN}/classification-suggestion",
            headers={"Authorization": f"Bearer {tokens[PARTICIPANTS[0][0]]}"},
        ).json()
    currency = loan["currency"]

    def amount(key: str) -> str:
        return format_amount(loan[key], currency, code=False)

    console.print(
        f"demo loan {DEMO_LOAN}: principal {amount('principal')} {currency}, "
        f"disbursed {amount('disbursed')}, repaid {amount('repaid')}, "
        f"risk class {RiskClass(loan['risk_class']).zh} {RiskClass(loan['risk_class']).en}"
    )
    observation = suggestion.get("observation") or {}
    if observation:
        console.print(
            f"restructured on {observation['restructured_on']} (financial difficulty): observation period "
            f"from {observation['start']} to at least {observation['earliest_end']}; "
            f"{suggestion['days_past_due']} day(s) past due; floor {suggestion['floor_label']}",
            highlight=False,
        )
    table = Table("participant", "role")
    table.add_column("address", no_wrap=True, min_width=42)  # whole, also when stdout is not a terminal
    for name, role in PARTICIPANTS:
        table.add_row(name, role, addresses[name])
    console.print(table)
    console.print("API tokens (new on each start; the old ones stay valid):")
    for name in [n for n, _ in PARTICIPANTS] + [RISK_OFFICER]:
        print(f"  {name:<26} {tokens[name]}")
    # The README's walkthrough uses these shell variables.
    variables = " ".join(f"{SHELL_NAMES[name]}={tokens[name]}" for name, _ in PARTICIPANTS)
    print(
        f"Shell variables for the README walkthrough (paste this line):\n  export FF={stack.url} {variables}"
    )
    bank, auditor = tokens["Lakeside Commercial Bank"], tokens["Harbor Audit Partners"]
    supplier = tokens["Greenfield Logistics"]
    console.print(
        f"\nAPI: [bold]{stack.url}[/]  (docs: {stack.url}/docs)\n"
        f"Dashboard: [bold]{stack.url}/dashboard/[/] (sign in with a token above)\nTry:",
        highlight=False,
    )
    for line in (
        f"curl -s {stack.url}/v1/health",
        f"curl -s -H 'Authorization: Bearer {bank}' {stack.url}/v1/loans",
        f"curl -s -H 'Authorization: Bearer {auditor}' {stack.url}/v1/loans/{DEMO_LOAN}/trail",
        f"curl -s -H 'Authorization: Bearer {supplier}' "
        f"'{stack.url}/v1/payments/received?confirmation=disputed'",
        f"curl -s -X POST -H 'Authorization: Bearer {bank}' -H 'Idempotency-Key: try-1' "
        f"-H 'Content-Type: application/json' '{stack.url}/v1/loans/{DEMO_LOAN}/repayments?wait=true' "
        """-d '{"amount": "1000.00"}'""",
    ):
        print("  " + line)


def register_api_commands(app: typer.Typer, friendly: Any) -> None:
    tokens_app = typer.Typer(help="API tokens of participants.", no_args_is_help=True)
    tokens_app.command("create")(friendly(tokens_create))
    tokens_app.command("revoke")(friendly(tokens_revoke))
    app.add_typer(tokens_app, name="tokens")
    app.command("serve")(friendly(serve))
