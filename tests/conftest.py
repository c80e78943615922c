"""Shared fixtures: one real Hardhat node per test session, a fresh ledger deployment per test, and a cast
of participants (two banks, a borrower, suppliers, an auditor, an outsider) with freshly generated keys.

The node runs with free gas (hardhat.config.js), so participant keys need no funding.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.chain import ChainClient
from ledger.compiler import CompiledContract, load_contract
from ledger.contract import AUDITOR_ROLE, ENTERPRISE_ROLE, LENDER_ROLE, LedgerContract
from ledger.deploy import Deployment, connect, deploy_ledger
from ledger.localchain import LocalChain
from ledger.purposes import Purpose

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
    from ledger.db import create_db_engine, migrate

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
