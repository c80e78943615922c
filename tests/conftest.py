"""Shared fixtures: one real Hardhat node per test session, a fresh ledger deployment per test, and a cast
of participants (two banks, a borrower, suppliers, an auditor, an outsider) with freshly generated keys.

The node runs with free gas (hardhat.config.js), so participant keys need no funding.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.chain.client import ChainClient, TxResult
from ledger.chain.compiler import CompiledContract, load_contract
from ledger.chain.contract import (
    AUDITOR_ROLE,
    ENTERPRISE_ROLE,
    LENDER_ROLE,
    LedgerContract,
    LoanStatus,
    PaymentSpec,
    RiskClass,
)
from ledger.chain.deploy import Deployment, connect, deploy_ledger
from ledger.chain.localchain import LocalChain
from ledger.errors import ContractRevertError
from ledger.protocol.events import DecodedEvent
from ledger.protocol.purposes import Purpose

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def h(label: str) -> str:
    """A deterministic 32-byte id/hash for test data (never anything that looks like a real document)."""
    return "0x" + keccak(text=label).hex()


@pytest.fixture(scope="session")
def chain() -> Iterator[LocalChain]:
    ARTIFACTS.mkdir(exist_ok=True)
    with LocalChain(log_path=ARTIFACTS / "hardhat.log") as node:
        yield node


@pytest.fixture(scope="session")
def client(chain: LocalChain) -> ChainClient:
    return ChainClient(chain.url)


@pytest.fixture(scope="session")
def compiled() -> CompiledContract:
    return load_contract("FundFlowLedger")


@dataclass
class Cast:
    """Everyone a test needs, with their on-chain organisation ids."""

    operator: LocalAccount
    bank: LocalAccount  # lender at Bank A
    bank2: LocalAccount  # a second officer of Bank A
    other_bank: LocalAccount  # lender at Bank B
    borrower: LocalAccount  # the borrowing enterprise
    supplier: LocalAccount
    supplier2: LocalAccount
    subsupplier: LocalAccount
    auditor: LocalAccount
    outsider: LocalAccount  # registered to an organisation, holds no role
    stranger: LocalAccount  # not registered at all
    bank_org: str
    other_bank_org: str
    auditor_org: str


@dataclass
class World:
    ledger: LedgerContract
    deployment: Deployment
    cast: Cast


def _register(
    ledger: LedgerContract, operator: LocalAccount, org: str, accounts: list[LocalAccount], role: str | None
):
    ledger.register_organization(operator, org, h(f"profile:{org}"))
    for account in accounts:
        ledger.add_account(operator, org, account.address)
        if role is not None:
            ledger.grant_role(operator, role, account.address)


def make_world(client: ChainClient, compiled: CompiledContract) -> World:
    operator = Account.create()
    deployment = deploy_ledger(client, operator, compiled)
    ledger = connect(client, deployment)
    accounts = {name: Account.create() for name in Cast.__dataclass_fields__ if not name.endswith("_org")}
    accounts["operator"] = operator
    cast = Cast(
        **accounts,  # type: ignore[arg-type]
        bank_org=h("org:bank-a"),
        other_bank_org=h("org:bank-b"),
        auditor_org=h("org:auditor"),
    )
    _register(ledger, operator, cast.bank_org, [cast.bank, cast.bank2], LENDER_ROLE)
    _register(ledger, operator, cast.other_bank_org, [cast.other_bank], LENDER_ROLE)
    _register(ledger, operator, h("org:borrower"), [cast.borrower], ENTERPRISE_ROLE)
    _register(ledger, operator, h("org:supplier"), [cast.supplier], ENTERPRISE_ROLE)
    _register(ledger, operator, h("org:supplier2"), [cast.supplier2], ENTERPRISE_ROLE)
    _register(ledger, operator, h("org:subsupplier"), [cast.subsupplier], ENTERPRISE_ROLE)
    _register(ledger, operator, cast.auditor_org, [cast.auditor], AUDITOR_ROLE)
    _register(ledger, operator, h("org:outsider"), [cast.outsider], None)
    return World(ledger, deployment, cast)


@pytest.fixture
def world(client: ChainClient, compiled: CompiledContract) -> World:
    """A fresh deployment with every participant registered."""
    return make_world(client, compiled)


DEFAULT_PURPOSES = (Purpose.RAW_MATERIALS, Purpose.EQUIPMENT, Purpose.WAGES)


def open_loan(
    world: World,
    label: str = "loan-1",
    *,
    principal: int = 1_000_000_00,
    purposes: tuple[int, ...] = DEFAULT_PURPOSES,
    lender: LocalAccount | None = None,
) -> str:
    """Open a loan from Bank A to the borrower and return its id."""
    loan_id = h(f"loan:{label}")
    world.ledger.open_loan(
        lender or world.cast.bank,
        loan_id=loan_id,
        borrower=world.cast.borrower.address,
        borrower_ref=h(f"borrower-ref:{label}"),
        principal=principal,
        currency="CNY",
        allowed_purposes=purposes,
        maturity=int(time.time()) + 365 * 86400,
        terms_hash=h(f"terms:{label}"),
    )
    return loan_id


def postgres_url() -> str:
    """PostgreSQL server for tests; CI sets FUNDFLOW_TEST_DATABASE_URL, the machines here run one locally."""
    return os.environ.get("FUNDFLOW_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# ---------------------------------------------------------------- contract test helpers
# Used by tests/test_contract_*.py and tests/test_hashchain.py.

ZERO_HASH = "0x" + "00" * 32
UINT64_MAX = 2**64 - 1


@contextmanager
def reverts(error_name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevertError]]:
    """Expect the block to raise `ContractRevertError` with exactly this custom error and these arguments
    (bytes32 as lowercase 0x-hex, addresses checksummed, integers as int)."""
    with pytest.raises(ContractRevertError) as info:
        yield info
    assert (info.value.error_name, info.value.args_by_name) == (error_name, expected_args), str(info.value)


def chain_time(client: ChainClient) -> int:
    """The latest block's timestamp: maturities are checked against the chain's clock, not this machine's."""
    return client.get_header().timestamp


def loan_events(world: World, loan_id: str, from_block: int | None = None) -> list[DecodedEvent]:
    """Every ledger event whose first topic argument is `loan_id`, in chain order."""
    client = world.ledger.client
    logs = client.get_logs(
        world.ledger.address,
        world.deployment.block_number if from_block is None else from_block,
        client.block_number(),
        topics=[None, loan_id],
    )
    return world.ledger.events.decode_all(logs)


def disburse_lot(
    world: World, loan_id: str, payee: LocalAccount, amount: int, purpose: int = Purpose.RAW_MATERIALS
) -> str:
    """Disburse from Bank A and return the new lot's id."""
    result = world.ledger.disburse(
        world.cast.bank, loan_id=loan_id, payee=payee.address, amount=amount, purpose=purpose
    )
    return str(result.event("Disbursed").args["lotId"])


def pay_lot(
    world: World,
    spender: LocalAccount,
    loan_id: str,
    from_lot: str,
    payee: LocalAccount,
    amount: int,
    purpose: int = Purpose.RAW_MATERIALS,
) -> str:
    """Pay out of `from_lot` and return the child lot's id."""
    result = world.ledger.pay(
        spender, loan_id=loan_id, from_lot=from_lot, payee=payee.address, amount=amount, purpose=purpose
    )
    return str(result.event("Paid").args["lotId"])


@dataclass
class Scene:
    """A world with one open loan of Bank A and two lots: `lot` (disbursed to the supplier) and `child_lot`
    (paid out of `lot` by the supplier to the subsupplier)."""

    world: World
    loan_id: str
    lot: str
    child_lot: str

    @property
    def cast(self) -> Cast:
        return self.world.cast

    @property
    def ledger(self) -> LedgerContract:
        return self.world.ledger


SCENE_PRINCIPAL = 1_000_000_00
SCENE_LOT_AMOUNT = 400_000_00
SCENE_CHILD_AMOUNT = 100_000_00


def make_scene(world: World) -> Scene:
    loan_id = open_loan(world, "scene", principal=SCENE_PRINCIPAL)
    lot = disburse_lot(world, loan_id, world.cast.supplier, SCENE_LOT_AMOUNT)
    child = pay_lot(world, world.cast.supplier, loan_id, lot, world.cast.subsupplier, SCENE_CHILD_AMOUNT)
    return Scene(world, loan_id, lot, child)


@pytest.fixture
def scene(world: World) -> Scene:
    return make_scene(world)


# One valid call per state-changing function of the ledger, parameterised by who sends it. Each is valid
# when sent by the account named in AUTHORIZED_CALLER on a fresh `make_scene` (for `unpause`: a paused one),
# so a test that expects a refusal knows the refusal comes from the caller or the pause, not the arguments.
WriteCall = Callable[[Scene, LocalAccount], TxResult]

WRITE_CALLS: dict[str, WriteCall] = {
    "registerOrganization": lambda s, a: s.ledger.register_organization(a, h("org:new"), h("profile:new")),
    "addAccount": lambda s, a: s.ledger.add_account(a, h("org:outsider"), Account.create().address),
    "removeAccount": lambda s, a: s.ledger.remove_account(a, s.cast.supplier2.address),
    "grantRole": lambda s, a: s.ledger.grant_role(a, ENTERPRISE_ROLE, s.cast.outsider.address),
    "revokeRole": lambda s, a: s.ledger.revoke_role(a, ENTERPRISE_ROLE, s.cast.supplier2.address),
    "pause": lambda s, a: s.ledger.pause(a),
    "unpause": lambda s, a: s.ledger.unpause(a),
    "openLoan": lambda s, a: s.ledger.open_loan(
        a,
        loan_id=h("loan:new"),
        borrower=s.cast.borrower.address,
        borrower_ref=h("borrower-ref:new"),
        principal=5_000_00,
        currency="CNY",
        allowed_purposes=DEFAULT_PURPOSES,
        maturity=chain_time(s.ledger.client) + 86400,
        terms_hash=h("terms:new"),
    ),
    "disburse": lambda s, a: s.ledger.disburse(
        a, loan_id=s.loan_id, payee=s.cast.supplier2.address, amount=1_000, purpose=Purpose.EQUIPMENT
    ),
    "pay": lambda s, a: s.ledger.pay(
        a, loan_id=s.loan_id, from_lot=s.lot, payee=s.cast.supplier2.address, amount=1_000, purpose=1
    ),
    "payBatch": lambda s, a: s.ledger.pay_batch(
        a, loan_id=s.loan_id, payments=[PaymentSpec(s.lot, s.cast.supplier2.address, 1_000, 1)]
    ),
    "confirmLot": lambda s, a: s.ledger.confirm_lot(
        a, loan_id=s.loan_id, lot_id=s.child_lot, evidence_hash=h("receipt")
    ),
    "disputeLot": lambda s, a: s.ledger.dispute_lot(
        a, loan_id=s.loan_id, lot_id=s.child_lot, reason_hash=h("dispute")
    ),
    "repay": lambda s, a: s.ledger.repay(a, loan_id=s.loan_id, amount=1_000, evidence_hash=h("repayment")),
    "closeLoan": lambda s, a: s.ledger.close_loan(
        a, loan_id=s.loan_id, status=LoanStatus.WRITTEN_OFF, reason_hash=h("write-off")
    ),
    "classify": lambda s, a: s.ledger.classify(
        a, loan_id=s.loan_id, risk_class=RiskClass.SUBSTANDARD, reason_hash=h("reason")
    ),
    "valueCollateral": lambda s, a: s.ledger.value_collateral(
        a,
        loan_id=s.loan_id,
        collateral_id=h("collateral:1"),
        value=7_500_000_00,
        evidence_hash=h("appraisal"),
    ),
    "recordInspection": lambda s, a: s.ledger.record_inspection(
        a, loan_id=s.loan_id, kind=0, report_hash=h("site-visit")
    ),
    "fileRecord": lambda s, a: s.ledger.file_record(
        a, loan_id=s.loan_id, record_kind=0, record_id=h("guarantee"), content_hash=h("guarantee")
    ),
    "restructure": lambda s, a: s.ledger.restructure(
        a, loan_id=s.loan_id, maturity=chain_time(s.ledger.client) + 2 * 365 * 86400, terms_hash=h("terms:v2")
    ),
    "fileAppraisal": lambda s, a: _appraise(s, a),
    "attest": lambda s, a: s.ledger.attest(
        a, loan_id=s.loan_id, head=s.ledger.head_of(s.loan_id), report_hash=h("audit-report")
    ),
    # loan servicing (issue 18)
    "repayAllocated": lambda s, a: s.ledger.repay_allocated(
        a, loan_id=s.loan_id, principal=1_000, interest=250, penalty=5, evidence_hash=h("repayment")
    ),
    "changeTerms": lambda s, a: s.ledger.change_terms(
        a,
        loan_id=s.loan_id,
        maturity=chain_time(s.ledger.client) + 2 * 365 * 86400,
        terms_hash=h("terms:v3"),
        change=0,
        financial_difficulty=True,
    ),
}


def _appraise(s: Scene, a: LocalAccount) -> TxResult:
    """The outsider's organisation plays the appraiser: the bank engages it first (kind 4) when it is the one
    signing, so every other caller is refused as not engaged, on a scene the refusal leaves unchanged."""
    org = h("org:outsider")
    if a is s.cast.outsider and s.ledger.engagement_of(s.loan_id, org) == 0:
        s.ledger.file_record(
            s.cast.bank, loan_id=s.loan_id, record_kind=4, record_id=org, content_hash=h("e")
        )
    return s.ledger.file_appraisal(a, loan_id=s.loan_id, item_id=h("collateral:1"), content_hash=h("valued"))


# Who may send each write in a scene (a Cast attribute name).
AUTHORIZED_CALLER: dict[str, str] = {
    "registerOrganization": "operator",
    "addAccount": "operator",
    "removeAccount": "operator",
    "grantRole": "operator",
    "revokeRole": "operator",
    "pause": "operator",
    "unpause": "operator",
    "openLoan": "bank",
    "disburse": "bank",
    "pay": "supplier",
    "payBatch": "supplier",
    "confirmLot": "subsupplier",
    "disputeLot": "subsupplier",
    "repay": "bank",
    "closeLoan": "bank",
    "classify": "bank",
    "valueCollateral": "bank",
    "recordInspection": "bank",
    "fileRecord": "bank",
    "restructure": "bank",
    "attest": "auditor",
    "fileAppraisal": "outsider",
    "repayAllocated": "bank",
    "changeTerms": "bank",
}


def abi_functions(abi: list[dict[str, Any]], *, views: bool) -> set[str]:
    """Names of the ABI's view/pure functions (`views=True`) or of its state-changing ones."""
    return {
        str(e["name"])
        for e in abi
        if e.get("type") == "function" and (e.get("stateMutability") in ("view", "pure")) == views
    }


# ---------------------------------------------------------------------------------------------- databases


def _postgres_required() -> bool:
    """CI (or an explicit URL) means PostgreSQL must be there: fail instead of skipping."""
    return os.environ.get("CI") == "1" or bool(os.environ.get("FUNDFLOW_TEST_DATABASE_URL"))


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server (dropped afterwards); skips when the server is
    unreachable, unless CI=1 or FUNDFLOW_TEST_DATABASE_URL is set."""
    import sqlalchemy as sa

    server = sa.make_url(postgres_url())
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"fundflow_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL at {server.render_as_string(hide_password=True)} is unreachable ({exc.orig})"
        if _postgres_required():
            pytest.fail(reason)
        pytest.skip(f"{reason}; start it or set FUNDFLOW_TEST_DATABASE_URL to run the PostgreSQL tests")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database per test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mirror.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Any]:
    """An engine on `db_url` with the mirror's migrations applied."""
    from ledger.store.db import create_db_engine, migrate

    engine = create_db_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def private_chain() -> Iterator[LocalChain]:
    """A node of the module's own, for tests that rewrite history (evm_revert) or need a chain to
    themselves: the session node stays untouched."""
    ARTIFACTS.mkdir(exist_ok=True)
    with LocalChain(log_path=ARTIFACTS / "hardhat-private.log") as node:
        yield node


@pytest.fixture(scope="module")
def private_client(private_chain: LocalChain) -> ChainClient:
    return ChainClient(private_chain.url)


# ---------------------------------------------------------------------------------------------- API
# The API tests' fixtures (`api`: app + real indexer + tokens per cast member) live in tests/api_support.py.
pytest_plugins = ["api_support"]
