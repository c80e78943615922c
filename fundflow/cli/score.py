"""`fundflow score train | evaluate | apply`: the behaviour score (B卡, issue 21) on this machine's mirror.

- train: build the dataset from the mirror (monthly snapshots whose 12-month label window is observed),
  fit the scorecard and the challenger out of time, store the model and its card.
- evaluate: write the newest model's card (Markdown and JSON, with the German-credit check) to a path.
- apply: score every loan open at the chain's clock, store the scores, raise band alerts.

They read the database directly (FUNDFLOW_DATABASE_URL), like `fundflow index`: scores are the bank's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fundflow.cli.console import console, friendly_errors
from ledger.config import Settings, get_settings
from ledger.scoring.pipeline import Step, apply_scores, evaluate_model, train_model
from ledger.store.db import open_database

__all__ = ["progress_bar", "register_score_commands"]

score_app = typer.Typer(
    help="The behaviour score (B卡): train, evaluate (model card), apply.", no_args_is_help=True
)


class TrainedOn(StrEnum):
    mirror = "mirror"
    simulated = "simulated"


@contextmanager
def progress_bar() -> Iterator[Step]:
    """A rich progress bar per stage; yields the `progress(stage, done, total)` callback."""
    with Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, int] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = int(bar.add_task(stage, total=total))
            bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

        yield step


def _settings() -> Settings:
    return get_settings()


@friendly_errors
def train(
    data: Annotated[
        TrainedOn,
        typer.Option(help="What the mirror holds: a bank's real loans, or the portfolio simulator's."),
    ] = TrainedOn.mirror,
) -> None:
    """Train the scorecard and its challenger on the mirror's history and store them with their card."""
    settings = _settings()
    engine = open_database(settings.database_url)
    try:
        with progress_bar() as step:
            model_id, card = train_model(engine, settings, trained_on=data.value, progress=step)
    finally:
        engine.dispose()
    perf = card["performance"]
    console.print(
        f"model {model_id} trained on {card['data']['development']['rows']} development rows "
        f"({card['data']['development']['from']} to {card['data']['development']['to']}); out of time "
        f"({card['data']['test']['from']} to {card['data']['test']['to']}): scorecard AUC "
        f"{perf['scorecard']['test']['auc']:.3f} KS {perf['scorecard']['test']['ks']:.3f}, challenger AUC "
        f"{perf['challenger']['test']['auc']:.3f}",
        highlight=False,
        soft_wrap=True,
    )
    if card["trained_on"] == "simulated":
        console.print(f"[yellow]{card['limits'][0]}[/]", highlight=False)
    console.print(
        "next: `fundflow score evaluate` writes the model card, `fundflow score apply` scores loans"
    )


@friendly_errors
def evaluate(
    out: Annotated[
        Path, typer.Option(help="Where to write the card (.md; the .json goes beside it).")
    ] = Path("model-card.md"),
    model: Annotated[int | None, typer.Option(help="Model id (default: the newest).")] = None,
) -> None:
    """Write the model card (data dates, features, performance out of time, PSI, calibration, limits)."""
    settings = _settings()
    engine = open_database(settings.database_url)
    try:
        with progress_bar() as step:
            step("card", 0, 1)
            md, js, card = evaluate_model(engine, out, model_id=model)
            step("card", 1, 1)
    finally:
        engine.dispose()
    g = card["german_credit"]
    # soft_wrap: a path broken over two lines cannot be copied
    console.print(
        f"model card of model {card['model_id']} written to {md} and {js}", highlight=False, soft_wrap=True
    )
    console.print(
        f"German credit check of the machinery: AUC {g['auc']:.3f}, KS {g['ks']:.3f} "
        f"(published {g['published_auc'][0]:.2f}–{g['published_auc'][1]:.2f} / "
        f"{g['published_ks'][0]:.2f}–{g['published_ks'][1]:.2f})",
        highlight=False,
    )


def _aware(moment: datetime) -> datetime:
    """A mirror time read back without a zone is UTC (block timestamps are)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@friendly_errors
def apply() -> None:
    """Score every open loan as of the chain's clock with the newest model and store the scores."""
    settings = _settings()
    engine = open_database(settings.database_url)
    try:
        with progress_bar() as step:
            result = apply_scores(engine, settings, progress=step)
    finally:
        engine.dispose()
    table = Table("band", "loans")
    for band in "ABCDE":
        table.add_row(band, str(result.bands.get(band, 0)))
    console.print(table)
    console.print(
        f"{result.scored} open loan(s) scored as of "
        f"{_aware(result.as_of).astimezone(settings.bank_zone):%Y-%m-%d %H:%M %Z} with model "
        f"{result.model_id}; {result.alerts_opened} new alert(s)",
        highlight=False,
        soft_wrap=True,
    )


score_app.command("train")(train)
score_app.command("evaluate")(evaluate)
score_app.command("apply")(apply)


def register_score_commands(app: typer.Typer) -> None:
    app.add_typer(score_app, name="score")
