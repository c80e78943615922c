"""`fundflow up`'s behaviour-score demo: the local chain starts far enough in the past for the simulated
history to end about today (Hardhat's initialDate through FUNDFLOW_CHAIN_START_DATE)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fundflow.demo_scoring import CHAIN_START_ENV, DEMO_MONTHS, chain_start_date
from ledger.chain.client import ChainClient
from ledger.chain.localchain import LocalChain, free_port


def test_the_chain_starts_the_simulated_months_plus_three_days_before_now() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert chain_start_date(24, now) == "2024-12-03T00:00:00Z"
    assert DEMO_MONTHS == 24


@pytest.mark.slow
def test_a_local_chain_started_with_the_start_date_begins_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CHAIN_START_ENV, "2024-12-03T00:00:00Z")
    with LocalChain(free_port(), log_path=tmp_path / "chain.log") as node:
        stamp = ChainClient(node.url).get_header().timestamp
    started = datetime(2024, 12, 3, tzinfo=UTC).timestamp()
    assert started <= stamp < started + 600
