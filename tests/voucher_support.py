"""A supply chain for the voucher tests: the ledger and the voucher contract deployed on a node, the borrower
of the shared cast acting as the core enterprise (its large buyer), Bank A granting its credit line, and the
suppliers below it. Used by tests/test_vouchers_chain.py and tests/test_vouchers_indexer.py."""

from __future__ import annotations

from dataclasses import dataclass

from conftest import Cast, World, h, make_world
from eth_account.signers.local import LocalAccount

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.deploy import Deployment, connect_vouchers, deploy_vouchers
from ledger.chain.vouchers import VoucherContract

DAY = 86_400
LINE_LIMIT = 1_000_000_00  # 1,000,000.00 yuan
FACE = 300_000_00


@dataclass
class Chain:
    world: World
    vouchers: VoucherContract
    deployment: Deployment
    core_org: str

    @property
    def cast(self) -> Cast:
        return self.world.cast

    @property
    def core(self) -> LocalAccount:
        return self.world.cast.borrower

    @property
    def client(self) -> ChainClient:
        return self.vouchers.client

    def now(self) -> int:
        return int(self.client.get_header().timestamp)

    def advance(self, seconds: int) -> None:
        """Move the node's clock forward and mine a block at the new time (private nodes only)."""
        self.client.rpc("evm_increaseTime", [int(seconds)])
        self.client.rpc("evm_mine")

    def set_line(self, limit: int = LINE_LIMIT, *, days: int = 365) -> None:
        self.vouchers.set_credit_line(
            self.cast.bank,
            core_org=self.core_org,
            limit=limit,
            expiry=self.now() + days * DAY,
            terms_hash=h("line-terms"),
        )

    def issue(
        self, label: str, face: int = FACE, *, days: int = 90, holder: LocalAccount | None = None
    ) -> str:
        voucher_id = h(f"voucher:{label}")
        self.vouchers.issue_voucher(
            self.core,
            voucher_id=voucher_id,
            holder=(holder or self.cast.supplier).address,
            face_value=face,
            maturity=self.now() + days * DAY,
            currency="CNY",
            invoice_hash=h(f"invoice:{label}"),
        )
        return voucher_id


def make_chain(client: ChainClient, compiled: CompiledContract) -> Chain:
    world = make_world(client, compiled)
    deployment = deploy_vouchers(client, world.cast.operator, world.deployment)
    world.deployment = deployment
    return Chain(world, connect_vouchers(client, deployment), deployment, h("org:borrower"))
