"""`fundflow index` and `fundflow status`: the indexer's commands, registered on the main CLI by
`register_index_commands(app)`. Also runnable alone: `python -m fundflow.cli.index index --once`.

Both run the database migrations first, so a fresh database needs no separate step.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from fundflow.cli.console import console, err_console, friendly_errors
from fundflow.compose import build_indexer, chain_client, start_webhooks
from ledger.config import get_settings
from ledger.mirror.indexer import BatchProgress
from ledger.mirror.status import indexer_status
from ledger.store.db import open_database

__all__ = ["register_index_commands"]


LOCK_WAIT_MESSAGE = "another indexer holds the lock; waiting"


class _ProgressBar:
    """Backfill progress: blocks done of the backlog, blocks/s, events/s, ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.started = time.monotonic()
        self.blocks = 0
        self.events = 0

    def __call__(self, p: BatchProgress) -> None:
        total = p.target - p.start_block + 1
        done = p.to_block - p.start_block + 1
        self.blocks += p.blocks
        self.events += p.events
        elapsed = max(time.monotonic() - self.started, 1e-6)
        fields: dict[str, Any] = {
            "bps": self.blocks / elapsed,
            "eps": self.events / elapsed,
            "events": self.events,
        }
        if self.task is None:
            self.task = self.progress.add_task("indexing", total=total, completed=done, **fields)
        else:
            self.progress.update(self.task, total=total, completed=done, **fields)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks  {task.fields[bps]:,.0f} blocks/s  {task.fields[eps]:,.0f} events/s"),
        TextColumn("({task.fields[events]:,} events)"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def index(
    once: Annotated[bool, typer.Option("--once", help="Catch up with the chain and exit.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for another indexer to exit instead of failing.")
    ] = True,
    max_reorg_depth: Annotated[
        int | None,
        typer.Option(
            min=1, help="Deepest reorg undone before stopping (default FUNDFLOW_MAX_REORG_DEPTH, 64)."
        ),
    ] = None,
) -> None:
    """Mirror the ledger's events into the database: backfill from the deployment, then follow the tip.
    Monitoring rules run after every batch; new alerts go to FUNDFLOW_WEBHOOK_URLS."""
    settings = get_settings()
    if max_reorg_depth is not None:
        settings = settings.model_copy(update={"max_reorg_depth": max_reorg_depth})
    engine = open_database(settings.database_url)
    progress = _progress()
    bar = _ProgressBar(progress)
    indexer = build_indexer(settings, engine, on_progress=bar)
    webhooks = start_webhooks(settings, engine)

    def waiting() -> None:
        err_console.print(f"[yellow]{LOCK_WAIT_MESSAGE}[/]", highlight=False)

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        with indexer.open(wait=wait, on_wait=waiting):
            started = time.monotonic()
            with progress:
                # Following the chain, an outage is waited out from the start; --once fails fast instead.
                blocks = indexer.run_once(stop, on_outage=None if once else _report_outage)
            cp = indexer.checkpoint
            console.print(
                f"indexed {blocks:,} blocks, {bar.events:,} events in {time.monotonic() - started:.1f} s; "
                f"at block {cp.block_number}",
                highlight=False,
            )
            if once:
                return
            console.print("following the chain; Ctrl-C stops", highlight=False)
            indexer.on_progress = None
            indexer.run_forever(stop, on_outage=_report_outage)
    except KeyboardInterrupt:
        console.print("stopped.")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if webhooks is not None:
            webhooks.stop()
        engine.dispose()


def _report_outage(error: BaseException | None, retry_in: float) -> None:
    """An outage is waited out (the indexer resumes from its checkpoint); say so, and say when it ends."""
    if error is None:
        console.print("reachable again; following the chain", highlight=False)
    else:
        err_console.print(f"[yellow]waiting:[/] {error} (retrying in {retry_in:.1f} s)", highlight=False)


def status() -> None:
    """Show the mirror's checkpoint, the chain head, the lag and event counts."""
    settings = get_settings()
    engine = open_database(settings.database_url)
    client = chain_client(settings, request_timeout=3.0)
    s = indexer_status(engine, client)
    engine.dispose()
    if not s.initialized:
        console.print("the mirror is empty: run `fundflow index`")
        return
    table = Table(show_header=False, box=None)
    table.add_row("chain", str(s.chain_id))
    table.add_row("contract", str(s.contract_address))
    table.add_row("chain head", str(s.head) if s.head is not None else f"unknown ({s.node_error})")
    table.add_row("indexed block", f"{s.indexed_block} ({s.indexed_hash})")
    table.add_row("lag", f"{s.lag} blocks" if s.lag is not None else "unknown")
    table.add_row("updated", str(s.updated_at))
    table.add_row("blocks / loans / lots", f"{s.blocks:,} / {s.loans:,} / {s.lots:,}")
    console.print(table)
    counts = Table("event", "count")
    for name, n in s.event_counts.items():
        counts.add_row(name, f"{n:,}")
    counts.add_row("[bold]total", f"[bold]{s.events:,}")
    console.print(counts)


def register_index_commands(app: typer.Typer) -> None:
    """Add `index` and `status` to the main CLI."""
    app.command("index")(friendly_errors(index))
    app.command("status")(friendly_errors(status))


def _standalone() -> typer.Typer:
    app = typer.Typer(help="Fundflow indexer commands.", no_args_is_help=True)
    register_index_commands(app)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _standalone()()
