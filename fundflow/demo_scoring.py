"""`fundflow up`'s behaviour-score demo (issue 21), kept apart from the demo story (fundflow/demo.py).

A behaviour score needs history: a label looks 12 months past its snapshot. So before the demo story,
part A's portfolio simulator lives through `DEMO_MONTHS` months of a simulated bank's portfolio on the real
chain (its own bank and suppliers; the demo's participants are untouched). The local chain is started
that many months in the past (`chain_start_date`, Hardhat's `initialDate`), so when the simulation ends the
chain's clock is back at today and the demo story runs "today" as always. After the story the score is
trained on the simulated history, its model card written to `<data_dir>/model-card.md`, and every open
loan (the demo's among them) scored.

FUNDFLOW_DEMO_SCORING=0 skips it all. It only runs on the chain `fundflow up` starts itself: the simulator
moves the chain's clock, which nobody may do to a shared chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.errors import FundflowError
from ledger.mirror.read import Mirror
from ledger.scoring.pipeline import ApplyResult, apply_scores, evaluate_model, train_model

__all__ = [
    "CHAIN_START_ENV",
    "DEMO_LOANS",
    "DEMO_MONTHS",
    "chain_start_date",
    "score_demo",
    "simulate_demo_history",
]

DEMO_LOANS = 150
DEMO_MONTHS = 24
DEMO_SEED = 21
CHAIN_START_ENV = "FUNDFLOW_CHAIN_START_DATE"
"""Read by hardhat.config.js: the local chain's first block's date."""

Step = Callable[[str, int, int], None]


def chain_start_date(months: int = DEMO_MONTHS, now: datetime | None = None) -> str:
    """When the local chain must start so that `months` simulated months end about today."""
    start = (now or datetime.now(UTC)) - timedelta(days=months * 365.25 / 12 + 3)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_indexed(stack: Any, timeout: float = 300.0) -> None:
    """Until the stack's indexer has mirrored the chain's current head (less the confirmation depth)."""
    client = stack.services.client
    target = client.block_number() - stack.settings.confirmations
    deadline = time.monotonic() + timeout
    while True:
        with stack.services.engine.connect() as conn:
            tip = Mirror(conn).tip()
        if tip is not None and tip >= target:
            return
        if stack.indexer_error is not None and not isinstance(stack.indexer_error, FundflowError):
            raise FundflowError(f"the indexer stopped: {stack.indexer_error}")
        if time.monotonic() > deadline:
            raise FundflowError(
                f"the indexer did not reach block {target} within {timeout:.0f} s (at {tip})",
                hint="see the log; FUNDFLOW_DEMO_SCORING=0 skips the behaviour-score demo",
            )
        time.sleep(0.5)


def simulate_demo_history(stack: Any, operator: Any, progress: Any = None) -> Any:
    """Simulate the history, catch the chain's clock up with today, and wait for the mirror."""
    from ledger.scoring.simulator import simulate_portfolio

    services = stack.services
    result = simulate_portfolio(
        services.client,
        services.ledger,
        operator=operator,
        engine=services.engine,
        loans=DEMO_LOANS,
        months=DEMO_MONTHS,
        seed=DEMO_SEED,
        progress=progress,
    )
    now = int(time.time())
    if services.client.get_header().timestamp < now:  # the clock lands on today (not before)
        services.client.rpc("evm_mine", [now])
    wait_indexed(stack)
    return result


def score_demo(stack: Any, progress: Step | None = None) -> tuple[Path, dict[str, Any], ApplyResult]:
    """Train on the mirrored history, write the model card, score every open loan."""
    wait_indexed(stack)
    engine, settings = stack.services.engine, stack.settings
    train_model(engine, settings, trained_on="simulated", progress=progress)
    md, _, card = evaluate_model(engine, settings.data_dir / "model-card.md")
    applied = apply_scores(engine, settings, progress=progress)
    return md, card, applied
