"""The `fundflow` command line against the session's Hardhat node: deploy, participants, demo, errors."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from ledger.chain.client import ChainClient
from ledger.chain.contract import LENDER_ROLE
from ledger.chain.deploy import Deployment, connect
from ledger.chain.keystore import Keystore
from ledger.chain.localchain import LocalChain, free_port
from ledger.config import DEV_PASSPHRASE, HARDHAT_DEV_KEY, Settings, get_settings
from ledger.errors import ConfigError

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, chain: LocalChain, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the CLI at the session node and a fresh data directory, with a cheap scrypt cost."""
    monkeypatch.setenv("FUNDFLOW_RPC_URL", chain.url)
    monkeypatch.setenv("FUNDFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FUNDFLOW_KEYSTORE_SCRYPT_N", "1024")
    monkeypatch.setenv("FUNDFLOW_OPERATOR_KEY", Account.create().key.hex())
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def fundflow(*args: str) -> tuple[int, str]:
    from fundflow.cli.main import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_deploy_records_the_deployment_and_reuses_it(env: Path, client: ChainClient) -> None:
    code, out = fundflow("deploy")
    assert code == 0, out
    first = Deployment.load(env / "deployment.json")
    assert first.chain_id == client.chain_id and client.get_code(first.address) != "0x"
    code, out = fundflow("deploy")
    assert code == 0 and Deployment.load(env / "deployment.json").address == first.address
    code, out = fundflow("deploy", "--force")
    assert code == 0 and Deployment.load(env / "deployment.json").address != first.address


def test_participants_add_list_rotate_remove(env: Path, client: ChainClient) -> None:
    assert fundflow("deploy")[0] == 0
    code, out = fundflow("participants", "add", "Test Bank One", "--role", "lender")
    assert code == 0, out
    ledger = connect(client, Deployment.load(env / "deployment.json"))
    directory = json.loads((env / "participants.json").read_text())["participants"]
    bank = directory["Test Bank One"]
    address = bank["accounts"]["test-bank-one"]
    assert ledger.has_role(LENDER_ROLE, address)
    assert ledger.organization_of(address) == bank["org_id"]
    assert "Test Bank One" not in json.dumps(ledger.abi)  # the name stays off chain (sanity: not in ABI)

    # Running it again changes nothing (idempotent onboarding).
    assert fundflow("participants", "add", "Test Bank One", "--role", "lender")[0] == 0
    assert json.loads((env / "participants.json").read_text())["participants"]["Test Bank One"] == bank

    code, out = fundflow("participants", "list")
    assert code == 0 and "Test Bank One" in out and "yes" in out

    code, out = fundflow("participants", "rotate", "Test Bank One", "--key-name", "test-bank-one")
    assert code == 0, out
    new = json.loads((env / "participants.json").read_text())["participants"]["Test Bank One"]["accounts"][
        "test-bank-one"
    ]
    assert new != address
    assert ledger.has_role(LENDER_ROLE, new) and not ledger.has_role(LENDER_ROLE, address)
    assert ledger.organization_of(new) == bank["org_id"]

    code, out = fundflow("participants", "remove", "Test Bank One", "--key-name", "test-bank-one")
    assert code == 0, out
    assert not ledger.has_role(LENDER_ROLE, new)
    assert int(ledger.organization_of(new), 16) == 0


def test_participants_add_with_unknown_role_fails_with_hint_and_no_traceback(env: Path) -> None:
    assert fundflow("deploy")[0] == 0
    code, out = fundflow("participants", "add", "Somebody", "--role", "banker")
    assert code == 1
    assert "unknown role 'banker'" in out and "hint:" in out and "lender, enterprise, auditor" in out
    assert "Traceback" not in out


def test_commands_against_an_unreachable_node_explain_what_to_do(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNDFLOW_RPC_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    code, out = fundflow("deploy")
    assert code == 1
    assert "cannot reach the chain node" in out and "FUNDFLOW_RPC_URL" in out and "Traceback" not in out


def test_commands_without_a_deployment_say_to_deploy_first(env: Path) -> None:
    code, out = fundflow("participants", "list")
    assert code == 1 and "no deployment record" in out and "fundflow deploy" in out


def test_up_stack_tells_the_demo_story_through_the_api_once(
    env: Path, client: ChainClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `fundflow up` runs after starting the chain: deploy, indexer + monitor + API, then the demo."""
    import httpx

    from fundflow.cli.api import seed_and_print
    from fundflow.cli.main import _ensure_deployed, _operator
    from fundflow.compose import ApiStack
    from ledger.store.offchain import create_token

    monkeypatch.setenv("FUNDFLOW_API_PORT", str(free_port()))
    monkeypatch.setenv("FUNDFLOW_MAX_REORG_DEPTH", "7")  # every knob is a setting: `up` must honour it too
    get_settings.cache_clear()
    settings = get_settings()
    _ensure_deployed(settings, client)
    stack = ApiStack(settings).start()
    assert stack.indexer.max_reorg_depth == 7
    try:
        seed_and_print(stack, _operator(settings))
        seed_and_print(stack, _operator(settings))  # a second start records nothing twice
        auditor = json.loads((env / "participants.json").read_text())["participants"]["Harbor Audit Partners"]
        token = create_token(
            stack.services.engine,
            participant="Harbor Audit Partners",
            key_name="harbor-audit-partners",
            address=auditor["accounts"]["harbor-audit-partners"],
        )
        with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}) as http:
            loans = http.get("/v1/loans").json()["items"]
            trail = http.get("/v1/loans/LN-2026-0001/trail").json()
            alerts = http.get("/v1/alerts", params={"loan": "LN-2026-0001"}).json()["items"]
            second = http.get("/v1/alerts", params={"loan": "LN-2026-0002", "limit": 100}).json()["items"]
            visits = http.get("/v1/loans/LN-2026-0001/visits").json()
            register = http.get("/v1/loans/LN-2026-0001/collateral-register").json()
            repayments = http.get("/v1/loans/LN-2026-0001/repayments").json()
            suggestion = http.get("/v1/loans/LN-2026-0001/classification-suggestion").json()
            summary = http.get("/v1/loans/LN-2026-0001").json()
    finally:
        stack.stop()
    assert len(loans) == 2  # the demo loan and the guarantor's own (issue 19)
    lots = _flatten(trail)
    assert len(lots) >= 6
    assert any(lot["declared_use"] is False for lot in lots)  # the securities payment, flagged
    assert any(lot["confirmation"] == "disputed" for lot in lots)
    assert any(lot["confirmation"] == "confirmed" for lot in lots)
    assert {"prohibited_use", "disputed_payment"} <= {a["rule"] for a in alerts}
    # the post-loan file: a mutual guarantee (互保) on both loans, a missed site visit resolved by the visit
    assert [a["state"] for a in alerts if a["rule"] == "guarantee_cycle"] == ["open"]
    assert [a["state"] for a in second if a["rule"] == "guarantee_cycle"] == ["open"]
    assert [a["state"] for a in second if a["rule"] == "missed_inspection"] == ["resolved"]
    assert [v["chain_kind"] for v in visits] == ["interview", "site_visit"]
    assert all(v["report_status"] == "verified" for v in visits)
    # the collateral register: an appraiser's signed valuation of the registered item, less its haircut
    (item,) = register["items"]
    assert [(v["source"], v["signed_by_name"], v["value"]) for v in item["valuations"]] == [
        ("appraiser", "Westlake Appraisal Co", "2600000.00")
    ]
    assert item["effective_value"] == "1820000.00"
    # servicing (issue 18): the late interest paid with penalty, an extension under financial difficulty, the
    # class proposed and approved by a second account
    assert repayments[0]["interest"] > 0 and repayments[0]["penalty"] > 0
    assert suggestion["observation"] is not None and suggestion["observation"]["start"] is not None
    assert suggestion["days_past_due"] == 0 and suggestion["floor_class"] == 1
    assert summary["risk_class"] == 1


def _flatten(trail: dict) -> list[dict]:
    out: list[dict] = []
    stack = list(trail.get("lots") or trail.get("roots") or [])
    while stack:
        lot = stack.pop()
        out.append(lot)
        stack.extend(lot.get("children", []))
    return out


def test_keystore_is_encrypted_private_and_refuses_a_wrong_passphrase(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys", "correct horse", scrypt_n=1024)
    account = store.create("acme")
    path = tmp_path / "keys" / "acme.json"
    text = path.read_text()
    assert account.key.hex().removeprefix("0x") not in text and "correct horse" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keystore(tmp_path / "keys", "correct horse").unlock("acme").address == account.address
    with pytest.raises(ConfigError) as info:
        Keystore(tmp_path / "keys", "wrong").unlock("acme")
    assert "wrong passphrase" in info.value.message and "correct horse" not in str(info.value)
    assert "correct horse" not in repr(store)


def test_prod_refuses_dev_key_and_dev_passphrase(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="public development key"):
        Settings(env="prod", rpc_url="http://node:8545", operator_key=HARDHAT_DEV_KEY, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="keystore passphrase"):
        Settings(env="prod", rpc_url="http://node:8545", keystore_passphrase=DEV_PASSPHRASE, _env_file=None)  # type: ignore[call-arg]
    secret = tmp_path / "passphrase"
    secret.write_text("a-real-one\n")
    settings = Settings(
        env="prod", rpc_url="http://node:8545", keystore_passphrase_file=secret, _env_file=None
    )  # type: ignore[call-arg]
    assert settings.passphrase() == "a-real-one"
    assert "a-real-one" not in repr(settings)


def test_up_moves_aside_the_mirror_of_a_local_chain_that_is_gone(tmp_path: Path, client: ChainClient) -> None:
    """A local Hardhat node is a new chain on every start: the SQLite mirror of the previous `fundflow up`
    is kept under another name and this run starts afresh, instead of failing on the chain mismatch."""
    import sqlalchemy as sa

    from fundflow.cli.main import retire_stale_local_mirror
    from ledger.store.db import create_db_engine, migrate

    def mirror(genesis: str) -> Path:
        path = tmp_path / "fundflow.db"
        engine = create_db_engine(f"sqlite:///{path}")
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM checkpoint"))
            conn.execute(
                sa.text(
                    "INSERT INTO checkpoint (id, chain_id, genesis_hash, contract_address, abi_hash, "
                    "start_block, block_number, block_hash, updated_at) "
                    "VALUES (1, 31337, :g, :a, :h, 1, 0, :h, '2026-01-01')"
                ),
                {"g": genesis, "a": "0x" + "00" * 20, "h": "0x" + "00" * 32},
            )
        engine.dispose()
        return path

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'fundflow.db'}")
    same = client.get_header(0).hash
    path = mirror(same)
    assert retire_stale_local_mirror(settings, client) is None  # the same chain: kept in place
    assert path.exists()

    path.unlink()
    path = mirror("0x" + "ab" * 32)
    kept = retire_stale_local_mirror(settings, client)
    assert kept == tmp_path / "fundflow.db.chain-abababab"
    assert kept.exists() and not path.exists()
    assert retire_stale_local_mirror(settings, client) is None  # nothing left to move

    postgres = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u@127.0.0.1:1/x")
    assert retire_stale_local_mirror(postgres, client) is None  # never touches a server database
