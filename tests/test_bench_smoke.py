"""The benchmark harness still runs: `scripts/bench.py --quick --only gas` end to end (its own Hardhat node),
writing results.json and the docs page to a temporary directory. Benchmarks themselves are not tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_bench_quick_gas_writes_ratios_against_the_erc20_baseline(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            "scripts/bench.py",
            "--quick",
            "--only",
            "gas",
            "--out",
            str(tmp_path),
            "--docs",
            str(docs),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads((tmp_path / "results.json").read_text())["figures"]
    pay = figures["gas.pay"]
    erc20 = figures["gas.ERC-20 transfer (new holder)"]
    assert pay["unit"] == "gas" and pay["baseline"] == erc20["value"]
    assert pay["ratio"] == round(pay["value"] / erc20["value"], 3)
    assert 21_000 < pay["value"] < 200_000
    assert "| gas.pay |" in docs.read_text()
