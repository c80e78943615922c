"""`fundflow write-off LOAN --reason ...` and `fundflow recoveries record|list`: a lender writes a loan off
with its reason and records what it recovers afterwards, through the running API."""

from __future__ import annotations

from typing import Annotated

import typer

from fundflow.cli.apiclient import ApiUrl, Token, get_json, post_write
from fundflow.cli.console import console, friendly_errors
from ledger.protocol.money import format_amount

__all__ = ["register_write_off_commands"]


def write_off(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    reason: Annotated[str, typer.Option(help="Why (off chain; its hash goes in the trail).")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Write a loan off (核销) with its reason (lender)."""
    result = post_write(api, token, f"/v1/loans/{loan}/write-off", {"reason": reason}, "write-off")
    console.print(f"loan {loan} written off in block {result.get('block_number')}", soft_wrap=True)


def record(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    amount: Annotated[str, typer.Option(help='Amount recovered, yuan ("150000.00").')],
    received_on: Annotated[str, typer.Option("--date", help="When it was received (YYYY-MM-DD).")],
    source: Annotated[str, typer.Option(help="Where it came from (auction, settlement ...).")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Record money recovered on a written-off loan (核销后清收)."""
    body = {"amount": amount, "received_on": received_on, "source": source}
    result = post_write(api, token, f"/v1/loans/{loan}/recoveries", body, "recovery")
    console.print(f"recovery of {amount} recorded on loan {loan}, block {result.get('block_number')}")


def list_recoveries(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """The write-off's reason and the recoveries since, with their total."""
    f = get_json(api, token, f"/v1/loans/{loan}/write-off")
    w = f["write_off"]
    if w is None:
        console.print(f"loan {loan} is {f['status']}: not written off")
        return
    console.print(f"written off {w['recorded_on']}: {w['reason'] or w['reason_status']}", soft_wrap=True)
    for r in f["recoveries"]:
        amount = "—" if r["amount"] is None else format_amount(r["amount"], f["currency"])
        console.print(f"  {r['received_on']}  {amount}  {r['source'] or r['content_status']}", soft_wrap=True)
    console.print(f"recovered since write-off: {format_amount(f['recovered'], f['currency'])}")


def register_write_off_commands(app: typer.Typer) -> None:
    app.command("write-off")(friendly_errors(write_off))
    recoveries_app = typer.Typer(help="Recoveries after write-off (lender).", no_args_is_help=True)
    recoveries_app.command("record")(friendly_errors(record))
    recoveries_app.command("list")(friendly_errors(list_recoveries))
    app.add_typer(recoveries_app, name="recoveries")
