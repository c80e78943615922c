"""Deploy the ledger and keep a record of where it is.

The deployment record (JSON, default var/deployment.json) is what every other part reads to find the
contract: chain id and genesis hash (so nothing ever mixes chains), address, deployment block, ABI and a hash
of it (so a mirror built from one ABI is not read with another).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount

from ledger.chain.client import ChainClient, ErrorDecoder, TxResult
from ledger.chain.compiler import CompiledContract, load_contract
from ledger.chain.contract import LedgerContract
from ledger.chain.vouchers import VOUCHERS_CONTRACT_NAME, VoucherContract
from ledger.errors import ChainMismatchError, DeploymentError

__all__ = [
    "CONTRACT_NAME",
    "Deployment",
    "abi_hash",
    "connect",
    "connect_vouchers",
    "deploy_ledger",
    "deploy_vouchers",
]

CONTRACT_NAME = "FundFlowLedger"


def abi_hash(abi: list[dict[str, Any]]) -> str:
    canonical = json.dumps(abi, sort_keys=True, separators=(",", ":"))
    return "0x" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    genesis_hash: str
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    deployer: str
    abi_hash: str
    source_hash: str
    deployed_at: str
    abi: list[dict[str, Any]] = field(repr=False)
    contract: str = CONTRACT_NAME
    # The supply-chain voucher contract beside the ledger (issue 22); absent in records written before it.
    vouchers_address: str | None = None
    vouchers_block_number: int | None = None
    vouchers_abi_hash: str | None = None
    vouchers_abi: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def addresses(self) -> list[str]:
        """Every contract address the mirror follows: the ledger, then the voucher contract if deployed."""
        return [self.address, *([self.vouchers_address] if self.vouchers_address else [])]

    def save(self, path: Path) -> None:
        """Write atomically, so a crash mid-write never leaves a half record."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".deployment-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DeploymentError(
                f"no deployment record at {path}", hint="deploy first with `fundflow deploy`"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DeploymentError(
                f"deployment record {path} is not valid JSON ({exc})",
                hint="restore it from a backup or deploy again",
            ) from exc
        try:
            record = cls(**data)
        except TypeError as exc:
            raise DeploymentError(
                f"deployment record {path} is incomplete: {exc}", hint="deploy again"
            ) from exc
        if abi_hash(record.abi) != record.abi_hash:
            raise DeploymentError(
                f"deployment record {path} has an ABI that does not match its hash", hint=""
            )
        if record.vouchers_abi is not None and abi_hash(record.vouchers_abi) != record.vouchers_abi_hash:
            raise DeploymentError(
                f"deployment record {path} has a voucher-contract ABI that does not match its hash", hint=""
            )
        return record

    def check_chain(self, client: ChainClient) -> None:
        """Refuse to work against a node that is not the chain this deployment lives on."""
        if client.chain_id != self.chain_id:
            raise ChainMismatchError(
                f"the node at {client.display_url} is chain {client.chain_id}, "
                f"but the ledger was deployed on chain {self.chain_id}"
            )
        genesis = client.get_header(0).hash
        if genesis != self.genesis_hash:
            raise ChainMismatchError(
                f"the node at {client.display_url} has genesis {genesis}, but the ledger was deployed on a "
                f"chain with genesis {self.genesis_hash} (the node was probably restarted afresh)",
                hint="deploy again with `fundflow deploy --force`, "
                "or point FUNDFLOW_RPC_URL at the original chain",
            )
        for address in self.addresses:
            if client.get_code(address) in ("0x", ""):
                raise ChainMismatchError(
                    f"no contract code at {address} on {client.display_url}", hint="deploy again"
                )


def deploy_ledger(
    client: ChainClient,
    operator: LocalAccount,
    compiled: CompiledContract | None = None,
    *,
    vouchers: bool = False,
) -> Deployment:
    """Deploy FundFlowLedger with `operator` as admin and operator, and return its record (not saved).
    With `vouchers`, the supply-chain voucher contract is deployed beside it (`deploy_vouchers`)."""
    compiled = compiled or load_contract(CONTRACT_NAME)
    address, result = _create(client, operator, compiled, operator.address)
    deployment = Deployment(
        chain_id=client.chain_id,
        genesis_hash=client.get_header(0).hash,
        address=address,
        block_number=result.block_number,
        block_hash=result.block_hash,
        tx_hash=result.tx_hash,
        deployer=operator.address,
        abi_hash=abi_hash(compiled.abi),
        source_hash=compiled.source_hash,
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        abi=compiled.abi,
    )
    return deploy_vouchers(client, operator, deployment) if vouchers else deployment


def _create(
    client: ChainClient, operator: LocalAccount, compiled: CompiledContract, address: str
) -> tuple[str, TxResult]:
    """Send `compiled`'s creation code with one constructor argument, an address: (the new contract's
    address, the receipt)."""
    bytecode = compiled.bytecode[2:] if compiled.bytecode.startswith("0x") else compiled.bytecode
    data = "0x" + bytecode + abi_encode(["address"], [address]).hex()
    result = client.transact(operator, None, data, errors=ErrorDecoder(compiled.abi))
    if result.contract_address is None:
        raise DeploymentError(f"deployment transaction {result.tx_hash} created no {compiled.name}", hint="")
    return result.contract_address, result


def connect(client: ChainClient, deployment: Deployment, *, check: bool = True) -> LedgerContract:
    """The ledger contract of `deployment`, after checking the node is the right chain."""
    if check:
        deployment.check_chain(client)
    return LedgerContract(client, deployment.address, deployment.abi)


def deploy_vouchers(
    client: ChainClient,
    operator: LocalAccount,
    deployment: Deployment,
    compiled: CompiledContract | None = None,
) -> Deployment:
    """Deploy SupplyChainVouchers beside `deployment`'s ledger (it reads identities, roles and the pause
    flag from it) and return the record with the voucher contract added (not saved)."""
    compiled = compiled or load_contract(VOUCHERS_CONTRACT_NAME)
    address, result = _create(client, operator, compiled, deployment.address)
    return replace(
        deployment,
        vouchers_address=address,
        vouchers_block_number=result.block_number,
        vouchers_abi_hash=abi_hash(compiled.abi),
        vouchers_abi=compiled.abi,
    )


def connect_vouchers(client: ChainClient, deployment: Deployment) -> VoucherContract:
    """The voucher contract of `deployment`; DeploymentError when the record has none."""
    if deployment.vouchers_address is None or deployment.vouchers_abi is None:
        raise DeploymentError(
            "this deployment has no supply-chain voucher contract",
            hint="deploy it with `fundflow deploy --force` (or `fundflow up`), which deploys both contracts",
        )
    return VoucherContract(
        client, deployment.vouchers_address, deployment.vouchers_abi, ledger_abi=deployment.abi
    )
