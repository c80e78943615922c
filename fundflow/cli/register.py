"""`fundflow collateral register|appraise|list` and `fundflow engagements add|end|list`: the collateral
register and the third parties engaged on a loan, through the running API (same checks and policy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from fundflow.cli.apiclient import ApiUrl, Token, get_json, post_write
from fundflow.cli.console import console, friendly_errors
from ledger.protocol.collateral import CollateralStatus, CollateralType, PartyRole

__all__ = ["register_register_commands"]

Loan = Annotated[str, typer.Argument(help="Loan number or id.")]


def register_item(
    loan: Loan,
    ref: Annotated[str, typer.Option(help="The bank's reference for the item (the same ref changes it).")],
    type: Annotated[CollateralType, typer.Option(help="What the item is.")],
    description: Annotated[str, typer.Option(help="The item in words.")],
    registration: Annotated[str, typer.Option(help="The charge's registration number (抵押登记证明号).")],
    haircut_bp: Annotated[int, typer.Option(help="Haircut in basis points: 3000 = 30%.")],
    status: Annotated[CollateralStatus, typer.Option(help="registered, seized or released.")] = (
        CollateralStatus.REGISTERED
    ),
    revaluation_days: Annotated[int | None, typer.Option(help="Revalue at least this often.")] = None,
    substitutes: Annotated[str | None, typer.Option(help="The ref of the item this one replaces.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why the terms change (release, substitution).")] = None,
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Register a collateral item or file a change of its terms (lender)."""
    body = {
        "item_ref": ref, "type": type.value, "description": description, "registration_number": registration,
        "haircut_bp": haircut_bp, "status": status.value, "revaluation_days": revaluation_days,
        "substitutes": substitutes, "change_reason": reason,
    }  # fmt: skip
    result = post_write(api, token, f"/v1/loans/{loan}/collateral-register", body, "collateral")
    console.print(
        f"collateral item {ref} ({status.zh}) filed on loan {loan}: item {result['item_id']}, "
        f"block {result.get('block_number')}",
        highlight=False,
        soft_wrap=True,
    )


def appraise(
    loan: Loan,
    item_id: Annotated[str, typer.Argument(help="The item's id (from `collateral list`).")],
    value: Annotated[str, typer.Option(help='Appraised value, yuan ("800000.00").')],
    method: Annotated[str, typer.Option(help="e.g. market comparison (市场比较法).")],
    date: Annotated[str | None, typer.Option(help="Day valued (YYYY-MM-DD), default today.")] = None,
    report_hash: Annotated[str | None, typer.Option(help="Hash of the uploaded appraisal report.")] = None,
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Sign a valuation of a collateral item (an appraiser engaged on the loan)."""
    body = {
        "value": value, "method": method, "report_hash": report_hash,
        "valued_on": date or datetime.now(UTC).date().isoformat(),
    }  # fmt: skip
    result = post_write(
        api, token, f"/v1/loans/{loan}/collateral-register/{item_id}/appraisals", body, "appraisal"
    )
    console.print(
        f"valuation of {value} signed for item {item_id} on loan {loan}, block {result.get('block_number')}",
        highlight=False,
        soft_wrap=True,
    )


def list_register(loan: Loan, token: Token = None, api: ApiUrl = None) -> None:
    """The loan's collateral items, their latest values and the effective cover after haircuts."""
    answer = get_json(api, token, f"/v1/loans/{loan}/collateral-register")
    if not answer["items"]:
        console.print("no collateral registered")
    for i in answer["items"]:
        item = i["item"]
        if item is None:
            console.print(f"{i['item_id']}  content {i['content_status']}", highlight=False, soft_wrap=True)
            continue
        source = {"appraiser": "appraised", "lender_estimate": "lender's own estimate"}.get(
            i["latest_source"], ""
        )
        console.print(
            f"{i['item_id']}  {item['item_ref']} {item['type']} ({item['type_label_zh']}) "
            f"{item['registration_number']}, {item['status']} ({item['status_label_zh']}), haircut "
            f"{item['haircut_bp'] / 100:.2f}%: latest {i['latest_value'] or '—'} {source}, effective "
            f"{i['effective_value']}",
            highlight=False,
            soft_wrap=True,
        )
    if answer["effective_cover"] is not None:
        console.print(
            f"effective cover {answer['effective_cover']}× ({answer['effective_value']} / "
            f"{answer['outstanding']} outstanding)",
            highlight=False,
        )


def engage(
    loan: Loan,
    participant: Annotated[str, typer.Argument(help="The firm's participant name.")],
    role: Annotated[PartyRole, typer.Option(help="appraiser, law_firm or collection_agency.")],
    scope: Annotated[str, typer.Option(help="What the engagement covers, in words.")],
    date: Annotated[str | None, typer.Option(help="Day engaged (YYYY-MM-DD), default today.")] = None,
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Engage a participant as appraiser, law firm or collection agency on a loan (lender)."""
    body = {
        "participant": participant, "role": role.value, "scope": scope,
        "engaged_on": date or datetime.now(UTC).date().isoformat(),
    }  # fmt: skip
    result = post_write(api, token, f"/v1/loans/{loan}/engagements", body, "engage")
    console.print(
        f"{participant} engaged as {role.value} ({role.zh}) on loan {loan}, "
        f"block {result.get('block_number')}",
        highlight=False,
        soft_wrap=True,
    )


def end(
    loan: Loan,
    participant: Annotated[str, typer.Argument(help="The firm's participant name.")],
    reason: Annotated[str, typer.Option(help="Why the engagement ends.")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """End every engagement of a participant on a loan (lender)."""
    body = {"ended_on": datetime.now(UTC).date().isoformat(), "reason": reason}
    result = post_write(api, token, f"/v1/loans/{loan}/engagements/{participant}/end", body, "disengage")
    console.print(f"{participant}'s engagement on loan {loan} ended, block {result.get('block_number')}")


def list_engagements(loan: Loan, token: Token = None, api: ApiUrl = None) -> None:
    """Who is engaged on a loan now."""
    answer = get_json(api, token, f"/v1/loans/{loan}/engagements")
    if not answer["engaged"]:
        console.print("no third party engaged")
    for e in answer["engaged"]:
        console.print(f"{e['name'] or e['org_id']}: {', '.join(e['roles'])}", highlight=False)


def register_register_commands(app: typer.Typer) -> None:
    collateral_app = typer.Typer(help="The collateral register of a loan.", no_args_is_help=True)
    collateral_app.command("register")(friendly_errors(register_item))
    collateral_app.command("appraise")(friendly_errors(appraise))
    collateral_app.command("list")(friendly_errors(list_register))
    app.add_typer(collateral_app, name="collateral")
    engagements_app = typer.Typer(help="Third parties engaged on a loan.", no_args_is_help=True)
    engagements_app.command("add")(friendly_errors(engage))
    engagements_app.command("end")(friendly_errors(end))
    engagements_app.command("list")(friendly_errors(list_engagements))
    app.add_typer(engagements_app, name="engagements")
