"""Issue 20: a new user can follow the README's walkthrough with curl as written. `fundflow up` (what
`make run` starts) runs as a real process on the session node; its printed `export` line and the README's
shell block then run in bash, unchanged, and every step must do what the README says."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ledger.chain.localchain import LocalChain, free_port
from ledger.chain.transport import unreachable

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
FUNDFLOW = Path(sys.executable).parent / "fundflow"


def _walkthrough() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## A walkthrough with curl\n.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None, "the README has no walkthrough block"
    return block[1]


def _objects(text: str) -> list[object]:
    """The JSON documents json.tool printed, in order."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while (start := text.find("{", i)) != -1:
        try:
            value, i = decoder.raw_decode(text, start)
        except ValueError:
            i = start + 1
            continue
        out.append(value)
    return out


def test_the_readme_walkthrough_runs_as_written(chain: LocalChain, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FUNDFLOW_ENV": "dev",
        "FUNDFLOW_RPC_URL": chain.url,
        "FUNDFLOW_DATA_DIR": str(tmp_path / "var"),
        "FUNDFLOW_API_PORT": str(free_port()),
        "FUNDFLOW_KEYSTORE_SCRYPT_N": "1024",
    }
    env.pop("FUNDFLOW_DATABASE_URL", None)
    out: list[str] = []
    with subprocess.Popen(
        [str(FUNDFLOW), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    ) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:  # pytest-timeout bounds this
                out.append(line)
                if "Ctrl-C stops everything." in line:
                    break
            printed = "".join(out)
            assert "risk class 关注 special mention" in printed, printed  # not SPECIAL_MENTION
            export = next(line.strip() for line in out if line.strip().startswith("export FF="))
            work = tmp_path / "walk"
            work.mkdir()
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", f"{export}\n{_walkthrough()}"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=240,
                env={k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")},
            )
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    docs = _objects(run.stdout)
    health, loan, paid, refused, confirmed, disputed = docs[:6]
    assert health["status"] == "ok"  # type: ignore[index]
    assert (loan["loan_number"], loan["principal_yuan"], loan["currency"]) == (
        "LN-2026-0001",
        "8000000.00",
        "CNY",
    )  # type: ignore[index]
    assert loan["block_time"].endswith("+08:00") and loan["maturity_date"]  # type: ignore[index]
    assert paid["events"][0]["args"]["amount"] == 1_250_000 and paid["mirrored"] is True  # type: ignore[index]
    assert refused["error"] == "Validation"  # type: ignore[index]
    assert 'or "amount": "12500.00" for CNY 12,500.00' in refused["message"]  # type: ignore[index]
    assert confirmed["events"][0]["name"] == "LotConfirmed"  # type: ignore[index]
    assert disputed["events"][0]["name"] == "LotDisputed"  # type: ignore[index]
    alerts = docs[6]
    assert any("Pinecrest Electronics" in a["explanation_named"] for a in alerts["items"])  # type: ignore[index]
    assert all(a["rule_zh"] == "收款有异议" for a in alerts["items"])  # type: ignore[index]
    rows = list(csv.DictReader(io.StringIO((work / "trail.csv").read_text(encoding="utf-8-sig"))))
    assert any(r["payee_name"] == "Greenfield Logistics" and r["amount_yuan"] == "12500.00" for r in rows)
    assert load_workbook(work / "trail.xlsx")["Summary 概要"]["B1"].value == "LN-2026-0001"
    assert "Harbor Audit Partners" in (work / "report.html").read_text(encoding="utf-8")
    # 8. vouchers (issue 22): the core enterprise's payables against its line, a supplier's parts, the book
    core, supplier, bank = docs[7:10]
    line = core["credit_line"]  # type: ignore[index]
    assert (core["view"], line["bank_name"], line["limit_yuan"]) == (  # type: ignore[index]
        "core",
        "Lakeside Commercial Bank",
        "50000000.00",
    )
    assert line["used_yuan"] == "6120000.00"  # 6,300,000 issued, 180,000 settled
    payables = [(v["face_value_yuan"], v["status"]) for v in core["payables"]]  # type: ignore[index]
    assert payables == [("300000.00", "overdue"), ("6000000.00", "outstanding")]
    held = [(p["remaining_yuan"], p["may_finance"]) for p in supplier["parts"]]  # type: ignore[index]
    assert held == [("3500000.00", True)]
    book = bank["book"]  # type: ignore[index]
    assert [(b["requester_name"], b["face_yuan"], b["status"]) for b in book] == [
        ("Northriver Steel", "2100000.00", "financed")
    ]
    assert [(e["core_name"], e["financed_yuan"]) for e in bank["exposure"]] == [  # type: ignore[index]
        ("Huaxin Motors", "2100000.00")
    ]


def test_an_unreachable_node_names_the_settings_that_say_where_it_is() -> None:
    error = unreachable("http://127.0.0.1:9545", ConnectionRefusedError())
    assert "http://127.0.0.1:9545" in str(error)
    assert "FUNDFLOW_RPC_URL" in error.hint and "FUNDFLOW_CHAIN_PORT" in error.hint
