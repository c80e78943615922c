"""`fundflow`: the command line.

Every command reads settings from FUNDFLOW_* variables (and .env). Errors the product raises on purpose
print as a message and a hint, never a traceback, and exit with status 1.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.table import Table

from api.guards import restore_recursion_limit
from fundflow.cli.console import console, err_console, friendly_errors
from fundflow.compose import chain_client
from ledger.chain.client import ChainClient
from ledger.chain.contract import LedgerContract
from ledger.chain.deploy import Deployment, connect, deploy_ledger
from ledger.chain.keystore import Keystore
from ledger.chain.localchain import LocalChain
from ledger.chain.participants import PARTICIPANT_ROLES, ROLES, Directory, onboard, remove, rotate
from ledger.config import Settings, get_settings, prepare_data_dir
from ledger.errors import ChainMismatchError, DeploymentError, FundflowError
from ledger.store.db import sqlite_path

__all__ = ["app", "main"]

app = typer.Typer(help="Fundflow: a fund-flow ledger for post-loan management.", no_args_is_help=True)
participants_app = typer.Typer(help="Register organisations, their accounts and roles.", no_args_is_help=True)
app.add_typer(participants_app, name="participants")


def _operator(settings: Settings) -> LocalAccount:
    assert settings.operator_key is not None
    account: LocalAccount = Account.from_key(settings.operator_key.get_secret_value())
    return account


def _client(settings: Settings) -> ChainClient:
    return chain_client(settings)


def _keystore(settings: Settings) -> Keystore:
    return Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=settings.keystore_scrypt_n)


def _ledger(settings: Settings) -> LedgerContract:
    client = _client(settings)
    return connect(client, Deployment.load(settings.deployment_file))


def _ensure_deployed(settings: Settings, client: ChainClient, *, force: bool = False) -> Deployment:
    """The recorded deployment if it lives on this chain; otherwise deploy and record a new one."""
    if not force and settings.deployment_file.exists():
        try:
            deployment = Deployment.load(settings.deployment_file)
            deployment.check_chain(client)
            return deployment
        except ChainMismatchError as exc:
            if not settings.starts_local_chain:
                raise  # never silently redeploy on a real network
            console.print(f"[yellow]{exc.message}; deploying afresh on the local chain[/]")
        except DeploymentError as exc:
            console.print(f"[yellow]{exc.message}; deploying afresh[/]")
    deployment = deploy_ledger(client, _operator(settings), vouchers=True)
    deployment.save(settings.deployment_file)
    return deployment


# ---------------------------------------------------------------------------------------------- commands


@app.command()
@friendly_errors
def chain(
    port: Annotated[int | None, typer.Option(help="Port (default FUNDFLOW_CHAIN_PORT).")] = None,
    kind: Annotated[str, typer.Option(help="hardhat or anvil.")] = "hardhat",
) -> None:
    """Start a local chain node on 127.0.0.1 and keep it running until Ctrl-C."""
    settings = get_settings()
    node = LocalChain(port or settings.chain_port, kind=kind).start()
    console.print(
        f"{kind} node listening on [bold]{node.url}[/] (chain id {ChainClient(node.url).chain_id})."
    )
    console.print("Ctrl-C stops it.")
    _wait_for_interrupt(node)


@app.command()
@friendly_errors
def compile() -> None:  # noqa: A001 - the command is called compile
    """Compile contracts/ with the pinned solc (offline) and show what was built."""
    from ledger.chain.compiler import compile_contracts

    table = Table("contract", "runtime bytes", "source hash")
    for name, c in sorted(compile_contracts().items()):
        table.add_row(name, str(len(c.deployed_bytecode.removeprefix("0x")) // 2), c.source_hash[:18])
    console.print(table)


@app.command()
@friendly_errors
def deploy(
    force: Annotated[bool, typer.Option(help="Deploy even if a deployment is recorded.")] = False,
) -> None:
    """Deploy the ledger with the operator key and write the deployment record."""
    settings = get_settings()
    client = _client(settings)
    deployment = _ensure_deployed(settings, client, force=force)
    console.print(
        f"FundFlowLedger at [bold]{deployment.address}[/] on chain {deployment.chain_id}, block "
        f"{deployment.block_number}; record in {settings.deployment_file}"
    )


@app.command()
@friendly_errors
def pause() -> None:
    """Operator: freeze every ledger write (emergency stop)."""
    settings = get_settings()
    result = _ledger(settings).pause(_operator(settings))
    console.print(f"ledger paused in block {result.block_number}")


@app.command()
@friendly_errors
def unpause() -> None:
    """Operator: allow ledger writes again."""
    settings = get_settings()
    result = _ledger(settings).unpause(_operator(settings))
    console.print(f"ledger unpaused in block {result.block_number}")


@participants_app.command("add")
@friendly_errors
def participants_add(
    name: Annotated[str, typer.Argument(help="The organisation's name (kept off chain).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(PARTICIPANT_ROLES)}.")],
    address: Annotated[str | None, typer.Option(help="Use this account instead of generating a key.")] = None,
    key_name: Annotated[
        str | None, typer.Option(help="Keystore name of the account (default: slug of name).")
    ] = None,
) -> None:
    """Register an organisation (if new), attach an account to it, and grant the role."""
    settings = get_settings()
    ledger = _ledger(settings)
    participant, account = onboard(
        ledger,
        _operator(settings),
        Directory(settings.participants_file),
        _keystore(settings),
        name=name,
        role=role,
        key_name=key_name,
        address=address,
    )
    console.print(f"{participant.name}: {role}, org {participant.org_id}, account {account}")


@participants_app.command("list")
@friendly_errors
def participants_list() -> None:
    """Show registered participants with their on-chain role status."""
    settings = get_settings()
    ledger = _ledger(settings)
    table = Table("name", "role", "org id", "account", "role on chain")
    for p in Directory(settings.participants_file):
        for key_name, address in p.accounts.items():
            if p.role in ROLES:
                active = ledger.has_role(ROLES[p.role], address)
            else:  # a third party holds no role: it acts where a lender engaged its organisation
                active = ledger.organization_of(address) == p.org_id
            table.add_row(
                p.name, p.role, p.org_id[:18] + "…", f"{key_name} {address}", "yes" if active else "NO"
            )
    console.print(table)


@participants_app.command("remove")
@friendly_errors
def participants_remove(
    name: str, key_name: Annotated[str, typer.Option(help="Which account of the organisation.")]
) -> None:
    """Detach an account from its organisation; its roles are revoked at once."""
    settings = get_settings()
    address = remove(
        _ledger(settings), _operator(settings), Directory(settings.participants_file), name, key_name
    )
    console.print(f"removed {address} from {name}")


@participants_app.command("rotate")
@friendly_errors
def participants_rotate(
    name: str, key_name: Annotated[str, typer.Option(help="Which account of the organisation.")]
) -> None:
    """Replace an account's key: the new one gets the same organisation and role, the old one is removed."""
    settings = get_settings()
    old, new = rotate(
        _ledger(settings),
        _operator(settings),
        Directory(settings.participants_file),
        _keystore(settings),
        name,
        key_name,
    )
    console.print(f"{name}: {old} replaced by {new}")


@app.command()
@friendly_errors
def up(
    replicas: Annotated[
        int,
        typer.Option(
            min=0,
            help="Run the production shape instead: N API replicas behind HAProxy, a leader and a standby "
            "indexer, on a PostgreSQL database of its own (FUNDFLOW_CLUSTER_DATABASE_URL names the server).",
        ),
    ] = 0,
) -> None:
    """Start the local chain (unless FUNDFLOW_RPC_URL is set), deploy (unless recorded), run the indexer and
    the API, seed the demo through the API, and keep running until Ctrl-C."""
    from fundflow.cli.api import seed_and_print
    from fundflow.compose import ApiStack

    settings = get_settings()
    if replicas:
        _up_cluster(settings, replicas)
        return
    node: LocalChain | None = None
    stack: ApiStack | None = None
    # issue 21: with the behaviour-score demo the local chain starts in the past (fundflow/demo_scoring.py)
    scoring = _demo_scoring_start(settings)
    if settings.starts_local_chain:
        node = LocalChain(settings.chain_port, log_path=_log_path(settings, "chain.log")).start()
        console.print(f"local chain: [bold]{node.url}[/] (log {settings.data_dir / 'chain.log'})")
    try:
        client = _client(settings)
        deployment = _ensure_deployed(settings, client)
        console.print(f"ledger: [bold]{deployment.address}[/] on chain {deployment.chain_id}")
        if settings.starts_local_chain:
            retire_stale_local_mirror(settings, client)
        stack = ApiStack(settings).start()
        console.print(f"indexer: following the chain into {settings.redacted()['database_url']}")
        if scoring:
            _demo_history(stack, _operator(settings))
        seed_and_print(stack, _operator(settings))
        if scoring:
            _demo_scores(stack)
        console.print("Ctrl-C stops everything.")
        _wait_for_interrupt(node)
    finally:
        if stack is not None:
            stack.stop()
        if node is not None:
            node.stop()


def _demo_scoring_start(settings: Settings) -> bool:
    """Whether `up` runs the behaviour-score demo; if so the local chain will start in the past."""
    import os

    from fundflow.demo_scoring import CHAIN_START_ENV, chain_start_date

    if not settings.demo_scoring:
        return False
    if not settings.starts_local_chain:
        console.print(
            "behaviour-score demo skipped: it moves the chain's clock, so only on the chain `up` starts"
        )
        return False
    os.environ[CHAIN_START_ENV] = chain_start_date()
    return True


def _demo_history(stack: Any, operator: LocalAccount) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fundflow.demo_scoring import DEMO_LOANS, DEMO_MONTHS, simulate_demo_history

    console.print(
        f"behaviour score: simulating {DEMO_LOANS} loans over {DEMO_MONTHS} months of history on the chain "
        "(a simulated bank of its own; FUNDFLOW_DEMO_SCORING=0 skips this)"
    )
    with Progress(
        TextColumn("[bold]simulating"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task("simulating", total=1.0)
        result = simulate_demo_history(
            stack, operator, progress=lambda done, total: bar.update(task, completed=done / max(total, 1))
        )
        bar.update(task, completed=1.0)
    console.print(
        f"simulated {len(result.loans)} loans: {result.transactions} transactions in {result.seconds:.0f} s "
        f"({result.tx_per_second:.0f} tx/s), mirrored"
    )


def _demo_scores(stack: Any) -> None:
    from fundflow.cli.score import progress_bar
    from fundflow.demo_scoring import score_demo

    with progress_bar() as step:
        card_path, card, applied = score_demo(stack, progress=step)
    perf = card["performance"]
    bands = ", ".join(f"{b} {applied.bands.get(b, 0)}" for b in "ABCDE")
    console.print(
        f"behaviour score: model {card['model_id']} (out of time: scorecard AUC "
        f"{perf['scorecard']['test']['auc']:.2f}, challenger {perf['challenger']['test']['auc']:.2f}; "
        f"simulated data: it shows the pipeline works, not real predictive power); {applied.scored} open "
        f"loans scored: {bands}; model card {card_path}; dashboard /dashboard/scores",
        highlight=False,
    )


def _up_cluster(settings: Settings, replicas: int) -> None:
    """`fundflow up --replicas N`: see fundflow/cluster.py. Ctrl-C (or SIGTERM) stops every process."""
    import os

    from fundflow.cluster import DEFAULT_SERVER_URL, Cluster
    from ledger.config import mask_url

    server = os.environ.get("FUNDFLOW_CLUSTER_DATABASE_URL") or DEFAULT_SERVER_URL
    cluster = Cluster(settings, replicas=replicas, server_url=server)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C, through the finally below

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        cluster.start()
        console.print(f"local chain: [bold]{cluster.chain_url}[/]", highlight=False)
        console.print(f"database {cluster.database} on {mask_url(server)} (dropped on exit)", highlight=False)
        for name, m in cluster.members.items():
            where = f"127.0.0.1:{m.port}" if m.port else ""
            console.print(f"  {name:<10} pid {m.pid:<8} {where}", highlight=False)
        console.print(f"leading indexer: [bold]{cluster.leader()}[/] (the other waits on the lock)")
        tokens, _, loan = cluster.seed_demo()
        console.print(f"demo loan {loan['loan_number']} seeded through the balancer")
        console.print("API tokens:")
        for name, token in tokens.items():
            print(f"  {name:<26} {token}")
        console.print(
            f"\nAPI behind HAProxy: [bold]{cluster.url}[/]  (logs and haproxy.cfg in {cluster.work_dir})\n"
            "Ctrl-C stops everything.",
            highlight=False,
        )
        while True:
            for name, m in cluster.members.items():
                if not m.running and name in ("haproxy",):
                    raise FundflowError(f"{name} exited", hint=f"see {m.log}")
            if cluster.chain is not None and not cluster.chain.running:
                raise FundflowError("the chain node exited", hint=f"see {cluster.work_dir}/chain.log")
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C (make forwards one, impatient hands press twice) must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        console.print("stopping: the balancer, replicas, indexers, the chain, then the database …")
        try:
            cluster.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        console.print("stopped.")


def retire_stale_local_mirror(settings: Settings, client: ChainClient) -> Path | None:
    """A local Hardhat node starts a new chain every time (its genesis differs), so the SQLite mirror of the
    last `fundflow up` describes a chain that is gone, and the indexer would rightly refuse to mix the two.
    Move that file aside (kept, renamed after the old chain's genesis) so this run starts a fresh mirror;
    return where it went. Only SQLite files are moved: a PostgreSQL mirror is never touched."""
    path = sqlite_path(settings.database_url)
    if path is None or not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT genesis_hash FROM checkpoint WHERE id = 1").fetchone()
    except sqlite3.Error:
        return None  # no checkpoint yet (or not a mirror): nothing to compare
    if row is None or row[0] == client.get_header(0).hash:
        return None
    kept = path.with_name(f"{path.name}.chain-{str(row[0])[2:10]}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{kept}{suffix}"))
    console.print(
        f"[yellow]{path} mirrored an earlier local chain (genesis {row[0]}); kept as {kept.name}, "
        "starting a fresh mirror[/]"
    )
    return kept


def _log_path(settings: Settings, name: str) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir / name


def _wait_for_interrupt(node: LocalChain | None) -> None:
    """Block until Ctrl-C/SIGTERM (or the node dies), then return so callers clean up."""
    stop = False

    def handle(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handle)
    try:
        while not stop:
            if node is not None and not node.running:
                err_console.print("[bold red]the chain node exited[/]")
                raise typer.Exit(1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            node.stop()
        console.print("stopped.")


def main() -> None:
    """The `fundflow` program. Everything it writes is its user's only (see `prepare_data_dir`)."""
    # py_ecc (through eth-account) raised Python's recursion limit to 100,000 at import, which lets deep
    # input overflow the C stack (a segfault) instead of raising RecursionError: every command runs with
    # the limit CPython ships with.
    restore_recursion_limit()
    try:
        try:
            data_dir = get_settings().data_dir
        except FundflowError:  # invalid settings: the command itself says what is wrong
            data_dir = None
        prepare_data_dir(data_dir)
        app()
    except KeyboardInterrupt:
        sys.exit(130)


try:  # the indexer's commands live with the indexer
    from fundflow.cli.index import register_index_commands
except ImportError:  # pragma: no cover - during development only
    pass
else:
    register_index_commands(app)

from fundflow.cli.api import register_api_commands  # noqa: E402

register_api_commands(app, friendly_errors)

from fundflow.cli.verify import register_verify_commands  # noqa: E402  (the auditor's commands)

register_verify_commands(app)

from fundflow.cli.visits import register_visit_commands  # noqa: E402  (the post-loan file)

register_visit_commands(app)

from fundflow.cli.guarantees import register_guarantee_commands  # noqa: E402

register_guarantee_commands(app)

from fundflow.cli.writeoff import register_write_off_commands  # noqa: E402

register_write_off_commands(app)

from fundflow.cli.register import register_register_commands  # noqa: E402  (issue 19, second half)

register_register_commands(app)

from fundflow.cli.score import register_score_commands  # noqa: E402  (issue 21: the behaviour score)

register_score_commands(app)
from fundflow.cli.vouchers import register_voucher_commands  # noqa: E402  (issue 22: supply-chain vouchers)

register_voucher_commands(app)
