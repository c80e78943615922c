"""`fundflow guarantees give|release|list`: a lender records and releases a loan's guarantees, and anyone who
may see the loan's risk file lists them, through the running API (same checks and policy as the API)."""

from __future__ import annotations

from typing import Annotated

import typer

from fundflow.cli.apiclient import ApiUrl, Token, get_json, post_write
from fundflow.cli.console import console, friendly_errors
from ledger.errors import ValidationError
from ledger.protocol.guarantees import GuaranteeKind
from ledger.protocol.money import format_amount

__all__ = ["register_guarantee_commands"]


def give(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    kind: Annotated[
        GuaranteeKind,
        typer.Option(help="joint_surety 连带责任保证, general_surety 一般保证, mortgage 抵押, pledge 质押."),
    ],  # fmt: skip
    amount: Annotated[str, typer.Option(help='Amount guaranteed, yuan ("500000.00").')],
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")],
    expiry: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD).")],
    guarantor: Annotated[str | None, typer.Option(help="The guarantor's account address.")] = None,
    guarantor_ref: Annotated[
        str | None, typer.Option(help="Or: a salted reference (0x + 64 hex) to a party off the ledger.")
    ] = None,
    capacity: Annotated[str | None, typer.Option(help="The guarantor's declared capacity, yuan.")] = None,
    contract_hash: Annotated[str | None, typer.Option(help="Hash of the uploaded contract.")] = None,
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Record a guarantee of a loan (lender)."""
    if "." not in amount:
        raise ValidationError(f"--amount {amount!r} needs yuan with two decimals", hint='e.g. "500000.00"')
    body = {
        "guarantor": guarantor,
        "guarantor_ref": guarantor_ref,
        "kind": kind.value,
        "amount": amount,
        "start": start,
        "expiry": expiry,
        "capacity": capacity,
        "contract_hash": contract_hash,
    }
    result = post_write(
        api,
        token,
        f"/v1/loans/{loan}/guarantees",
        {k: v for k, v in body.items() if v is not None},
        "guarantee",
    )
    console.print(
        f"{kind.en} ({kind.zh}) of {amount} recorded on loan {loan}: guarantee {result['record_id']}, "
        f"block {result.get('block_number')}",
        highlight=False,
        soft_wrap=True,
    )


def release(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    record_id: Annotated[str, typer.Argument(help="The guarantee's id (from `guarantees list`).")],
    reason: Annotated[str, typer.Option(help="Why it is released.")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Release a guarantee (lender)."""
    result = post_write(
        api, token, f"/v1/loans/{loan}/guarantees/{record_id}/release", {"reason": reason}, "release"
    )
    console.print(
        f"guarantee {record_id} released on loan {loan}, block {result.get('block_number')}", soft_wrap=True
    )


def list_guarantees(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """A loan's guarantees, each checked against its on-chain hash."""
    items = get_json(api, token, f"/v1/loans/{loan}/guarantees")
    if not items:
        console.print("no guarantees recorded")
    for g in items:
        d = g["guarantee"]
        if d is None:
            console.print(f"{g['record_id']}  content {g['content_status']}", highlight=False, soft_wrap=True)
            continue
        who = d["guarantor"] or d["guarantor_ref"]
        released = f"  released {g['released']['recorded_on']}" if g["released"] else ""
        amount = format_amount(d["amount"], code=False)
        console.print(
            f"{g['record_id']}  {d['kind_label']} ({d['kind_label_zh']}) by {who}: {amount}, "
            f"{d['start']} to {d['expiry']}{released}",
            highlight=False,
            soft_wrap=True,
        )


def register_guarantee_commands(app: typer.Typer) -> None:
    guarantees_app = typer.Typer(help="Guarantees of a loan (lender).", no_args_is_help=True)
    guarantees_app.command("give")(friendly_errors(give))
    guarantees_app.command("release")(friendly_errors(release))
    guarantees_app.command("list")(friendly_errors(list_guarantees))
    app.add_typer(guarantees_app, name="guarantees")
