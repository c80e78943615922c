"""`fundflow vouchers list|show|credit-line|issue|split|finance|accept|settle|verify|bundle|export`:
supply-chain vouchers (issue 22) through the running API, so each command takes the checks and policy of
the dashboard.

A core enterprise issues a voucher against an invoice (确权: it acknowledges its payable); a holder splits
it and passes parts down its supply chain; a holder asks a bank to finance its part (贴现); the bank
accepts; at maturity the core enterprise settles each part to whoever holds it (到期兑付)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from fundflow.cli.apiclient import ApiUrl, Token, answer, client, get_json, post_write, unreachable
from fundflow.cli.console import console, friendly_errors
from ledger.errors import ValidationError

__all__ = ["register_voucher_commands", "transfers_from"]

Voucher = Annotated[str, typer.Argument(help="The voucher's id (0x + 64 hex).")]
Part = Annotated[int, typer.Argument(help="The part's number (1 is the voucher as issued).")]


def _say(text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


def _yuan(text: str, option: str) -> str:
    if "." not in text:
        raise ValidationError(f"{option} {text!r} needs yuan with two decimals", hint='e.g. "500000.00"')
    return text


def transfers_from(specs: list[str]) -> list[dict[str, str]]:
    """--to ADDRESS=YUAN, repeated, as the API's transfers."""
    out = []
    for spec in specs:
        to, sep, amount = spec.partition("=")
        if not sep or not to or not amount:
            raise ValidationError(
                f"--to {spec!r} is not ADDRESS=YUAN", hint="e.g. --to 0xAbC…=300000.00, once per recipient"
            )
        out.append({"to": to.strip(), "amount": _yuan(amount.strip(), "--to")})
    return out


def credit_line(
    core: Annotated[str, typer.Argument(help="The core enterprise: participant name or organisation id.")],
    limit: Annotated[str, typer.Option(help='The line, yuan ("50000000.00").')],
    expiry: Annotated[str, typer.Option(help="Last day of the line (YYYY-MM-DD).")],
    terms_hash: Annotated[str | None, typer.Option(help="Hash of the credit agreement.")] = None,
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Set a core enterprise's credit line (授信额度; lender)."""
    body = {"core": core, "limit": _yuan(limit, "--limit"), "expiry": expiry, "terms_hash": terms_hash}
    result = post_write(api, token, "/v1/vouchers/credit-lines", body, "credit-line")
    _say(f"credit line (授信额度) of {limit} for {core} until {expiry}, block {result.get('block_number')}")


def issue(
    holder: Annotated[str, typer.Option(help="The tier-1 supplier's account address.")],
    face_value: Annotated[str, typer.Option(help='Face value, yuan ("1000000.00").')],
    maturity: Annotated[str, typer.Option(help="Due date (YYYY-MM-DD).")],
    invoice_hash: Annotated[str | None, typer.Option(help="Hash of the invoice or contract.")] = None,
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Issue a voucher to a supplier against an invoice (确权; core enterprise)."""
    body = {
        "holder": holder,
        "face_value": _yuan(face_value, "--face-value"),
        "maturity": maturity,
        "invoice_hash": invoice_hash,
    }
    result = post_write(api, token, "/v1/vouchers", body, "issue")
    _say(
        f"voucher {result['voucher_id']} issued (确权): {face_value} due {maturity} to {holder}, "
        f"block {result.get('block_number')}"
    )


def split(
    voucher: Voucher,
    part: Part,
    to: Annotated[list[str], typer.Option(help="ADDRESS=YUAN, once per recipient.")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Split a part you hold and transfer the pieces (holder)."""
    body = {"transfers": transfers_from(to)}
    result = post_write(api, token, f"/v1/vouchers/{voucher}/parts/{part}/split", body, "split")
    made = ", ".join(f"part {p['part_id']} to {p['holder']} ({p['amount_yuan']})" for p in result["parts"])
    _say(f"part {part} of voucher {voucher} split: {made}; block {result.get('block_number')}")


def finance(
    voucher: Voucher,
    part: Part,
    bank: Annotated[str, typer.Option(help="The bank: participant name or organisation id.")],
    rate_bps: Annotated[int, typer.Option(help="Annual discount rate in basis points (350 = 3.50%).")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Ask a bank to finance a part you hold at a discount (贴现; holder)."""
    body = {"bank": bank, "discount_rate_bps": rate_bps}
    result = post_write(api, token, f"/v1/vouchers/{voucher}/parts/{part}/financing", body, "finance")
    rate = f"{rate_bps / 100:.2f}%"
    _say(f"financing of part {part} asked of {bank} at {rate}, block {result.get('block_number')}")


def accept(voucher: Voucher, part: Part, token: Token = None, api: ApiUrl = None) -> None:
    """Accept financing of a part your bank was asked to finance (lender)."""
    result = post_write(api, token, f"/v1/vouchers/{voucher}/parts/{part}/financing/accept", {}, "accept")
    paid = result.get("financing") or {}
    _say(
        f"part {part} financed: face {paid.get('face_yuan')}, discount interest {paid.get('interest_yuan')} "
        f"over {paid.get('days')} days, paid {paid.get('paid_yuan')}; block {result.get('block_number')}"
    )


def settle(voucher: Voucher, part: Part, token: Token = None, api: ApiUrl = None) -> None:
    """Settle a part at maturity to whoever holds it (到期兑付; core enterprise)."""
    result = post_write(api, token, f"/v1/vouchers/{voucher}/parts/{part}/settle", {}, "settle")
    _say(f"part {part} of voucher {voucher} settled (到期兑付), block {result.get('block_number')}")


def _part_line(p: dict[str, Any], indent: int) -> str:
    holder = p.get("holder_name") or p.get("holder")
    return (
        f"{'  ' * indent}part {p['part_id']}: {holder} holds {p['remaining_yuan']} of {p['amount_yuan']} "
        f"{p.get('currency', 'CNY')}, {p['status_label']}"
    )


def show(voucher: Voucher, token: Token = None, api: ApiUrl = None) -> None:
    """A voucher's tree: who holds each part, how much, its state."""
    v = get_json(api, token, f"/v1/vouchers/{voucher}")
    _say(
        f"voucher {v['voucher_id']} of {v['core_name']}: {v['face_value_yuan']} {v['currency']} due "
        f"{v['maturity_date']}, {v['status_label']}"
    )
    parts = {p["part_id"]: p for p in v["parts"]}
    stack = [(p["part_id"], 1) for p in reversed(v["parts"]) if p["parent_part_id"] not in parts]
    while stack:
        part_id, depth = stack.pop()
        _say(_part_line(parts[part_id], depth))
        stack.extend((c, depth + 1) for c in reversed(parts[part_id]["children"]) if c in parts)


def list_vouchers(token: Token = None, api: ApiUrl = None) -> None:
    """Your vouchers: a core enterprise its payables against its line, a supplier the parts it holds, a bank
    its financing book and its exposure per core enterprise."""
    view = get_json(api, token, "/v1/vouchers")
    line = view.get("credit_line")
    if line:
        _say(
            f"credit line {line['limit_yuan']} from {line['bank_name']} until {line['expiry_date']}: "
            f"used {line['used_yuan']}, available {line['available_yuan']}"
        )
    for v in view.get("payables", []):
        _say(
            f"payable {v['voucher_id']}  due {v['maturity_date']}  {v['outstanding_yuan']}  "
            f"{v['status_label']}"
        )
    for p in view.get("parts", []):
        _say(
            f"holding {p['voucher_id']} part {p['part_id']}  of {p['core_name']}  due {p['maturity_date']}  "
            f"{p['remaining_yuan']}  {p['status_label']}"
        )
    for b in view.get("book", []):
        _say(
            f"financed {b['voucher_id']} part {b['part_id']}  of {b['core_name']}  "
            f"for {b['requester_name']}  face {b['face_yuan']}  paid {b['paid_yuan'] or '-'}  "
            f"due {b['maturity_date']}  {b['status_label']}"
        )
    for e in view.get("exposure", []):
        _say(
            f"exposure to {e['core_name']}: line {e['limit_yuan'] or '-'}, "
            f"outstanding {e['outstanding_yuan'] or '-'}, financed {e['financed_yuan']}"
        )
    if not any(view.get(k) for k in ("credit_line", "payables", "parts", "book", "exposure")):
        _say("no vouchers")


def verify(voucher: Voucher, token: Token = None, api: ApiUrl = None) -> None:
    """Verify a voucher's mirrored tree against the chain (core enterprise, its line's bank, auditors)."""
    result = get_json(api, token, f"/v1/vouchers/{voucher}/verification")
    _say(result["summary"])
    if not result["ok"]:
        raise typer.Exit(1)


def bundle(
    voucher: Voucher,
    out: Annotated[Path, typer.Option(help="Where to write the proof bundle (JSON).")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Write a voucher's proof bundle, to check offline with `fundflow verify-bundle`."""
    with client(api, token) as http:
        try:
            r = http.get(f"/v1/vouchers/{voucher}/bundle")
        except httpx.HTTPError as exc:
            raise unreachable(exc) from exc
    if r.status_code >= 300:
        answer(r)
    out.write_text(r.text, encoding="utf-8")
    _say(f"proof bundle of voucher {voucher} written to {out}; check it with fundflow verify-bundle {out}")


def export(
    voucher: Voucher,
    out: Annotated[Path, typer.Option(help="Where to write the export.")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx (an Excel workbook), csv or json.")] = "xlsx",
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Write a voucher's verified trail (every event, every part, the verdict) as xlsx, CSV or JSON."""
    if fmt not in ("xlsx", "csv", "json"):
        raise ValidationError(f"unknown format {fmt!r}", hint="use --format xlsx, csv or json")
    with client(api, token) as http:
        try:
            r = http.get(f"/v1/vouchers/{voucher}/export", params={"format": fmt})
        except httpx.HTTPError as exc:
            raise unreachable(exc) from exc
    if r.status_code >= 300:
        answer(r)
    out.write_bytes(r.content)
    _say(f"trail of voucher {voucher} exported to {out} ({fmt}, {len(r.content)} bytes)")


def register_voucher_commands(app: typer.Typer) -> None:
    vouchers_app = typer.Typer(help="Supply-chain vouchers (电子债权凭证).", no_args_is_help=True)
    for name, command in (
        ("list", list_vouchers),
        ("show", show),
        ("credit-line", credit_line),
        ("issue", issue),
        ("split", split),
        ("finance", finance),
        ("accept", accept),
        ("settle", settle),
        ("verify", verify),
        ("bundle", bundle),
        ("export", export),
    ):
        vouchers_app.command(name)(friendly_errors(command))
    app.add_typer(vouchers_app, name="vouchers")
