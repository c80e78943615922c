"""The client against every EVM node that installs here: Hardhat and anvil (npm, in the project), and
ganache (npm `ganache`, not a project dependency: found through FUNDFLOW_GANACHE or node_modules/.bin,
skipped otherwise). The same story on Hardhat and anvil: deploy, register, open a loan, disburse, pay, a
revert decoded with its arguments, a batch, then the real indexer mirrors it and the mirror equals the
chain. The differences the nodes showed are in docs/deployment.md ("EVM nodes tried").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_world, open_loan
from indexer_support import assert_mirror_matches_chain

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import PaymentSpec
from ledger.chain.localchain import LocalChain, free_port, project_root
from ledger.chain.rpc import RpcError
from ledger.errors import ContractRevertError
from ledger.mirror.indexer import Indexer
from ledger.store.db import create_db_engine, migrate

pytestmark = pytest.mark.slow


def _ganache_bin() -> str | None:
    for candidate in (
        os.environ.get("FUNDFLOW_GANACHE"),
        str(project_root() / "node_modules" / ".bin" / "ganache"),
        shutil.which("ganache"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@contextlib.contextmanager
def _ganache() -> Iterator[str]:
    binary = _ganache_bin()
    if binary is None:
        pytest.skip("ganache is not installed (npm install ganache; or set FUNDFLOW_GANACHE to its binary)")
    port = free_port()
    # Legacy pricing at gas price 0 (ganache has no zero base fee), so fresh keys send unfunded.
    process = subprocess.Popen(
        [
            binary,
            "--server.host",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--chain.hardfork",
            "berlin",
            "--miner.defaultGasPrice",
            "0",
            "--miner.blockGasLimit",
            "30000000",
            "--logging.quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not ChainClient(url, request_timeout=2).is_reachable():
            assert process.poll() is None, "ganache exited while starting"
            assert time.monotonic() < deadline, "ganache did not answer within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@contextlib.contextmanager
def _node(kind: str) -> Iterator[str]:
    if kind == "ganache":
        with _ganache() as url:
            yield url
        return
    with LocalChain(kind=kind) as node:
        yield node.url


def test_ganache_cannot_run_the_ledger_compiled_for_cancun(compiled: CompiledContract) -> None:
    """ganache 7.9 (the last release) stops at shanghai; the ledger is compiled for cancun (hardhat.config.js
    evmVersion), whose opcodes it does not know, so the deployment is refused before anything is sent. (Under
    ganache's default shanghai rules the send fails earlier still: its base fee is not zero, so unfunded keys
    cannot pay; hence berlin, legacy pricing at gas price 0, as free as the Hardhat config.)"""
    with _ganache() as url, pytest.raises(RpcError) as info:
        make_world(ChainClient(url), compiled)
    assert info.value.method == "eth_estimateGas"
    assert "invalid opcode" in info.value.rpc_message


@pytest.mark.parametrize("kind", ["hardhat", "anvil"])
def test_the_ledger_story_and_its_mirror_on_each_node(
    kind: str, compiled: CompiledContract, tmp_path: Path
) -> None:
    with _node(kind) as url:
        client = ChainClient(url)
        world = make_world(client, compiled)
        k = world.cast
        loan = open_loan(world)
        lot = world.ledger.disburse(k.bank, loan_id=loan, payee=k.supplier.address, amount=500, purpose=1)
        lot_id = lot.event("Disbursed").args["lotId"]
        world.ledger.pay(
            k.supplier, loan_id=loan, from_lot=lot_id, payee=k.subsupplier.address, amount=200, purpose=1
        )
        with pytest.raises(ContractRevertError) as info:
            world.ledger.pay(
                k.supplier, loan_id=loan, from_lot=lot_id, payee=k.subsupplier.address, amount=301, purpose=1
            )
        assert info.value.error_name == "LedgerInsufficientFunds"
        assert info.value.args_by_name == {"lotId": lot_id, "remaining": 300, "requested": 301}
        batch = world.ledger.pay_batch(
            k.supplier,
            loan_id=loan,
            payments=[
                PaymentSpec(from_lot=lot_id, payee=k.supplier2.address, amount=10, purpose=1),
                PaymentSpec(from_lot=lot_id, payee=k.subsupplier.address, amount=20, purpose=1),
            ],
        )
        assert [e.name for e in batch.events].count("Paid") == 2
        assert world.ledger.get_lot(loan, lot_id).remaining == 270

        engine = create_db_engine(f"sqlite:///{tmp_path / 'mirror.db'}")
        migrate(engine)
        indexer = Indexer(engine, ChainClient(url), world.deployment, poll_interval=0.02)
        with indexer.open():
            indexer.run_once()
        assert assert_mirror_matches_chain(engine, world.ledger, world.deployment) == client.block_number()
        engine.dispose()
