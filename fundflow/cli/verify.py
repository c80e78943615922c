"""`fundflow verify | bundle | verify-bundle | report | export | attest`: the auditor's commands,
registered on the main CLI by `register_verify_commands(app)`.

`verify-bundle` needs no settings or database: it is the offline check an auditor runs on a bundle someone
handed over, pinned to the ledger the auditor expects (`--ledger ADDRESS` or `--deployment FILE`).

Every command that takes a loan accepts its id (0x + 64 hex digits) or its loan number ("LN-2026-0001").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from fundflow.cli.console import console, friendly_errors
from fundflow.compose import chain_client
from ledger.audit.bundle import (
    BundleVerification,
    LedgerPin,
    build_bundle,
    heads_slot,
    load_bundle_text,
    verify_bundle,
    write_bundle,
)
from ledger.audit.report import People
from ledger.audit.verify import Verification, directory_documents, verify_loan
from ledger.chain.client import ChainClient
from ledger.chain.contract import LedgerContract
from ledger.chain.deploy import CONTRACT_NAME, Deployment, connect
from ledger.config import Settings, get_settings
from ledger.errors import ValidationError
from ledger.store.db import open_database
from ledger.store.offchain import LOAN_ID_PATTERN, loan_id_of

__all__ = ["register_verify_commands", "render_bundle_verification", "render_verification"]


_MANY = 40


def _ledger(settings: Settings) -> tuple[LedgerContract, Deployment]:
    deployment = Deployment.load(settings.deployment_file)
    client = chain_client(settings)
    return connect(client, deployment), deployment


def _documents_dir(settings: Settings) -> Path:
    return Path(getattr(settings, "documents_dir", settings.data_dir / "documents"))


def _verify(settings: Settings, loan: str, block: int | None) -> tuple[Verification, Engine]:
    engine = open_database(settings.database_url)
    loan_id = loan_id_of(engine, loan)
    ledger, _ = _ledger(settings)
    documents = directory_documents(_documents_dir(settings))
    return verify_loan(engine, ledger, loan_id, block=block, documents=documents), engine


def _loan_id(settings: Settings, loan: str) -> str:
    """The loan's id; a loan number is looked up in the database (an id needs none)."""
    if LOAN_ID_PATTERN.fullmatch(loan.strip()):
        return loan_id_of(None, loan)
    engine = open_database(settings.database_url)
    try:
        return loan_id_of(engine, loan)
    finally:
        engine.dispose()


_LOAN_HELP = 'The loan: its id (0x + 64 hex digits) or its loan number ("LN-2026-0001").'


def _brief(args: dict[str, Any]) -> str:
    keys = ("lotId", "payee", "amount", "purpose", "principal", "outstanding", "riskClass", "status", "head")
    shown = []
    for key in keys:
        if key in args and not (key == "head" and "lotId" in args):
            value = str(args[key])
            shown.append(f"{key}={value[:10] + '…' if value.startswith('0x') and len(value) > 42 else value}")
    return " ".join(shown[:4])


def render_verification(result: Verification, out: Console, *, show_all: bool = False) -> None:
    """The human-readable form: the verdict, what failed, and the trail (failing rows only when long)."""
    events = (
        result.events if show_all or len(result.events) <= _MANY else [e for e in result.events if not e.ok]
    )
    if events:
        table = Table(
            "block", "log", "event", "details", "verified", title=f"events of loan {result.loan_id}"
        )
        for e in events:
            table.add_row(
                str(e.block_number),
                str(e.log_index),
                e.name,
                _brief(e.args),
                "[green]yes[/]" if e.ok else "[red]NO[/] " + "; ".join(e.problems),
            )
        out.print(table)
    lots = (
        result.lots if show_all or len(result.lots) <= _MANY else [lot for lot in result.lots if not lot.ok]
    )
    if lots:
        table = Table("lot", "parent", "holder", "amount", "remaining", "verified", title="lots")
        for lot in lots:
            table.add_row(
                lot.lot_id[:12] + "…",
                (lot.parent_lot_id or "")[:12] + ("…" if lot.parent_lot_id else ""),
                lot.holder or "",
                str(lot.amount),
                str(lot.remaining),
                "[green]yes[/]" if lot.ok else "[red]NO[/] " + "; ".join(lot.problems),
            )
        out.print(table)
    bad_docs = [d for d in result.documents if not d.ok]
    for d in bad_docs:
        named = "; ".join(d.referenced_by) or "no event"
        out.print(f"[red]{d.kind} {d.hash}[/]: {d.problem} (referenced by {named})")
    for problem in result.chain_problems + result.loan_problems + result.record_problems:
        out.print(f"[red]{problem}[/]", highlight=False)
    if result.head_on_chain != result.head_recomputed:
        out.print(
            f"[red]head recomputed from the mirror {result.head_recomputed} != headOf "
            f"{result.head_on_chain}[/]"
        )
    if result.trail_grew_since:
        out.print(
            f"[yellow]the loan changed after block {result.block_number}: head now {result.head_now}[/]"
        )
    colour = "green" if result.ok else "red"
    out.print(f"[bold {colour}]{result.summary}[/]", highlight=False)


def render_bundle_verification(result: BundleVerification, out: Console) -> None:
    table = Table(
        "block",
        "log",
        "event",
        "details",
        "head after",
        title=f"proved trail of {result.subject} {result.loan_id}",
    )
    for e in result.events:
        table.add_row(str(e.block_number), str(e.log_index), e.name, _brief(e.args), e.head[:12] + "…")
    out.print(table)
    out.print(
        f"contract {result.contract} (code hash {result.code_hash}) on chain {result.chain_id}",
        highlight=False,
    )
    out.print(f"head {result.head} proven in the state of block {result.block_number} ({result.block_hash})")
    if result.pinned:
        out.print(f"pinned to {result.pinned_by}", highlight=False)
    if result.proven:
        out.print(f"[bold green]PROVEN[/]: header anchored to the {result.anchored_by}", highlight=False)
        if not result.positions_checked:
            out.print(
                "event positions (tx hash, block, log index) are covered by digests only; "
                "pass --rpc to check them against a node"
            )
        return
    if not result.anchored:
        out.print(
            "[bold yellow]NOT ANCHORED[/]: the bundle is internally consistent, but its block hash was not "
            "compared with one you trust; pass --block-hash or --rpc"
        )
    if not result.pinned:
        out.print(
            "[bold yellow]NOT PINNED[/]: no expected ledger was given, so this proves the trail of contract "
            f"{result.contract}, which may be any copy of the ledger's code, not your ledger; pass --ledger "
            "ADDRESS or --deployment FILE (the ledger's deployment record)",
            highlight=False,
        )


# ---------------------------------------------------------------------------------------------- commands


def verify(
    loan: Annotated[str, typer.Argument(help=_LOAN_HELP)],
    block: Annotated[int | None, typer.Option(help="Verify at this block (default: the mirror's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every event and lot, not only failures.")
    ] = False,
) -> None:
    """Verify a loan's mirrored trail against the chain; exits 1 if anything differs."""
    result, engine = _verify(get_settings(), loan, block)
    engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        render_verification(result, console, show_all=show_all)
    if not result.ok:
        raise typer.Exit(1)


def bundle(
    loan: Annotated[str, typer.Argument(help=_LOAN_HELP)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the bundle (JSON).")],
    block: Annotated[int | None, typer.Option(help="Prove at this block (default: the latest).")] = None,
) -> None:
    """Write an offline proof bundle of the loan's trail (see docs/bundle-format.md)."""
    from ledger.chain.compiler import load_contract

    settings = get_settings()
    loan_id = _loan_id(settings, loan)
    ledger, deployment = _ledger(settings)
    slot = heads_slot(load_contract(CONTRACT_NAME).storage_layout)
    built = build_bundle(ledger, loan_id, storage_slot=slot, from_block=deployment.block_number, block=block)
    write_bundle(built, output)
    console.print(
        f"wrote {output}: {len(built['events'])} events, head {built['head']} proven at block "
        f"{int(built['header']['number'], 16)} ({built['header']['hash']})",
        highlight=False,
    )


def verify_bundle_command(
    file: Annotated[Path, typer.Argument(help="The bundle file.")],
    block_hash: Annotated[
        str | None, typer.Option("--block-hash", help="The block hash you trust for the bundle's block.")
    ] = None,
    rpc: Annotated[
        str | None, typer.Option("--rpc", help="A node you trust; its block hash anchors.")
    ] = None,
    unanchored: Annotated[
        bool, typer.Option("--unanchored", help="Only check internal consistency (no trusted hash).")
    ] = False,
    ledger_address: Annotated[
        str | None,
        typer.Option("--ledger", help="The ledger's address you expect (from its deployment record)."),
    ] = None,
    deployment_file: Annotated[
        Path | None,
        typer.Option(
            "--deployment", help="The ledger's deployment record (chain id, genesis hash, ledger address)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the proved trail as JSON.")] = False,
) -> None:
    """Verify a proof bundle with no API and no database; prints the trail it proved. PROVEN needs both a
    trusted block hash (--block-hash or --rpc) and the expected ledger (--ledger or --deployment); exits 2
    when either is missing, 1 when the bundle fails. A voucher's bundle is pinned by --deployment (the record
    names the voucher contract beside the ledger)."""
    if block_hash is None and rpc is None and not unanchored:
        raise ValidationError(
            "a bundle proves nothing until its header is anchored to a block hash you trust",
            hint="pass --block-hash 0x… (from a source you trust) or --rpc URL (a node you trust); "
            "--unanchored checks internal consistency only",
        )
    if ledger_address is not None and deployment_file is not None:
        raise ValidationError(
            "--ledger and --deployment both name the expected ledger", hint="pass one of them"
        )
    pin = None
    if deployment_file is not None:
        pin = LedgerPin.load(deployment_file)
    elif ledger_address is not None:
        pin = LedgerPin(ledger_address, source="--ledger")
    client = ChainClient(rpc) if rpc else None
    result = verify_bundle(load_bundle_text(file), trusted_block_hash=block_hash, client=client, pin=pin)
    if as_json:
        body = {
            "subject": result.subject,  # "loan", or "voucher" for a voucher's bundle (its id in loan_id)
            "loan_id": result.loan_id,
            "head": result.head,
            "contract": result.contract,
            "chain_id": result.chain_id,
            "block": {
                "number": result.block_number,
                "hash": result.block_hash,
                "timestamp": result.timestamp,
            },
            "proven": result.proven,
            "anchored_by": result.anchored_by,
            "pinned_by": result.pinned_by,
            "positions_checked": result.positions_checked,
            "events": [
                {"name": e.name, "block_number": e.block_number, "log_index": e.log_index, "head": e.head}
                for e in result.events
            ],
        }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        render_bundle_verification(result, console)
    if not result.proven:
        raise typer.Exit(2)


def _people(settings: Settings) -> People:
    """Participant names (the directory file) and the bank's zone, so CLI outputs read as the API's do."""
    from ledger.chain.participants import Directory

    directory = Directory(settings.participants_file)
    return People(
        names={a: p.name for p in directory for a in p.accounts.values()},
        orgs={p.org_id: p.name for p in directory},
        zone=settings.bank_zone,
    )


def report(
    loan: Annotated[str, typer.Argument(help=_LOAN_HELP)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the HTML report.")],
    block: Annotated[int | None, typer.Option(help="Verify at this block (default: the mirror's).")] = None,
) -> None:
    """Verify the loan and write a printable HTML audit report (also written when verification fails)."""
    from ledger.audit.report import block_times, render_html, report_hash

    settings = get_settings()
    result, engine = _verify(settings, loan, block)
    times = block_times(engine, [e.block_number for e in result.events] + [result.block_number])
    engine.dispose()
    page = render_html(result, times=times, people=_people(settings))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    console.print(f"wrote {output} (report hash {report_hash(page)})", highlight=False)
    console.print(result.summary, highlight=False)


def export(
    loan: Annotated[str, typer.Argument(help=_LOAN_HELP)],
    fmt: Annotated[str, typer.Option("--format", help="csv, json or xlsx (xlsx needs -o).")] = "json",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File (default: stdout).")] = None,
    block: Annotated[int | None, typer.Option(help="Verify at this block (default: the mirror's).")] = None,
) -> None:
    """Export the verified trail as CSV, JSON or an Excel workbook (each row says whether it verified)."""
    from ledger.audit.report import block_times, export_csv, export_json
    from ledger.audit.workbook import export_xlsx

    if fmt not in ("csv", "json", "xlsx"):
        raise ValidationError(f"unknown format {fmt!r}", hint="use --format csv, json or xlsx")
    if fmt == "xlsx" and output is None:
        raise ValidationError("an Excel workbook is not text for a terminal", hint="add -o FILE.xlsx")
    settings = get_settings()
    result, engine = _verify(settings, loan, block)
    times = block_times(engine, [e.block_number for e in result.events] + [result.block_number])
    engine.dispose()
    people = _people(settings)
    if fmt == "xlsx" and output is not None:
        output.write_bytes(export_xlsx(result, times, people))
        console.print(f"wrote {output}", highlight=False)
        return
    text = export_csv(result, times, people) if fmt == "csv" else export_json(result, times, people)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}", highlight=False)


def attest(
    loan: Annotated[str, typer.Argument(help=_LOAN_HELP)],
    key_name: Annotated[str, typer.Option("--key", help="Keystore name of the auditor's account.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the attested report.")],
) -> None:
    """Verify the loan, write the audit report, and attest its head and the report's hash on chain."""
    from ledger.audit.attestation import attest_verified
    from ledger.audit.report import block_times, render_html, report_hash
    from ledger.chain.keystore import Keystore

    settings = get_settings()
    result, engine = _verify(settings, loan, None)
    times = block_times(engine, [e.block_number for e in result.events] + [result.block_number])
    engine.dispose()
    page = render_html(result, times=times, people=_people(settings))
    digest = report_hash(page)
    ledger, _ = _ledger(settings)
    keystore = Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=settings.keystore_scrypt_n)
    tx = attest_verified(result, ledger, keystore.unlock(key_name), report_hash=digest)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    console.print(
        f"attested head {result.head_on_chain} with report {output} ({digest}) in block {tx.block_number}",
        highlight=False,
    )


def register_verify_commands(app: typer.Typer) -> None:
    """Add the auditor's commands to the main CLI."""
    app.command("verify")(friendly_errors(verify))
    app.command("bundle")(friendly_errors(bundle))
    app.command("verify-bundle")(friendly_errors(verify_bundle_command))
    app.command("report")(friendly_errors(report))
    app.command("export")(friendly_errors(export))
    app.command("attest")(friendly_errors(attest))
