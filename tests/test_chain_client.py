"""The chain client against real nodes: revert decoding, concurrent nonces, receipts, the fast event decoder,
deployment records, and the same ledger flow on anvil as on Hardhat."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path

import pytest
from conftest import World, h, make_world, open_loan
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import LedgerContract
from ledger.chain.deploy import Deployment, abi_hash
from ledger.chain.journal import SendJournal, SignedTx
from ledger.chain.localchain import LocalChain, free_port
from ledger.chain.reverts import ErrorDecoder
from ledger.chain.transport import KeepAliveTransport, RequestsTransport
from ledger.errors import ChainError, ChainMismatchError, ContractRevertError, DeploymentError
from ledger.protocol.hashchain import ZERO_HEAD


def test_unreachable_node_raises_chain_error_with_hint() -> None:
    client = ChainClient(f"http://127.0.0.1:{free_port()}", request_timeout=1)
    with pytest.raises(ChainError) as info:
        client.block_number()
    assert "cannot reach the chain node" in info.value.message
    assert info.value.hint is not None and "fundflow chain" in info.value.hint
    assert client.is_reachable() is False


def test_revert_is_refused_before_sending_with_decoded_custom_error(
    world: World, client: ChainClient
) -> None:
    loan = open_loan(world)
    nonce_before = client.rpc("eth_getTransactionCount", [world.cast.bank.address, "latest"])
    with pytest.raises(ContractRevertError) as info:
        world.ledger.disburse(
            world.cast.bank, loan_id=loan, payee=world.cast.supplier.address, amount=10**15, purpose=1
        )
    assert info.value.error_name == "LedgerPrincipalExceeded"
    assert info.value.args_by_name == {"loanId": loan, "undisbursed": 1_000_000_00, "requested": 10**15}
    assert (
        str(info.value)
        == f"LedgerPrincipalExceeded(loanId={loan}, undisbursed=100000000, requested={10**15})"
    )
    # Nothing was sent: the nonce did not move, so the next write still works.
    assert client.rpc("eth_getTransactionCount", [world.cast.bank.address, "latest"]) == nonce_before
    world.ledger.disburse(
        world.cast.bank, loan_id=loan, payee=world.cast.supplier.address, amount=5, purpose=1
    )


def test_transaction_mined_as_failed_is_replayed_to_decode_its_error(
    world: World, client: ChainClient
) -> None:
    """Both spends pass estimation, but only one fits: the second is mined, fails, and is explained."""
    loan = open_loan(world)
    lot = (
        world.ledger.disburse(
            world.cast.bank, loan_id=loan, payee=world.cast.supplier.address, amount=100, purpose=1
        )
        .event("Disbursed")
        .args["lotId"]
    )
    client.rpc("evm_setAutomine", [False])
    try:
        args = (
            bytes.fromhex(loan[2:]),
            bytes.fromhex(lot[2:]),
            world.cast.subsupplier.address,
            80,
            1,
            b"\0" * 32,
        )
        first = world.ledger.send(world.cast.supplier, "pay", *args)
        second = world.ledger.send(world.cast.supplier, "pay", *args, gas=200_000)
        client.rpc("evm_mine")
    finally:
        client.rpc("evm_setAutomine", [True])
    assert world.ledger.result_of(first).event("Paid").args["amount"] == 80
    with pytest.raises(ContractRevertError):
        world.ledger.result_of(second)
    data = world.ledger.encode("pay", *args)
    with pytest.raises(ContractRevertError) as info:
        client.result_of(
            second,
            account=world.cast.supplier,
            to=world.ledger.address,
            data=data,
            errors=world.ledger.errors,
        )
    assert info.value.error_name == "LedgerInsufficientFunds"
    assert info.value.args_by_name == {"lotId": lot, "remaining": 20, "requested": 80}


def test_concurrent_senders_from_one_account_never_collide_on_nonces(
    world: World, client: ChainClient
) -> None:
    loan = open_loan(world)
    bank = world.cast.bank
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(10):
                r = world.ledger.disburse(
                    bank,
                    loan_id=loan,
                    payee=world.cast.supplier.address,
                    amount=offset * 100 + i + 1,
                    purpose=1,
                )
                results.append(r.event("Disbursed").args["amount"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == sorted(t * 100 + i + 1 for t in range(4) for i in range(10))
    assert world.ledger.get_loan(loan).disbursed == sum(results)


def test_error_decoder_handles_string_panic_and_unknown_selectors() -> None:
    decoder = ErrorDecoder([])
    reason = "0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "04" + b"nope".hex() + "00" * 28
    assert decoder.decode(reason).args_by_name == {"reason": "nope"}
    panic = "0x4e487b71" + "00" * 31 + "11"
    err = decoder.decode(panic)
    assert err.error_name == "Panic" and "overflow" in err.message
    assert decoder.decode("0xdeadbeef").error_name == "Unknown"
    assert decoder.decode(None).error_name == "Reverted"


def test_fast_event_decoder_matches_web3_for_every_event_kind(world: World, client: ChainClient) -> None:
    loan = open_loan(world)
    k, ledger = world.cast, world.ledger
    lot = ledger.disburse(k.bank, loan_id=loan, payee=k.supplier.address, amount=1000, purpose=1).event(
        "Disbursed"
    )
    child = ledger.pay(
        k.supplier,
        loan_id=loan,
        from_lot=lot.args["lotId"],
        payee=k.subsupplier.address,
        amount=10,
        purpose=30,
    ).event("Paid")
    ledger.dispute_lot(k.subsupplier, loan_id=loan, lot_id=child.args["lotId"], reason_hash=h("d"))
    ledger.confirm_lot(k.subsupplier, loan_id=loan, lot_id=child.args["lotId"], evidence_hash=h("c"))
    ledger.repay(k.bank, loan_id=loan, amount=7, evidence_hash=h("r"))
    ledger.classify(k.bank, loan_id=loan, risk_class=2, reason_hash=h("c2"))
    ledger.value_collateral(k.bank, loan_id=loan, collateral_id=h("col"), value=99, evidence_hash=h("v"))
    ledger.record_inspection(k.bank, loan_id=loan, kind=1, report_hash=h("i"))
    ledger.restructure(k.bank, loan_id=loan, maturity=2_000_000_000, terms_hash=h("t2"))
    ledger.attest(k.auditor, loan_id=loan, head=ledger.head_of(loan), report_hash=h("a"))

    logs = client.get_logs(ledger.address, world.deployment.block_number, client.block_number())
    ours = ledger.events.decode_all(logs)
    contract = Web3().eth.contract(abi=ledger.abi)
    names = {e.name for e in ours}
    assert {
        "LoanOpened",
        "Disbursed",
        "Paid",
        "LotConfirmed",
        "LotDisputed",
        "Repaid",
        "RiskClassified",
        "CollateralValued",
        "InspectionRecorded",
        "LoanRestructured",
        "TrailAttested",
        "RoleGranted",
        "OrganizationRegistered",
        "AccountAdded",
    } <= names
    for log, mine in zip(logs, ours, strict=True):
        theirs = contract.events[mine.name]().process_log(_web3_log(log))
        expected = {key: _plain(value) for key, value in theirs["args"].items()}
        assert mine.args == expected, mine.name
        assert mine.log_index == theirs["logIndex"] and mine.block_hash == "0x" + theirs["blockHash"].hex()


def test_hash_chain_recomputed_from_logs_equals_contract_head(world: World, client: ChainClient) -> None:
    loan = open_loan(world)
    k, ledger = world.cast, world.ledger
    lot = ledger.disburse(k.bank, loan_id=loan, payee=k.supplier.address, amount=1000, purpose=1)
    ledger.pay(
        k.supplier,
        loan_id=loan,
        from_lot=lot.event("Disbursed").args["lotId"],
        payee=k.subsupplier.address,
        amount=10,
        purpose=1,
    )
    head = ZERO_HEAD
    for event in ledger.events.decode_all(client.get_logs(ledger.address, 0, client.block_number())):
        if ledger.hash_chain.is_chained(event.name) and event.args["loanId"] == loan:
            head = ledger.hash_chain.verify(head, event.name, event.args)
    assert head == ledger.head_of(loan)


def test_deployment_record_round_trips_and_refuses_tampering(world: World, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    world.deployment.save(path)
    loaded = Deployment.load(path)
    assert loaded == world.deployment and loaded.abi_hash == abi_hash(world.ledger.abi)
    data = json.loads(path.read_text())
    data["abi"] = data["abi"][1:]
    path.write_text(json.dumps(data))
    with pytest.raises(DeploymentError, match="does not match its hash"):
        Deployment.load(path)
    with pytest.raises(DeploymentError, match="no deployment record"):
        Deployment.load(tmp_path / "missing.json")


def test_deployment_on_another_chain_is_refused(world: World, compiled: CompiledContract) -> None:
    with LocalChain(kind="anvil") as other, pytest.raises(ChainMismatchError) as info:
        world.deployment.check_chain(ChainClient(other.url))
    assert "genesis" in info.value.message or "chain" in info.value.message


def test_ledger_flow_works_the_same_on_anvil(compiled: CompiledContract) -> None:
    """Portability: nothing assumes Hardhat (fees, revert data format, receipts)."""
    with LocalChain(kind="anvil") as node:
        client = ChainClient(node.url)
        world = make_world(client, compiled)
        loan = open_loan(world)
        k = world.cast
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
        assert world.ledger.get_lot(loan, lot_id).remaining == 300


def _web3_log(log: dict) -> dict:
    return {
        **log,
        "topics": [bytes.fromhex(t[2:]) for t in log["topics"]],
        "data": bytes.fromhex(log["data"][2:]),
        "blockNumber": int(log["blockNumber"], 16),
        "logIndex": int(log["logIndex"], 16),
        "transactionIndex": int(log["transactionIndex"], 16),
        "blockHash": bytes.fromhex(log["blockHash"][2:]),
        "transactionHash": bytes.fromhex(log["transactionHash"][2:]),
    }


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def test_fresh_accounts_send_on_a_free_gas_chain(client: ChainClient) -> None:
    account = Account.create()
    assert client.get_balance(account.address) == 0
    result = client.transact(account, account.address, "0x")
    assert result.gas_used == 21_000


def test_plain_http_nodes_get_kept_alive_connections_and_the_rest_go_through_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    assert isinstance(ChainClient("http://127.0.0.1:8545").transport, KeepAliveTransport)
    assert isinstance(ChainClient("http://node.example:8545/rpc?key=1").transport, KeepAliveTransport)
    assert isinstance(ChainClient("https://node.example/rpc").transport, RequestsTransport)  # TLS: verified
    assert isinstance(ChainClient("http://user:secret@node.example/rpc").transport, RequestsTransport)  # auth
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert isinstance(ChainClient("http://node.example:8545").transport, RequestsTransport)  # the proxy


def _kept_connection(client: ChainClient) -> http.client.HTTPConnection | None:
    transport = client.transport
    assert isinstance(transport, KeepAliveTransport)
    return transport._conns.get(threading.current_thread())


@pytest.mark.slow
def test_connection_the_node_closed_while_idle_is_replaced_not_failed(chain: LocalChain) -> None:
    """Hardhat (Node.js) closes kept-alive connections idle for 5 s (6.5 s measured); the next call opens a
    new one."""
    client = ChainClient(chain.url, request_timeout=5)
    first = client.block_number()
    kept = _kept_connection(client)
    assert kept is not None
    time.sleep(8)  # 5 s and the server's timer granularity
    assert client.block_number() >= first
    assert _kept_connection(client) is not kept
    assert kept.sock is None  # closed, not leaked


def test_closing_the_client_closes_its_kept_alive_connections(chain: LocalChain) -> None:
    client = ChainClient(chain.url)
    client.block_number()
    kept = _kept_connection(client)
    assert kept is not None and kept.sock is not None
    client.close()
    assert kept.sock is None
    assert _kept_connection(client) is None


def test_a_send_records_through_a_journal_only_when_handed_one(world: World, client: ChainClient) -> None:
    """Two concurrent sends from one account through one client, one through a journaled view of the contract
    and one through the plain contract: only the first is recorded, before it was broadcast, with the bytes
    that hash to its transaction; then the same on one thread, interleaved."""
    loan = open_loan(world)
    ledger, bank, payee = world.ledger, world.cast.bank, world.cast.supplier.address
    stored: list[list[SignedTx]] = []

    def store(txs: list[SignedTx]) -> None:
        assert not client.transaction_known(txs[-1].tx_hash)  # recorded before it left the process
        stored.append(txs)

    journal = SendJournal(on_signed=store)
    journaled = ledger.journaled(journal)
    assert journaled is not ledger and ledger.journal is None and ledger.journaled(None) is ledger
    start = threading.Barrier(2)
    sent: dict[str, str] = {}
    errors: list[BaseException] = []

    def disburse(name: str, contract: LedgerContract, amount: int) -> None:
        try:
            start.wait(5)
            tx = contract.disburse(bank, loan_id=loan, payee=payee, amount=amount, purpose=1)
            sent[name] = tx.tx_hash
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=disburse, args=("journaled", journaled, 1)),
        threading.Thread(target=disburse, args=("plain", ledger, 2)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [t.tx_hash for t in journal.signed] == [sent["journaled"]]
    assert stored == [journal.signed]
    (recorded,) = journal.signed
    assert "0x" + keccak(bytes.fromhex(recorded.raw[2:])).hex() == recorded.tx_hash

    plain = ledger.disburse(bank, loan_id=loan, payee=payee, amount=3, purpose=1)
    again = journaled.disburse(bank, loan_id=loan, payee=payee, amount=4, purpose=1)
    assert [t.tx_hash for t in journal.signed] == [sent["journaled"], again.tx_hash]
    assert plain.tx_hash not in {t.tx_hash for t in journal.signed} and len(stored) == 2
    assert ledger.get_loan(loan).disbursed == 1 + 2 + 3 + 4


def test_errors_never_show_the_node_urls_key_or_password() -> None:
    """Node providers put API keys in the URL's path or query and passwords in its authority; an outage
    message (printed, logged, returned by the API) must name the node without them."""
    from ledger.config import mask_url

    key, password, token = "k3yK3yk3yK3yk3yK3yk3yK3y", "pa55word", "t0ken"
    for url in (
        f"http://127.0.0.1:1/v3/{key}",
        f"http://operator:{password}@127.0.0.1:1/rpc",
        f"https://127.0.0.1:1/rpc?apikey={token}",
    ):
        client = ChainClient(url, request_timeout=1.0)
        with pytest.raises(ChainError) as raised:
            client.block_number()
        text = f"{raised.value} {raised.value.hint}"
        assert "127.0.0.1:1" in text, text
        for secret in (key, password, token):
            assert secret not in text and secret not in client.display_url, text
        assert mask_url(url) == client.display_url
    assert mask_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert mask_url(f"https://node.example/v3/{key}") == "https://node.example/v3/***"


def test_masking_leaves_a_url_with_nothing_secret_exactly_as_it_was() -> None:
    from ledger.config import mask_url

    for url in (
        "sqlite:///var/fundflow.db",
        "sqlite:////abs/path/fundflow.db",
        "postgresql+psycopg://postgres@127.0.0.1:5432/fundflow",
        "http://127.0.0.1:8545",
    ):
        assert mask_url(url) == url
    assert mask_url("postgresql+psycopg://app:s3cret@db:5432/fundflow") == (
        "postgresql+psycopg://app:***@db:5432/fundflow"
    )


class _ChunkedNode:
    """A raw-socket JSON-RPC server answering every request with `body` in chunks of `sizes` bytes (the rest
    in one chunk), optionally with chunk extensions and trailers, or cut off `truncate` bytes before the end.
    Each chunk is its own send, so the client sees chunk boundaries fall anywhere within its reads."""

    def __init__(
        self, body: bytes, sizes: list[int], *, extensions: bool = False, trailers: bool = False
    ) -> None:
        import socket

        self.body, self.sizes, self.extensions, self.trailers = body, sizes, extensions, trailers
        self.truncate = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _wire(self) -> list[bytes]:
        pieces, rest, i = [], self.body, 0
        while rest:
            size = self.sizes[i % len(self.sizes)] if i < len(self.sizes) else len(rest)
            chunk, rest = rest[:size], rest[size:]
            ext = b";name=value" if self.extensions else b""
            pieces.append(b"%x%s\r\n%s\r\n" % (len(chunk), ext, chunk))
            i += 1
        pieces.append(b"0\r\nX-Trailer: yes\r\n\r\n" if self.trailers else b"0\r\n\r\n")
        return pieces

    def _serve(self) -> None:
        with self.server:
            conn, _ = self.server.accept()
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(
                    next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length"))[15:]
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.requests += 1
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                wire = self._wire()
                if self.truncate:
                    raw = b"".join(wire)[: -self.truncate]
                    conn.sendall(raw)
                    return
                for piece in wire:
                    conn.sendall(piece)
                    time.sleep(0)


@pytest.mark.parametrize(
    ("sizes", "extensions", "trailers"),
    [
        ([1, 2, 3, 500], False, False),  # tiny chunks, as Node.js sends one per write
        ([70_000, 1_100_000], False, False),  # chunks longer than one read of the client
        ([7], True, True),  # chunk extensions and trailers are allowed by HTTP/1.1 and skipped
    ],
)
def test_chunked_answers_are_read_whole_however_the_chunks_fall(
    sizes: list[int], extensions: bool, trailers: bool
) -> None:
    logs = [{"logIndex": hex(i), "data": "0x" + f"{i:064x}" * 5} for i in range(4000)]
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": logs}).encode()
    node = _ChunkedNode(body, sizes, extensions=extensions, trailers=trailers)
    client = ChainClient(node.url)
    assert client.rpc("eth_getLogs", [{}]) == logs
    assert client.rpc("eth_getLogs", [{}]) == logs  # the same kept-alive connection, left at a clean boundary
    assert node.requests == 2


def test_a_chunked_answer_cut_off_is_a_chain_error_not_a_partial_result() -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": ["0x" + "ab" * 32] * 500}).encode()
    node = _ChunkedNode(body, [100])
    node.truncate = 40  # the connection closes in the middle of the last data chunk
    with pytest.raises(ChainError, match="cannot reach the chain node"):
        ChainClient(node.url).rpc("eth_getLogs", [{}])


def test_a_second_chunked_answer_on_the_kept_connection_starts_clean() -> None:
    """After a chunked answer the client must leave nothing unread on the connection: the next answer
    (here a short one) is parsed from its own first byte."""
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "result": list(range(20_000))}).encode()
    node = _ChunkedNode(big, [3, 5, 8])
    client = ChainClient(node.url)
    assert client.rpc("eth_blockNumber")[-1] == 19_999
    node.body = b'{"jsonrpc":"2.0","id":2,"result":"0x2a"}'
    assert client.block_number() == 42
