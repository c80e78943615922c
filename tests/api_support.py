"""Fixtures and helpers for the API tests: a real app (FastAPI TestClient) over a fresh deployment on the
session Hardhat node, a real SQLite mirror kept up to date by the real indexer in a background thread, and
one API token per member of the cast from tests/conftest.py."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from api.services import DirectoryCache, Services
from ledger.chain.client import ChainClient
from ledger.chain.deploy import Deployment
from ledger.chain.keystore import Keystore
from ledger.chain.participants import Directory, Participant
from ledger.config import Settings
from ledger.mirror.indexer import Indexer
from ledger.store.db import create_db_engine, migrate
from ledger.store.offchain import create_token

# (cast attribute, participant name, role, org label as in conftest.make_world)
CAST = [
    ("bank", "Bank A", "lender", "org:bank-a"),
    ("bank2", "Bank A", "lender", "org:bank-a"),
    ("other_bank", "Bank B", "lender", "org:bank-b"),
    ("borrower", "Borrower Co", "enterprise", "org:borrower"),
    ("supplier", "Supplier One", "enterprise", "org:supplier"),
    ("supplier2", "Supplier Two", "enterprise", "org:supplier2"),
    ("subsupplier", "Sub Supplier", "enterprise", "org:subsupplier"),
    ("auditor", "Auditor LLP", "auditor", "org:auditor"),
    # Registered to an organisation without any role on chain: the directory calls it an enterprise, so the
    # API lets it try and the contract refuses (roles are checked twice).
    ("outsider", "Outsider Ltd", "enterprise", "org:outsider"),
]
ROLE_OF = {attr: role for attr, _, role, _ in CAST}


def h(label: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=label).hex()


class BackgroundIndexer:
    """The real indexer following the tip in a thread, as `fundflow up` runs it."""

    def __init__(self, engine: Engine, client: ChainClient, deployment: Deployment) -> None:
        self.indexer = Indexer(engine, client, deployment, poll_interval=0.02)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="indexer")

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.indexer.run_forever(self.stop_event)
            except Exception as exc:  # the node paused or vanished: keep trying, like a supervisor would
                self.error = exc
                self.stop_event.wait(0.1)

    def start(self) -> BackgroundIndexer:
        self.indexer.open()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.indexer.close()


@dataclass
class Api:
    http: TestClient
    services: Services
    world: Any
    tokens: dict[str, str]
    accounts: dict[str, LocalAccount]
    indexer: BackgroundIndexer
    counter: list[int] = field(default_factory=lambda: [0])

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, who: str, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, headers=self.auth(who) | kwargs.pop("headers", {}), **kwargs)

    def post(self, who: str, path: str, json: Any = None, *, key: str | None = None, **kwargs: Any) -> Any:
        headers = self.auth(who) | kwargs.pop("headers", {})
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.http.post(path, json=json, headers=headers, **kwargs)

    def address(self, who: str) -> str:
        return self.accounts[who].address

    def open_loan(self, who: str = "bank", principal: Any = "1000000.00", **extra: Any) -> dict[str, Any]:
        principal = yuan(principal)
        body = {
            "borrower": self.address("borrower"),
            "principal": principal,
            "allowed_purposes": [1, 3, 4],
            "maturity": int(time.time()) + 365 * 86400,
            "terms": {"repayment_schedule": [{"due": "2027-06-30", "amount": principal}]},
        } | extra
        r = self.post(who, "/v1/loans?wait=true", body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def disburse(self, loan: str, payee: str, amount: Any = "1000.00", purpose: int = 1) -> str:
        r = self.post(
            "bank",
            f"/v1/loans/{loan}/disbursements?wait=true",
            {"payee": self.address(payee), "amount": yuan(amount), "purpose": purpose},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["lot_ids"][0])

    def pay(
        self,
        who: str,
        loan: str,
        from_lot: str,
        payee: str,
        amount: Any = "10.00",
        purpose: int = 1,
        **kw: Any,
    ) -> Any:
        return self.post(
            who,
            "/v1/payments?wait=true",
            {
                "loan": loan,
                "from_lot": from_lot,
                "payee": self.address(payee),
                "amount": yuan(amount),
                "purpose": purpose,
            },
            **kw,
        )


def yuan(amount: Any) -> Any:
    """Older tests count in fen: an int here is fen, sent as the yuan string the API takes (1 -> "0.01");
    anything else is sent as written."""
    from ledger.protocol.money import yuan_text

    return yuan_text(amount) if isinstance(amount, int) and not isinstance(amount, bool) else amount


def signin_csrf(http: Any) -> str:
    """Open the sign-in page on `http` (a TestClient or httpx client keeping cookies), as a browser does
    before signing in; returns the form's sign-in CSRF token (its cookie stays on `http`)."""
    import re

    page = http.get("/dashboard/signin")
    assert page.status_code == 200, page.text
    match = re.search(r'name="signin_csrf" value="([0-9a-f]+)"', page.text)
    assert match is not None
    return match[1]


def dashboard_sign_in(api: Api, who: str) -> str:
    """Sign `who` in to the dashboard on `api.http` (replacing any earlier session); returns the session's
    CSRF token for form posts."""
    import re

    api.http.cookies.clear()
    r = api.http.post(
        "/dashboard/signin",
        data={"token": api.tokens[who], "signin_csrf": signin_csrf(api.http)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = api.http.get("/dashboard/loans")
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match is not None
    return match[1]


def pay_chain(api: Api, loan: str, first: str, depth: int) -> list[str]:
    """`depth` payments of the supplier to itself, each out of the previous one, starting at lot `first`:
    one batch, the lot ids precomputed with the hash chain (a new lot's id is the head its payment
    produces). Waits until the indexer has mirrored it; returns the new lot ids, shallowest first."""
    from ledger.chain.contract import PaymentSpec

    ledger, supplier = api.world.ledger, api.world.cast.supplier
    loan_id = api.get("auditor", f"/v1/loans/{loan}").json()["loan_id"]
    allowed = ledger.get_lot(loan_id, first).allowed_purposes
    head, parent, payments, lot_ids = ledger.head_of(loan_id), first, [], []
    for i in range(depth):
        spec = PaymentSpec(parent, supplier.address, 10_000 - i, 1, "0x" + f"{i + 1:064x}")  # each less
        args = {
            "loanId": loan_id,
            "payee": supplier.address,
            "parentLotId": parent,
            "amount": spec.amount,
            "purpose": 1,
            "declaredUse": bool(allowed >> 1 & 1),
            "evidenceHash": spec.evidence_hash,
        }
        head = parent = ledger.hash_chain.step(head, "Paid", args)
        payments.append(spec)
        lot_ids.append(parent)
    result = ledger.pay_batch(supplier, loan_id=loan_id, payments=payments)
    assert [e.args["lotId"] for e in result.events if e.name == "Paid"] == lot_ids
    deadline = time.monotonic() + 60
    while api.get("auditor", "/v1/health").json()["indexer"]["indexed_block"] < result.block_number:
        assert time.monotonic() < deadline, "the indexer did not catch up"
        time.sleep(0.1)
    return lot_ids


def build_services(
    world: Any, client: ChainClient, data_dir: Path, db_url: str | None = None
) -> tuple[Services, dict[str, str], dict[str, LocalAccount]]:
    settings = Settings(
        env="test",
        rpc_url=client.rpc_url,
        data_dir=data_dir,
        keystore_scrypt_n=1024,
        api_wait_timeout=20.0,
        document_max_bytes=64 * 1024,
        **({"database_url": db_url} if db_url else {}),
    )
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    keystore = Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=1024)
    directory = Directory(settings.participants_file)
    accounts: dict[str, LocalAccount] = {}
    tokens: dict[str, str] = {}
    participants: dict[str, Participant] = {}
    for attr, name, role, org in CAST:
        account: LocalAccount = getattr(world.cast, attr)
        accounts[attr] = account
        p = participants.setdefault(name, Participant(name=name, role=role, org_id=h(org), profile_salt="00"))
        p.accounts[attr.replace("_", "-")] = account.address
        keystore.import_key(attr.replace("_", "-"), account)
    for p in participants.values():
        directory.put(p)
    for attr, name, _, _ in CAST:
        tokens[attr] = create_token(
            engine, participant=name, key_name=attr.replace("_", "-"), address=accounts[attr].address
        )
    services = Services(
        settings=settings,
        client=client,
        ledger=world.ledger,
        deployment=world.deployment,
        engine=engine,
        directory=DirectoryCache(settings.participants_file),
        keystore=keystore,
    )
    return services, tokens, accounts


@contextmanager
def serve_api(world: Any, client: ChainClient, data_dir: Path, db_url: str | None = None) -> Iterator[Api]:
    """The app over `world`'s deployment on `client`'s node, with the indexer following it in a thread."""
    services, tokens, accounts = build_services(world, client, data_dir, db_url)
    indexer = BackgroundIndexer(services.engine, ChainClient(client.rpc_url), world.deployment).start()
    try:
        with TestClient(create_app(services=services)) as http:
            yield Api(http, services, world, tokens, accounts, indexer)
    finally:
        indexer.stop()
        services.engine.dispose()


@contextmanager
def serve_http(services: Services) -> Iterator[str]:
    """The app over `services` served by uvicorn on a free port in a thread (a browser needs a real socket);
    yields its base URL and stops the server on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(services=services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def api(world: Any, client: ChainClient, tmp_path: Path) -> Iterator[Api]:
    with serve_api(world, client, tmp_path) as api:
        yield api


@pytest.fixture
def limited(api: Api) -> Iterator[Any]:
    """A second app over the same services with other settings (limits, rate limits); call it with the
    settings to change."""
    clients: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        settings = api.services.settings.model_copy(update=changes)
        services = dataclasses.replace(api.services, settings=settings, owns_engine=False)
        client = TestClient(create_app(services=services)).__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def add_third_party(api: Api, who: str, name: str, role: str) -> str:
    """Register a third party (appraiser, law_firm, collection_agency) as `fundflow participants add` does: an
    organisation on chain with one account and no business role, in the directory, with an API token.
    Returns its org id."""
    from eth_account import Account

    operator, ledger = api.world.cast.operator, api.world.ledger
    account: LocalAccount = Account.create()
    org_id = h(f"org:{who}")
    ledger.register_organization(operator, org_id, h(f"profile:{who}"))
    ledger.add_account(operator, org_id, account.address)
    directory = Directory(api.services.settings.participants_file)
    directory.put(
        Participant(name=name, role=role, org_id=org_id, profile_salt="00", accounts={who: account.address})
    )
    api.services.keystore.import_key(who, account)
    api.accounts[who] = account
    api.tokens[who] = create_token(
        api.services.engine, participant=name, key_name=who, address=account.address
    )
    return org_id
