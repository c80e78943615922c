"""The chain client: reads, signing and sending against one EVM JSON-RPC endpoint.

Works with any EVM JSON-RPC endpoint (Hardhat, anvil, Geth, a Besu/QBFT consortium chain). It is the facade
over the chain package's parts, each in its own module:

    transport.py   bytes to the node and back (kept-alive HTTP/1.1 by default; injectable: `transport=`)
    rpc.py         JSON-RPC calls and batches, RpcError, BlockHeader
    reverts.py     revert data to the contract's decoded custom error
    nonces.py      which nonce each sender's next transaction gets
    fees.py        gas limits and fee fields
    journal.py     SendJournal: signed transactions recorded before they are broadcast
    signing.py     local signing (eth-account's bytes from libsecp256k1)

The rules it keeps: it signs locally; concurrent senders from one account never collide on a nonce; a revert
surfaces as a `ContractRevertError` carrying the decoded custom error, refused at the estimate when there is
one; a send records through a journal only when it is handed one (`journal=`, or a
`LedgerContract.journaled(...)` view), and a transaction its journal recorded is resumed (looked up,
rebroadcast unchanged) rather than signed anew unless it can provably never land. It speaks raw JSON-RPC
(orjson both ways) rather than web3's provider and formatting layers, which cost more than the round trip on
a local node.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ledger.chain.fees import TX_GAS_CAP, Fees, estimate_gas, max_tx_gas
from ledger.chain.journal import SendJournal, SignedTx
from ledger.chain.nonces import Nonces
from ledger.chain.reverts import ErrorDecoder, as_revert
from ledger.chain.rpc import BlockHeader, JsonRpc, RpcError, block_tag
from ledger.chain.signing import sign_transaction
from ledger.chain.transport import Transport, http_transport
from ledger.config import mask_url
from ledger.errors import ChainError, ContractRevertError, ValidationError
from ledger.protocol.events import DecodedEvent, EventDecoder

__all__ = [
    "ChainClient",
    "TxResult",
    # The client's vocabulary, defined beside it and re-exported so its callers need one import.
    "BlockHeader",
    "ErrorDecoder",
    "RpcError",
    "SendJournal",
    "SignedTx",
    "TX_GAS_CAP",
]


@dataclass(frozen=True)
class TxResult:
    """A mined transaction: where it landed, what it cost and the ledger events it emitted."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    events: list[DecodedEvent]
    contract_address: str | None = None

    def event(self, name: str) -> DecodedEvent:
        """The single event called `name`; raises if there is not exactly one."""
        found = [e for e in self.events if e.name == name]
        if len(found) != 1:
            raise ValidationError(
                f"transaction {self.tx_hash} emitted {len(found)} {name} events, expected one",
                hint="use .events to see everything it emitted",
            )
        return found[0]


class ChainClient:
    """A connection to one EVM JSON-RPC endpoint.

    `transport` carries the requests (default: `http_transport(rpc_url, timeout=request_timeout)`); `rpc_url`
    still names the node (masked) in messages. The client owns its transport: `close()` closes it.
    """

    def __init__(
        self,
        rpc_url: str,
        *,
        transport: Transport | None = None,
        request_timeout: float = 10.0,
        tx_timeout: float = 60.0,
        fee_cache_seconds: float = 2.0,
    ) -> None:
        self.rpc_url = rpc_url
        self.display_url = mask_url(rpc_url)  # what messages and logs show: no key or password
        self.tx_timeout = tx_timeout
        self.transport: Transport = (
            transport if transport is not None else http_transport(rpc_url, timeout=request_timeout)
        )
        self._rpc = JsonRpc(self.transport, self.display_url)
        self._nonces = Nonces()
        self._fees = Fees(self._rpc, fee_cache_seconds)
        self._chain_id: int | None = None
        self._max_tx_gas: int | None = None

    def close(self) -> None:
        """Close the transport's connections (a client that is not closed releases them when collected)."""
        self.transport.close()

    # ------------------------------------------------------------------ raw JSON-RPC

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call. Connection problems raise ChainError; an error answer raises RpcError."""
        return self._rpc.call(method, params)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Many calls in one HTTP round trip; results in call order."""
        return self._rpc.batch(calls)

    # ------------------------------------------------------------------ reads

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc("eth_chainId"), 16)
        return self._chain_id

    @property
    def max_tx_gas(self) -> int:
        """The most gas one transaction may ask for here: the lower of the EIP-7825 cap and the block gas
        limit (read once; consortium chains set it in genesis)."""
        if self._max_tx_gas is None:
            self._max_tx_gas = max_tx_gas(self.rpc("eth_getBlockByNumber", ["latest", False]))
        return self._max_tx_gas

    def is_reachable(self) -> bool:
        try:
            self.rpc("eth_chainId")
        except ChainError:
            return False
        return True

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def get_header(self, block: int | str = "latest") -> BlockHeader:
        tag = block_tag(block)
        raw = self.rpc("eth_getBlockByNumber", [tag, False])
        if raw is None:
            raise ChainError(
                f"block {block} does not exist on {self.display_url}", hint="the chain is shorter"
            )
        return BlockHeader.from_rpc(raw)

    def get_header_by_hash(self, block_hash: str) -> BlockHeader | None:
        raw = self.rpc("eth_getBlockByHash", [block_hash, False])
        return BlockHeader.from_rpc(raw) if raw else None

    def get_block(self, block: int | str = "latest") -> dict[str, Any]:
        """The block exactly as the node returned it (every header field verbatim, transaction hashes only):
        what a proof bundle needs to re-hash the header."""
        tag = block_tag(block)
        raw = self.rpc("eth_getBlockByNumber", [tag, False])
        if raw is None:
            raise ChainError(
                f"block {block} does not exist on {self.display_url}", hint="the chain is shorter"
            )
        return dict(raw)

    def get_proof(self, address: str, slots: Sequence[str], block: int | str = "latest") -> dict[str, Any]:
        """eth_getProof (EIP-1186): the account proof of `address` and storage proofs of `slots` (32-byte
        0x-hex keys) against the state root of `block`."""
        tag = block_tag(block)
        return dict(self.rpc("eth_getProof", [address, list(slots), tag]))

    def get_headers(self, numbers: Sequence[int]) -> list[BlockHeader]:
        """Headers for many blocks in one round trip."""
        raws = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        out = []
        for n, raw in zip(numbers, raws, strict=True):
            if raw is None:
                raise ChainError(
                    f"block {n} does not exist on {self.display_url}", hint="the chain is shorter"
                )
            out.append(BlockHeader.from_rpc(raw))
        return out

    def get_logs(
        self,
        address: str | Sequence[str],
        from_block: int,
        to_block: int,
        topics: Sequence[Any] | None = None,
        block_hash: str | None = None,
    ) -> list[dict[str, Any]]:
        """Raw logs (hex strings). With `block_hash`, the logs of exactly that block (reorg-safe)."""
        query: dict[str, Any] = {"address": address}
        if block_hash is not None:
            query["blockHash"] = block_hash
        else:
            query["fromBlock"] = hex(from_block)
            query["toBlock"] = hex(to_block)
        if topics:
            query["topics"] = list(topics)
        return list(self.rpc("eth_getLogs", [query]))

    def get_logs_answer(self, address: str | Sequence[str], from_block: int, to_block: int) -> bytes:
        """The node's eth_getLogs answer for [from_block, to_block] as it came, unparsed (the indexer's
        decoding worker parses it): `{"result": [...]}` or `{"error": {...}}`."""
        query = {
            "address": address if isinstance(address, str) else list(address),
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
        }
        return self._rpc.answer("eth_getLogs", [query])

    def get_balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", [address, "latest"]), 16)

    def get_code(self, address: str, block: int | str = "latest") -> str:
        tag = block_tag(block)
        return str(self.rpc("eth_getCode", [address, tag]))

    def call(
        self,
        to: str,
        data: str,
        *,
        block: int | str = "latest",
        sender: str | None = None,
        errors: ErrorDecoder | None = None,
    ) -> bytes:
        """eth_call; a revert raises ContractRevertError decoded with `errors`."""
        tag = block_tag(block)
        tx: dict[str, Any] = {"to": to, "data": data}
        if sender:
            tx["from"] = sender
        try:
            result = self.rpc("eth_call", [tx, tag])
        except RpcError as exc:
            raise as_revert(exc, errors) from exc
        return bytes.fromhex(str(result)[2:])

    # ------------------------------------------------------------------ writes

    def send(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        *,
        gas: int | None = None,
        value: int = 0,
        errors: ErrorDecoder | None = None,
        journal: SendJournal | None = None,
    ) -> str:
        """Estimate, sign and send one transaction; returns its hash without waiting.

        Without `gas`, a transaction that would revert is refused here, with the decoded error, before it
        costs anything. With `gas` (a computed bound, see `LedgerContract.pay_batch`) nothing is estimated:
        a revert is mined as a failed transaction (it uses its nonce) and surfaces decoded all the same,
        answered on the send by Hardhat, or by `result_of` on anvil, Geth and Besu. With a `journal`, the
        signed transaction is recorded through it before it is broadcast, and a transaction it recorded
        earlier is resumed (looked up, rebroadcast unchanged if lost) instead of signing a new one; without
        one, nothing is recorded.
        """
        recorded = journal.next_recorded() if journal is not None else None
        if journal is not None and recorded is not None and self._resume(recorded, errors):
            journal.keep(recorded)
            return recorded.tx_hash
        gas = self._gas_for(account, to, data, gas, value, errors)
        fees = self._fees.fields()
        with self._nonces.lock(account.address):
            signed = self._sign_next(account, to, data, gas, value, fees)
            if journal is not None:
                try:
                    journal.add(signed)
                except BaseException:
                    self._nonces.forget(account.address)  # the nonce was taken but never used
                    raise
            try:
                tx_hash = self.rpc("eth_sendRawTransaction", [signed.raw])
            except ChainError as exc:
                # The nonce may or may not have been consumed; ask the node next time.
                self._nonces.forget(account.address)
                if isinstance(exc, RpcError):
                    # With `gas` given nothing was estimated: Hardhat executes (and mines) the transaction
                    # and answers the send itself with the revert data.
                    revert = as_revert(exc, errors)
                    if revert is not exc:
                        raise revert from exc
                raise
        return str(tx_hash)

    def sign(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        *,
        gas: int | None = None,
        value: int = 0,
        errors: ErrorDecoder | None = None,
    ) -> SignedTx:
        """Estimate and sign without sending: store the result, then `broadcast` it (as often as needed).
        The nonce is reserved; a signed transaction that is never broadcast leaves a gap until
        `forget_nonce`."""
        gas = self._gas_for(account, to, data, gas, value, errors)
        fees = self._fees.fields()
        with self._nonces.lock(account.address):
            return self._sign_next(account, to, data, gas, value, fees)

    def _gas_for(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        gas: int | None,
        value: int,
        errors: ErrorDecoder | None,
    ) -> int:
        """`gas` if given; else the node's estimate plus a margin. A transaction that would revert is
        refused here, with its decoded error, before anything is signed."""
        if gas is not None:
            return gas
        tx: dict[str, Any] = {"from": account.address, "data": data, "value": hex(value)}
        if to is not None:
            tx["to"] = to
        return estimate_gas(self._rpc, tx, errors)

    def _sign_next(
        self, account: LocalAccount, to: str | None, data: str, gas: int, value: int, fees: dict[str, int]
    ) -> SignedTx:
        """Sign with the account's next nonce; the caller holds the account's nonce lock."""
        fields: dict[str, Any] = {
            "data": data,
            "value": value,
            "gas": gas,
            "nonce": self._nonces.take(account.address, self._pending_nonce),
            "chainId": self.chain_id,
            **fees,
        }
        if to is not None:
            fields["to"] = to
        tx_hash, raw = sign_transaction(account.key, fields)
        return SignedTx("0x" + tx_hash.hex(), "0x" + raw.hex())

    def forget_nonce(self, address: str | None = None) -> None:
        """Ask the node for `address`'s next nonce next time (after a send whose fate is unknown); without
        an address, for every sender (after a reorg or a snapshot revert)."""
        self._nonces.forget(address)

    def broadcast(self, signed: SignedTx, errors: ErrorDecoder | None = None) -> str:
        """Send already signed bytes; a node that already has them is fine (same hash, same transaction)."""
        try:
            self.rpc("eth_sendRawTransaction", [signed.raw])
        except RpcError as exc:
            message = exc.rpc_message.lower()
            if "already known" in message or "known transaction" in message:
                return signed.tx_hash
            revert = as_revert(exc, errors)
            if revert is not exc:
                raise revert from exc
            raise
        return signed.tx_hash

    def transaction_known(self, tx_hash: str) -> bool:
        """True if the node has the transaction, mined or pending."""
        if self.rpc("eth_getTransactionReceipt", [tx_hash]) is not None:
            return True
        return self.rpc("eth_getTransactionByHash", [tx_hash]) is not None

    def _resume(self, recorded: SignedTx, errors: ErrorDecoder | None) -> bool:
        """Make sure a recorded transaction reaches the chain; False if it never can (sign a new one)."""
        if self.transaction_known(recorded.tx_hash):
            return True
        try:
            self.broadcast(recorded, errors)
        except RpcError as exc:
            if "nonce" in exc.rpc_message.lower() and not self.transaction_known(recorded.tx_hash):
                # Its nonce went to another transaction, so this one can never be mined.
                return False
            raise
        return True

    def wait_for_receipt(self, tx_hash: str, timeout: float | None = None) -> dict[str, Any]:
        """Poll from 1 ms, each wait a quarter longer (up to 0.25 s), so a receipt is seen at most about a
        quarter of the time it took late. anvil answers the send before it mines (within a millisecond or
        two on a young chain, 30-40 ms on a long one): a first wait of 5 ms doubling each time doubled the
        time of a single write there."""
        deadline = time.monotonic() + (self.tx_timeout if timeout is None else timeout)
        delay = 0.001
        while True:
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None and receipt.get("blockNumber") is not None:
                return dict(receipt)
            if time.monotonic() > deadline:
                raise ChainError(
                    f"transaction {tx_hash} was not mined within {timeout or self.tx_timeout:.0f} s",
                    hint="check that the node is mining (or raise FUNDFLOW_TX_TIMEOUT); the transaction may "
                    "still land, so look it up before sending it again",
                )
            time.sleep(delay)
            delay = min(delay * 1.25, 0.25)

    def transact(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        *,
        gas: int | None = None,
        value: int = 0,
        errors: ErrorDecoder | None = None,
        events: EventDecoder | None = None,
        journal: SendJournal | None = None,
    ) -> TxResult:
        """Send (recording through `journal` if given), wait, and check: a transaction mined as failed raises
        its decoded revert."""
        tx_hash = self.send(account, to, data, gas=gas, value=value, errors=errors, journal=journal)
        return self.result_of(tx_hash, account=account, to=to, data=data, errors=errors, events=events)

    def result_of(
        self,
        tx_hash: str,
        *,
        account: LocalAccount | None = None,
        to: str | None = None,
        data: str | None = None,
        errors: ErrorDecoder | None = None,
        events: EventDecoder | None = None,
    ) -> TxResult:
        receipt = self.wait_for_receipt(tx_hash)
        block_number = int(receipt["blockNumber"], 16)
        if int(receipt.get("status", "0x1"), 16) != 1:
            # Mined but failed (state changed between estimate and inclusion): replay it on the state the
            # block left, which holds whatever got in first, to learn why.
            if account is not None and data is not None and to is not None:
                try:
                    self.call(to, data, block=block_number, sender=account.address, errors=errors)
                except ContractRevertError as exc:
                    raise exc from None
            gas_used = int(receipt["gasUsed"], 16)
            sent = self.rpc("eth_getTransactionByHash", [tx_hash]) or {}
            if sent.get("gas") is not None and gas_used >= int(sent["gas"], 16):
                raise ContractRevertError(
                    "OutOfGas",
                    {"gasLimit": gas_used},
                    message=f"transaction {tx_hash} ran out of gas in block {block_number} "
                    f"(limit {gas_used:,}); nothing it did was recorded",
                    hint="the gas limit given for it was too low; if Fundflow computed it, report this",
                )
            raise ContractRevertError(
                "Reverted", {}, message=f"transaction {tx_hash} failed in block {block_number}"
            )
        decoded = events.decode_all(receipt.get("logs", [])) if events is not None else []
        address = receipt.get("contractAddress")
        return TxResult(
            tx_hash=str(receipt["transactionHash"]),
            block_number=block_number,
            block_hash=str(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"], 16),
            events=decoded,
            contract_address=to_checksum_address(address) if address else None,
        )

    # ------------------------------------------------------------------ helpers

    def _pending_nonce(self, address: str) -> int:
        return int(self.rpc("eth_getTransactionCount", [address, "pending"]), 16)

    def fee_fields(self) -> dict[str, int]:
        """The fee fields the next transaction carries (see ledger/chain/fees.py), cached briefly."""
        return self._fees.fields()
