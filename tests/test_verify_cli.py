"""The auditor's commands end to end on the session Hardhat node and a SQLite mirror: verify, bundle,
verify-bundle (no settings, no database), report, export and attest."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import World, h
from eth_account import Account
from test_verify import Trail, index, make_trail
from typer.testing import CliRunner

from ledger.chain.client import ChainClient
from ledger.chain.keystore import Keystore
from ledger.chain.localchain import LocalChain
from ledger.config import get_settings
from ledger.store.db import create_db_engine, migrate

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, chain: LocalChain, world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trail]:
    """A data directory with the world's deployment record, its documents and an indexed SQLite mirror."""
    monkeypatch.setenv("FUNDFLOW_RPC_URL", chain.url)
    monkeypatch.setenv("FUNDFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FUNDFLOW_KEYSTORE_SCRYPT_N", "1024")
    monkeypatch.setenv("FUNDFLOW_OPERATOR_KEY", Account.create().key.hex())
    get_settings.cache_clear()
    settings = get_settings()
    world.deployment.save(settings.deployment_file)
    trail = make_trail(world, tmp_path)  # documents under tmp_path/documents, the settings' default
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    index(engine, world)
    engine.dispose()
    yield trail
    get_settings.cache_clear()


def fundflow(*args: str) -> tuple[int, str]:
    from fundflow.cli.main import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_verify_prints_every_event_and_the_verdict(env: Trail) -> None:
    code, out = fundflow("verify", env.loan_id)
    assert code == 0, out
    flat = " ".join(out.split())
    assert "VERIFIED at block" in flat
    assert "6/6 events (5 chained, 1 attestation), 2/2 lots, 4/4 stored documents" in flat
    for name in ("LoanOpened", "Disbursed", "Paid", "LotConfirmed", "Repaid", "TrailAttested"):
        assert name in out


def test_verify_json_and_exit_status_on_a_swapped_document(env: Trail) -> None:
    target = next(d for d, content in env.docs.items() if content == b"bank slip")
    (env.docs_dir / target).write_bytes(b"forged slip")
    code, out = fundflow("verify", env.loan_id, "--json")
    assert code == 1
    body = json.loads(out)
    assert body["ok"] is False
    assert body["problems"] == [
        f"document {target}: stored document hashes to 0x{_keccak(b'forged slip')}, not to the on-chain "
        "hash (altered or swapped)"
    ]


def _keccak(data: bytes) -> str:
    from eth_utils import keccak

    return keccak(data).hex()


def test_bundle_then_verify_bundle_with_block_hash_and_rpc(
    env: Trail, tmp_path: Path, client: ChainClient
) -> None:
    path = tmp_path / "out" / "bundle.json"
    code, out = fundflow("bundle", env.loan_id, "-o", str(path))
    assert code == 0, out
    bundle = json.loads(path.read_text())
    block_hash = bundle["header"]["hash"]
    address = bundle["contract"]
    code, out = fundflow("verify-bundle", str(path), "--block-hash", block_hash, "--ledger", address)
    assert code == 0, out
    assert "PROVEN" in out and "Disbursed" in out and bundle["head"] in out
    record = str(get_settings().deployment_file)
    code, out = fundflow(
        "verify-bundle", str(path), "--rpc", client.rpc_url, "--deployment", record, "--json"
    )
    assert code == 0, out
    body = json.loads(out)
    assert body["anchored_by"].startswith("block ") and body["proven"] is True
    assert body["pinned_by"].startswith(f"ledger {address}, chain 31337, genesis 0x")
    # Anchored but no expected ledger: verified, said plainly, not PROVEN (exit 2).
    code, out = fundflow("verify-bundle", str(path), "--block-hash", block_hash)
    assert code == 2 and "NOT PINNED" in out and "PROVEN" not in out.replace("NOT PINNED", "")
    code, out = fundflow("verify-bundle", str(path))
    assert code == 1 and "anchored" in out
    code, out = fundflow("verify-bundle", str(path), "--unanchored")
    assert code == 2 and "NOT ANCHORED" in out
    path.write_text(path.read_text().replace('"amount":"40000000"', '"amount":"40000001"'))
    code, out = fundflow("verify-bundle", str(path), "--block-hash", block_hash)
    assert code == 1 and "bundle.events[1]: hash chain breaks at this Disbursed" in out


def test_report_is_self_contained_html_with_verdict_block_and_attestations(
    env: Trail, tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    code, out = fundflow("report", env.loan_id, "-o", str(path))
    assert code == 0, out
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "@page" in page and "@media print" in page
    assert "VERIFIED" in page and "Proven at block" in page
    assert h("audit report") in page  # the attestation's report hash
    assert "<td>current</td>" in page  # nothing changed after the attestation
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_export_csv_and_json(env: Trail, tmp_path: Path) -> None:
    code, out = fundflow("export", env.loan_id, "--format", "csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["event"] for r in rows][:3] == ["LoanOpened", "Disbursed", "Paid"]
    assert rows[1]["amount"] == "40000000" and rows[1]["verified"] == "true"
    assert all(r["time"].endswith("Z") for r in rows)
    path = tmp_path / "trail.json"
    code, out = fundflow("export", env.loan_id, "--format", "json", "-o", str(path))
    assert code == 0, out
    body = json.loads(path.read_text())
    assert body["ok"] is True and len(body["trail"]) == 6
    assert body["attestations"][0]["current"] is True and body["attestations"][0]["events_since"] == 0
    code, out = fundflow("export", env.loan_id, "--format", "xml")
    assert code == 1 and "unknown format" in out


def test_attest_verifies_writes_the_report_and_attests_its_hash(
    env: Trail, world: World, tmp_path: Path
) -> None:
    settings = get_settings()
    Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=1024).import_key(
        "auditor", world.cast.auditor
    )
    path = tmp_path / "attested.html"
    code, out = fundflow("attest", env.loan_id, "--key", "auditor", "-o", str(path))
    assert code == 0, out
    events = world.ledger.events.decode_all(
        world.ledger.client.get_logs(
            world.ledger.address, 0, world.ledger.client.block_number(), [None, env.loan_id]
        )
    )
    last = [e for e in events if e.name == "TrailAttested"][-1]
    assert last.args["reportHash"] == "0x" + _keccak(path.read_bytes())
    assert last.args["head"] == world.ledger.head_of(env.loan_id)


def test_attest_refuses_a_trail_that_does_not_verify(env: Trail, world: World, tmp_path: Path) -> None:
    settings = get_settings()
    Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=1024).import_key(
        "auditor", world.cast.auditor
    )
    target = next(iter(env.docs))
    (env.docs_dir / target).write_bytes(b"swapped")
    head_before = world.ledger.head_of(env.loan_id)
    code, out = fundflow("attest", env.loan_id, "--key", "auditor", "-o", str(tmp_path / "r.html"))
    assert code == 1 and "failed verification" in out
    assert not (tmp_path / "r.html").exists()
    assert world.ledger.head_of(env.loan_id) == head_before


def _number_loan(loan_id: str, number: str) -> None:
    """What the API writes when it opens a loan: the loan's human number, off chain."""
    from ledger.store.offchain import LoanMetadata

    engine = create_db_engine(get_settings().database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(LoanMetadata.__table__),  # type: ignore[attr-defined]
            {
                "loan_id": loan_id,
                "loan_number": number,
                "terms": {},
                "terms_hash": h("terms"),
                "created_by": "0x" + "00" * 20,
            },
        )
    engine.dispose()


@pytest.mark.parametrize(
    "command",
    [
        ["verify"],
        ["bundle", "-o", "{tmp}/b.json"],
        ["report", "-o", "{tmp}/r.html"],
        ["export", "--format", "csv", "-o", "{tmp}/e.csv"],
    ],
)
def test_loan_commands_take_the_loan_number_or_the_id(env: Trail, tmp_path: Path, command: list[str]) -> None:
    _number_loan(env.loan_id, "LN-2026-0001")
    for ref in ("LN-2026-0001", env.loan_id, env.loan_id.upper().replace("0X", "0x")):
        args = [command[0], ref, *(a.replace("{tmp}", str(tmp_path)) for a in command[1:])]
        code, out = fundflow(*args)
        assert code == 0, (ref, out)
        assert "is not hex" not in out


def test_unknown_loan_number_and_garbage_are_refused_with_what_to_pass(env: Trail) -> None:
    code, out = fundflow("verify", "LN-2026-9999")
    assert code != 0 and "no loan numbered LN-2026-9999" in " ".join(out.split())
    code, out = fundflow("bundle", "loan-one", "-o", "x.json")
    flat = " ".join(out.split())
    assert code != 0 and "'loan-one' is neither a loan id nor a loan number" in flat
    assert "LN-2026-0001" in flat
