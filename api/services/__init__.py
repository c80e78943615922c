"""The API's service layer: the work behind every /v1 route and every dashboard page.

This module holds the container of long-lived objects (`Services`, opened once per process by the app's
lifespan); one module per resource holds the work on it, callable from a route, a page or a command:

  access       the policy's questions (api/policy.py decides who sees and does what) and the queries that
               narrow an "own" answer (the loans, the lots of a trail a caller sees); loan numbers to ids
  rows         mirror rows as the dicts callers get (loans, lots, per-loan records, participant names)
  loans        list, detail, terms, the whole trail; open, disburse, restructure
  lots         one lot; the payee confirms or disputes
  vouchers     supply-chain vouchers: credit lines, issue (确权), split, financing (贴现), settlement
  payments     payments received; pay, pay in a batch
  repayments, collateral, attestations   a loan's records of each kind; recording one
  risk         the classification suggestion; classifying (one service for both classify routes)
  alerts       monitoring alerts: who sees them, list, one, acknowledge, resolve
  audit        verification, proof bundle, report, export of a whole trail
  documents    evidence documents: store, who may fetch one, download, verify against the chain
  participants, health

A route never calls another route: routes and pages both call these functions, so they share one set of
access rules. They read the mirror through the read model (`ledger.mirror.read.Mirror`), except the pages of
rows the benchmarks time (a loan's trail, the loan list, payments received), which select plain rows with
the read model's own scope and order: a public model per row would cost a third of serving it. Off-chain
tables (loan numbers and terms, documents, alerts) are read here directly. Submodules import this one (for
`Services`), never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock

from sqlalchemy.engine import Engine

from ledger.chain.client import ChainClient
from ledger.chain.contract import LedgerContract
from ledger.chain.deploy import Deployment
from ledger.chain.keystore import Keystore
from ledger.chain.participants import Directory
from ledger.chain.vouchers import VoucherContract
from ledger.config import Settings
from ledger.store.db import open_database

__all__ = ["DirectoryCache", "Services", "open_services"]


class DirectoryCache:
    """The participants file, re-read when it changes (the operator adds participants while we run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = Lock()
        self._mtime: float | None = None
        self._directory = Directory(path)

    def get(self) -> Directory:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        with self._lock:
            if mtime != self._mtime:
                self._directory = Directory(self.path)
                self._mtime = mtime
            return self._directory


@dataclass
class Services:
    settings: Settings
    client: ChainClient
    ledger: LedgerContract
    deployment: Deployment
    engine: Engine
    directory: DirectoryCache
    keystore: Keystore
    owns_engine: bool = field(default=True)
    # the supply-chain voucher contract beside the ledger (issue 22); connected on first use when the
    # deployment record has one (api.services.vouchers.contract)
    vouchers: VoucherContract | None = None

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()


def open_services(settings: Settings) -> Services:
    """Open everything from settings. The node may be down: the API then serves reads and answers writes
    with 503 until it is back."""
    client = ChainClient(
        settings.chain_url, tx_timeout=settings.tx_timeout, request_timeout=settings.api_rpc_timeout
    )
    deployment = Deployment.load(settings.deployment_file)
    ledger = LedgerContract(client, deployment.address, deployment.abi)
    engine = open_database(settings.database_url)
    keystore = Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=settings.keystore_scrypt_n)
    return Services(
        settings=settings,
        client=client,
        ledger=ledger,
        deployment=deployment,
        engine=engine,
        directory=DirectoryCache(settings.participants_file),
        keystore=keystore,
    )
