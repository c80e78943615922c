"""Offline proof bundles: a loan's whole trail in one JSON file that proves itself against one block hash.

A bundle holds every event payload of the loan, the header of block N exactly as the node returned it, and an
EIP-1186 (`eth_getProof`) account proof of the ledger contract plus a storage proof of `_heads[loanId]`
against that header's state root. `verify_bundle` needs neither the API nor the database nor, unless asked to
anchor, a node: it recomputes the hash chain from the payloads, walks both Merkle-Patricia proofs from the
state root, and checks that keccak256(rlp(header)) is the block hash the auditor trusts. Every failure says
where in the file it is. docs/bundle-format.md is the specification; this module is its reference verifier.

The event encodings are protocol constants here (`EVENT_INPUTS`), not read from the bundle: a bundle that
shipped its own ABI could rename fields and keep the hashes. For the same reason the verifier pins the
`_heads` storage slot (`HEADS_SLOT`) and, given one, the ledger (`LedgerPin`: the deployment record's chain
id, genesis hash and ledger address): every copy of the contract has the same code hash, so a bundle proves
the trail of *the* ledger only when its `contract` is the address the auditor pinned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
from eth_abi import encode as abi_encode
from eth_utils import keccak

from ledger.chain.client import ChainClient
from ledger.chain.contract import BoundContract, LedgerContract, as_bytes32
from ledger.chain.deploy import Deployment
from ledger.errors import BundleError, ChainError
from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import VoucherEventKind
from ledger.protocol.events import EventDecoder
from ledger.protocol.hashchain import LOT_CREATING_EVENTS, ZERO_HEAD, HashChain, event_head

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "EVENT_INPUTS",
    "HEADER_FIELDS",
    "HEADS_SLOT",
    "BundleVerification",
    "LedgerPin",
    "ProvedEvent",
    "VOUCHER_BUNDLE_FORMAT",
    "VOUCHER_EVENT_INPUTS",
    "VOUCHER_HEADS_SLOT",
    "build_bundle",
    "build_voucher_bundle",
    "chain_step",
    "bundle_to_text",
    "header_hash",
    "heads_slot",
    "heads_storage_key",
    "mpt_get",
    "verify_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = "fundflow-proof-bundle"
BUNDLE_VERSION = 1

# The block header's RLP fields in order, with how each JSON value becomes RLP bytes. The first 15 are every
# post-merge header's; the rest arrived with later forks (London, Shanghai, Cancun, Prague) and, when the node
# returns them, must form a prefix of this tail. Fields the node adds that are not header fields (hash,
# size, totalDifficulty, transactions, uncles, withdrawals) are not in the bundle's header except `hash`.
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("parentHash", "hash"),
    ("sha3Uncles", "hash"),
    ("miner", "address"),
    ("stateRoot", "hash"),
    ("transactionsRoot", "hash"),
    ("receiptsRoot", "hash"),
    ("logsBloom", "bloom"),
    ("difficulty", "quantity"),
    ("number", "quantity"),
    ("gasLimit", "quantity"),
    ("gasUsed", "quantity"),
    ("timestamp", "quantity"),
    ("extraData", "data"),
    ("mixHash", "hash"),
    ("nonce", "nonce"),
    ("baseFeePerGas", "quantity"),  # London
    ("withdrawalsRoot", "hash"),  # Shanghai
    ("blobGasUsed", "quantity"),  # Cancun
    ("excessBlobGas", "quantity"),
    ("parentBeaconBlockRoot", "hash"),
    ("requestsHash", "hash"),  # Prague
)
_REQUIRED_HEADER = 15

# The storage slot of FundFlowLedger's `_heads` mapping (solc's storage layout of the audited build; a test
# checks it against the compiled contract). A verifier pins it: taken from the bundle, it would let a bundle
# point the storage proof at any other word of the contract's storage.
HEADS_SLOT = 2

# Every event of a loan's trail: (field, ABI type, indexed) in declaration order (IFundFlowLedger.sol).
EVENT_INPUTS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "LoanOpened": (
        ("loanId", "bytes32", True),
        ("lenderOrg", "bytes32", True),
        ("borrower", "address", True),
        ("borrowerRef", "bytes32", False),
        ("principal", "uint256", False),
        ("currency", "bytes3", False),
        ("allowedPurposes", "uint32", False),
        ("maturity", "uint40", False),
        ("termsHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "Disbursed": (
        ("loanId", "bytes32", True),
        ("lotId", "bytes32", True),
        ("payee", "address", True),
        ("amount", "uint256", False),
        ("purpose", "uint8", False),
        ("declaredUse", "bool", False),
        ("entrusted", "bool", False),
        ("evidenceHash", "bytes32", False),
    ),
    "Paid": (
        ("loanId", "bytes32", True),
        ("lotId", "bytes32", True),
        ("payee", "address", True),
        ("parentLotId", "bytes32", False),
        ("amount", "uint256", False),
        ("purpose", "uint8", False),
        ("declaredUse", "bool", False),
        ("evidenceHash", "bytes32", False),
    ),
    "LotConfirmed": (
        ("loanId", "bytes32", True),
        ("lotId", "bytes32", True),
        ("evidenceHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "LotDisputed": (
        ("loanId", "bytes32", True),
        ("lotId", "bytes32", True),
        ("reasonHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "Repaid": (
        ("loanId", "bytes32", True),
        ("amount", "uint256", False),
        ("outstanding", "uint256", False),
        ("evidenceHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "LoanClosed": (
        ("loanId", "bytes32", True),
        ("status", "uint8", False),
        ("reasonHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "RiskClassified": (
        ("loanId", "bytes32", True),
        ("riskClass", "uint8", False),
        ("reasonHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "CollateralValued": (
        ("loanId", "bytes32", True),
        ("collateralId", "bytes32", True),
        ("value", "uint256", False),
        ("evidenceHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "InspectionRecorded": (
        ("loanId", "bytes32", True),
        ("kind", "uint8", False),
        ("reportHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "RecordFiled": (
        ("loanId", "bytes32", True),
        ("recordKind", "uint8", True),
        ("recordId", "bytes32", True),
        ("contentHash", "bytes32", False),
        ("actor", "address", False),
        ("head", "bytes32", False),
    ),
    "LoanRestructured": (
        ("loanId", "bytes32", True),
        ("maturity", "uint40", False),
        ("termsHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "TrailAttested": (
        ("loanId", "bytes32", True),
        ("auditorOrg", "bytes32", True),
        ("head", "bytes32", False),
        ("reportHash", "bytes32", False),
    ),
    # ---- loan servicing (issue 18)
    "RepaymentApplied": (
        ("loanId", "bytes32", True),
        ("principal", "uint256", False),
        ("interest", "uint256", False),
        ("penalty", "uint256", False),
        ("outstanding", "uint256", False),
        ("evidenceHash", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "TermsChanged": (
        ("loanId", "bytes32", True),
        ("maturity", "uint40", False),
        ("termsHash", "bytes32", False),
        ("change", "uint8", False),
        ("financialDifficulty", "bool", False),
        ("previousMaturity", "uint40", False),
        ("outstanding", "uint256", False),
        ("head", "bytes32", False),
    ),
}


def _event_abi(inputs_by_name: Mapping[str, tuple[tuple[str, str, bool], ...]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "event",
            "name": name,
            "anonymous": False,
            "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
        }
        for name, inputs in inputs_by_name.items()
    ]


EVENT_ABI: list[dict[str, Any]] = _event_abi(EVENT_INPUTS)
_HASH_CHAIN = HashChain(EVENT_ABI)  # built from the bundle's own table, not from an ABI the bundle carries


def chain_step(previous_head: str, event_name: str, args: Mapping[str, Any]) -> str:
    """keccak256(abi.encode(previousHead, uint8(kind), fields...)) over the bundle's own event table."""
    return _HASH_CHAIN.step(previous_head, event_name, args)


# ---- supply-chain vouchers (issue 22): the same proof for a voucher's trail in SupplyChainVouchers

VOUCHER_BUNDLE_FORMAT = "fundflow-voucher-proof-bundle"

# The storage slot of SupplyChainVouchers' `_heads` mapping (its first state variable; a test checks it
# against the compiled contract's storage layout), pinned like HEADS_SLOT.
VOUCHER_HEADS_SLOT = 0

# Every event of a voucher's trail (ISupplyChainVouchers.sol), protocol constants like EVENT_INPUTS.
VOUCHER_EVENT_INPUTS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "VoucherIssued": (
        ("voucherId", "bytes32", True),
        ("coreOrg", "bytes32", True),
        ("holder", "address", True),
        ("faceValue", "uint64", False),
        ("maturity", "uint64", False),
        ("currency", "bytes3", False),
        ("invoiceHash", "bytes32", False),
        ("lineOutstanding", "uint64", False),
        ("head", "bytes32", False),
    ),
    "PartTransferred": (
        ("voucherId", "bytes32", True),
        ("parentPartId", "uint32", False),
        ("to", "address", True),
        ("amount", "uint64", False),
        ("head", "bytes32", False),
    ),
    "FinancingRequested": (
        ("voucherId", "bytes32", True),
        ("partId", "uint32", False),
        ("bankOrg", "bytes32", True),
        ("discountRateBps", "uint32", False),
        ("head", "bytes32", False),
    ),
    "PartFinanced": (
        ("voucherId", "bytes32", True),
        ("partId", "uint32", False),
        ("bank", "address", True),
        ("seller", "address", False),
        ("face", "uint64", False),
        ("discountRateBps", "uint32", False),
        ("discountDays", "uint32", False),
        ("interest", "uint64", False),
        ("paid", "uint64", False),
        ("paymentRef", "bytes32", False),
        ("head", "bytes32", False),
    ),
    "PartSettled": (
        ("voucherId", "bytes32", True),
        ("partId", "uint32", False),
        ("holder", "address", True),
        ("amount", "uint64", False),
        ("paymentRef", "bytes32", False),
        ("head", "bytes32", False),
    ),
}


VOUCHER_EVENT_ABI = _event_abi(VOUCHER_EVENT_INPUTS)


@dataclass(frozen=True)
class _Subject:
    """What a bundle proves the trail of: a loan in the ledger or a voucher in the voucher contract."""

    noun: str
    format: str
    id_key: str
    first: str
    inputs: Mapping[str, tuple[tuple[str, str, bool], ...]]
    abi: list[dict[str, Any]]
    chain: HashChain

    @property
    def top_keys(self) -> tuple[str, ...]:
        return tuple(self.id_key if k == "loanId" else k for k in _TOP_KEYS)


_LOAN = _Subject("loan", BUNDLE_FORMAT, "loanId", "LoanOpened", EVENT_INPUTS, EVENT_ABI, _HASH_CHAIN)
_VOUCHER = _Subject(
    "voucher",
    VOUCHER_BUNDLE_FORMAT,
    "voucherId",
    "VoucherIssued",
    VOUCHER_EVENT_INPUTS,
    VOUCHER_EVENT_ABI,
    HashChain(VOUCHER_EVENT_ABI, kinds=VoucherEventKind),
)
_SUBJECTS = {subject.format: subject for subject in (_LOAN, _VOUCHER)}


_HEX = re.compile(r"^0x[0-9a-f]*$")
_QUANTITY = re.compile(r"^0x(0|[1-9a-f][0-9a-f]*)$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")
_EVENT_KEYS = ("name", "blockNumber", "blockHash", "transactionHash", "logIndex", "args", "digest")
_TOP_KEYS = (
    "format",
    "version",
    "chainId",
    "contract",
    "headsSlot",
    "loanId",
    "head",
    "header",
    "accountProof",
    "storageProof",
    "events",
    "digest",
)
_ACCOUNT_KEYS = ("address", "nonce", "balance", "storageHash", "codeHash", "proof")
_STORAGE_KEYS = ("key", "proof")


# ---------------------------------------------------------------------------------------------- helpers


def heads_slot(storage_layout: Mapping[str, Any]) -> int:
    """The storage slot of the ledger's `_heads` mapping, from solc's storage layout output."""
    for entry in storage_layout.get("storage", []):
        if entry.get("label") == "_heads":
            return int(entry["slot"])
    raise BundleError(
        "the compiled contract's storage layout has no `_heads` variable",
        hint="compile the FundFlowLedger that matches this ledger package",
    )


def heads_storage_key(loan_id: str, slot: int) -> str:
    """The storage key of `_heads[loanId]`: keccak256(abi.encode(loanId, slot))."""
    return "0x" + keccak(abi_encode(["bytes32", "uint256"], [as_bytes32(loan_id), slot])).hex()


def _canonical(value: Any) -> bytes:
    """The bundle's compact canonical JSON (docs/bundle-format.md): non-ASCII escaped, as the file is."""
    return canonical_json(value, ascii_only=True)


def _digest(obj: Mapping[str, Any]) -> str:
    return "0x" + keccak(_canonical({k: v for k, v in obj.items() if k != "digest"})).hex()


def bundle_to_text(bundle: Mapping[str, Any]) -> str:
    """The one byte-exact serialisation of a bundle: one top-level member per line, each value as compact
    JSON (`,` and `:` without spaces, ASCII only), `events` with one event per line, a final newline."""
    lines = []
    keys = list(bundle)
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        value = bundle[key]
        if key == "events" and isinstance(value, list) and value:
            inner = ",\n".join("    " + _compact(e) for e in value)
            lines.append(f'  "{key}": [\n{inner}\n  ]{comma}')
        else:
            lines.append(f"  {_compact(key)}: {_compact(value)}{comma}")
    return "{\n" + "\n".join(lines) + "\n}\n"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def _hex_to_bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _quantity_bytes(value: str) -> bytes:
    number = int(value, 16)
    return number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""


def header_hash(header: Mapping[str, Any], where: str = "header") -> str:
    """keccak256 of the RLP list of the header fields present, in `HEADER_FIELDS` order."""
    return "0x" + keccak(rlp.encode(_header_items(header, where))).hex()


def _header_items(header: Mapping[str, Any], where: str) -> list[bytes]:
    items: list[bytes] = []
    present = [name for name, _ in HEADER_FIELDS if name in header]
    expected = [name for name, _ in HEADER_FIELDS[: len(present)]]
    if present != expected or len(present) < _REQUIRED_HEADER:
        missing = next((n for n in expected if n not in header), None) or HEADER_FIELDS[len(present)][0]
        raise BundleError(
            f"{where}.{missing}: header field missing (fields must be a prefix of the fork list)"
        )
    for name, kind in HEADER_FIELDS[: len(present)]:
        value = header[name]
        here = f"{where}.{name}"
        if not isinstance(value, str):
            raise BundleError(f"{here}: expected a 0x-hex string")
        if kind == "quantity":
            if not _QUANTITY.match(value):
                raise BundleError(f"{here}: {value!r} is not a canonical hex quantity")
            items.append(_quantity_bytes(value))
            continue
        size = {"hash": 32, "address": 20, "bloom": 256, "nonce": 8, "data": None}[kind]
        if not _HEX.match(value) or len(value) % 2:
            raise BundleError(f"{here}: {value!r} is not lower-case 0x-hex of whole bytes")
        raw = _hex_to_bytes(value)
        if size is not None and len(raw) != size:
            raise BundleError(f"{here}: expected {size} bytes, got {len(raw)}")
        items.append(raw)
    return items


# ---------------------------------------------------------------------------------------------- MPT proofs


def _nibbles(data: bytes) -> list[int]:
    out = []
    for byte in data:
        out += [byte >> 4, byte & 0x0F]
    return out


def _hex_prefix(encoded: bytes) -> tuple[list[int], bool]:
    nibbles = _nibbles(encoded)
    flag = nibbles[0]
    if flag > 3:
        raise ValueError(f"bad hex-prefix flag {flag}")
    return (nibbles[1:] if flag & 1 else nibbles[2:]), bool(flag & 2)


def mpt_get(root: bytes, key: bytes, proof: Sequence[bytes], where: str) -> bytes | None:
    """Walk a Merkle-Patricia proof (EIP-1186 style: the nodes from the root down) for `key` (already hashed
    as the secure trie hashes it). Returns the value, or None when the proof shows the key is absent. A node
    that does not hash to the reference its parent holds raises BundleError naming `where[i]`."""
    path = _nibbles(key)
    position = 0
    expected: bytes | list[Any] = root
    index = 0
    while True:
        if isinstance(expected, list):  # a node shorter than 32 bytes, embedded in its parent
            node: Any = expected
        else:
            if index >= len(proof):
                raise BundleError(f"{where}: proof ends after {len(proof)} nodes before reaching the key")
            encoded = proof[index]
            here = f"{where}[{index}]"
            if keccak(encoded) != expected and not (index > 0 and len(encoded) < 32 and encoded == expected):
                raise BundleError(
                    f"{here}: node hashes to 0x{keccak(encoded).hex()}, but "
                    f"{'the root' if index == 0 else 'its parent'} references 0x{expected.hex()}"
                )
            try:
                node = rlp.decode(encoded)
            except rlp.exceptions.DecodingError as exc:
                raise BundleError(f"{here}: not a valid RLP trie node ({exc})") from None
            index += 1
        here = f"{where}[{index - 1}]"
        if not isinstance(node, list) or len(node) not in (2, 17):
            raise BundleError(f"{here}: not a trie node (expected a list of 2 or 17 items)")
        if len(node) == 17:
            if position == len(path):
                value = node[16]
                return bytes(value) if value else None
            child = node[path[position]]
            position += 1
            if child in (b"", []):
                return None
            expected = child if isinstance(child, list) else bytes(child)
            continue
        try:
            segment, is_leaf = _hex_prefix(bytes(node[0]))
        except (ValueError, IndexError, TypeError):
            raise BundleError(f"{here}: bad hex-prefix path encoding") from None
        if is_leaf:
            if path[position:] == segment:
                if index != len(proof):
                    raise BundleError(f"{where}[{index}]: extra nodes after the leaf")
                return bytes(node[1])
            return None
        if path[position : position + len(segment)] != segment:
            return None
        position += len(segment)
        nxt = node[1]
        expected = nxt if isinstance(nxt, list) else bytes(nxt)


# ---------------------------------------------------------------------------------------------- pinning


@dataclass(frozen=True)
class LedgerPin:
    """The ledger an auditor expects a bundle to be of: its address and, from its deployment record, its
    chain id and genesis block hash. `source` says where the pin came from, for the verdict."""

    address: str
    chain_id: int | None = None
    genesis_hash: str | None = None
    source: str = "the expected ledger address"
    vouchers_address: str | None = None  # the voucher contract beside it, for a voucher's bundle

    def __post_init__(self) -> None:
        if self.vouchers_address is not None:
            object.__setattr__(self, "vouchers_address", self.vouchers_address.lower())
        address = self.address.lower()
        if not _HEX.match(address) or len(address) != 42:
            raise BundleError(
                f"expected ledger address {self.address!r} is not an address",
                hint="pass 0x followed by 40 hex digits: the `address` of the ledger's deployment record",
            )
        object.__setattr__(self, "address", address)
        if self.genesis_hash is not None:
            object.__setattr__(self, "genesis_hash", self.genesis_hash.lower())

    @classmethod
    def of_deployment(cls, deployment: Deployment, source: str = "the deployment record") -> LedgerPin:
        return cls(
            deployment.address,
            deployment.chain_id,
            deployment.genesis_hash,
            source,
            deployment.vouchers_address,
        )

    @classmethod
    def load(cls, path: Path) -> LedgerPin:
        """The pin of a deployment record file (`fundflow deploy` writes it; the consortium publishes it)."""
        return cls.of_deployment(Deployment.load(path), f"the deployment record {path}")

    def describe(self) -> str:
        parts = [f"ledger {self.address}"]
        if self.chain_id is not None:
            parts.append(f"chain {self.chain_id}")
        if self.genesis_hash is not None:
            parts.append(f"genesis {self.genesis_hash}")
        return f"{', '.join(parts)} ({self.source})"


def _check_pin(pin: LedgerPin, contract: str, chain_id: int, subject: _Subject = _LOAN) -> None:
    if subject is _VOUCHER:
        if contract != pin.vouchers_address:
            raise BundleError(
                f"bundle.contract: the bundle proves a voucher's trail kept by contract {contract}, but the "
                f"voucher contract you pinned is {pin.vouchers_address or 'none'} ({pin.source}): this is "
                "not your vouchers' trail",
                hint="pin the deployment record that names the voucher contract (`--deployment`)",
            )
    elif contract != pin.address:
        raise BundleError(
            f"bundle.contract: the bundle proves the trail kept by contract {contract}, but the ledger you "
            f"pinned is {pin.address} ({pin.source}): this is not the ledger's trail. Any copy of the "
            "contract has the same code hash, so a bundle of another address proves nothing about your "
            "ledger",
            hint="ask for a bundle of the pinned ledger; never take a bundle's own `contract` as the ledger",
        )
    if pin.chain_id is not None and chain_id != pin.chain_id:
        raise BundleError(
            f"bundle.chainId: the bundle is of chain {chain_id}, the pinned ledger lives on chain "
            f"{pin.chain_id} ({pin.source})"
        )


# ---------------------------------------------------------------------------------------------- building


def _logs_of(
    contract: BoundContract, subject: _Subject, subject_id: str, from_block: int, to_block: int
) -> list[Any]:
    logs = contract.client.get_logs(contract.address, from_block, to_block, topics=[None, subject_id])
    decoded = EventDecoder(subject.abi).decode_all(logs)
    return [e for e in decoded if str(e.args[subject.id_key]).lower() == subject_id]


def _json_arg(abi_type: str, value: Any) -> Any:
    if abi_type == "bool":
        return bool(value)
    if abi_type.startswith("uint"):
        return str(int(value))
    if abi_type == "address":
        return str(value).lower()
    return str(value).lower()


def build_bundle(
    ledger: LedgerContract,
    loan_id: str,
    *,
    storage_slot: int,
    from_block: int,
    block: int | None = None,
) -> dict[str, Any]:
    """A proof bundle of `loan_id` at `block` (default: the latest block). `storage_slot` is the `_heads`
    slot (`heads_slot(compiled.storage_layout)`), `from_block` the deployment block. The bundle is verified
    before it is returned, so a bundle this returns always verifies against the node it came from."""
    return _build(ledger, _LOAN, loan_id, storage_slot=storage_slot, from_block=from_block, block=block)


def build_voucher_bundle(
    vouchers: BoundContract,
    voucher_id: str,
    *,
    from_block: int,
    block: int | None = None,
    storage_slot: int = VOUCHER_HEADS_SLOT,
) -> dict[str, Any]:
    """A proof bundle of voucher `voucher_id` (the voucher contract's `_heads[voucherId]` proven against a
    block header, with every event of the voucher), as `build_bundle` for a loan. Verified before returned."""
    return _build(
        vouchers, _VOUCHER, voucher_id, storage_slot=storage_slot, from_block=from_block, block=block
    )


def _build(
    contract: BoundContract,
    subject: _Subject,
    subject_id: str,
    *,
    storage_slot: int,
    from_block: int,
    block: int | None,
) -> dict[str, Any]:
    subject_id = "0x" + as_bytes32(subject_id).hex()
    client = contract.client
    at = client.block_number() if block is None else block
    raw_block = client.get_block(at)
    key = heads_storage_key(subject_id, storage_slot)
    proof = client.get_proof(contract.address, [key], at)
    events = _logs_of(contract, subject, subject_id, from_block, at)
    if not events:
        raise BundleError(
            f"{subject.noun} {subject_id} has no events up to block {at}", hint=f"check the {subject.noun} id"
        )
    storage = proof["storageProof"][0]
    head = "0x" + int(storage["value"], 16).to_bytes(32, "big").hex()
    header = {name: raw_block[name] for name, _ in HEADER_FIELDS if name in raw_block}
    header["hash"] = raw_block["hash"]
    entries = []
    for e in events:
        entry: dict[str, Any] = {
            "name": e.name,
            "blockNumber": e.block_number,
            "blockHash": e.block_hash.lower(),
            "transactionHash": e.transaction_hash.lower(),
            "logIndex": e.log_index,
            "args": {n: _json_arg(t, e.args[n]) for n, t, _ in subject.inputs[e.name]},
        }
        entry["digest"] = _digest(entry)
        entries.append(entry)
    bundle: dict[str, Any] = {
        "format": subject.format,
        "version": BUNDLE_VERSION,
        "chainId": client.chain_id,
        "contract": contract.address.lower(),
        "headsSlot": "0x" + storage_slot.to_bytes(32, "big").hex(),
        subject.id_key: subject_id,
        "head": head,
        "header": {k: str(v).lower() for k, v in header.items()},
        "accountProof": {
            "address": contract.address.lower(),
            "nonce": proof["nonce"],
            "balance": proof["balance"],
            "storageHash": proof["storageHash"].lower(),
            "codeHash": proof["codeHash"].lower(),
            "proof": [p.lower() for p in proof["accountProof"]],
        },
        "storageProof": {"key": key, "proof": [p.lower() for p in storage["proof"]]},
        "events": entries,
    }
    bundle["digest"] = _digest(bundle)
    verify_bundle(
        bundle_to_text(bundle),
        trusted_block_hash=raw_block["hash"],
        heads_slot=storage_slot if subject is _LOAN else HEADS_SLOT,
        voucher_heads_slot=storage_slot if subject is _VOUCHER else VOUCHER_HEADS_SLOT,
    )
    return bundle


def write_bundle(bundle: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bundle_to_text(bundle), encoding="ascii")


# ---------------------------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class ProvedEvent:
    name: str
    block_number: int
    log_index: int
    transaction_hash: str
    args: dict[str, Any]
    head: str  # the trail's head after this event


@dataclass(frozen=True)
class BundleVerification:
    """A bundle that verified. `anchored_by` says what the header hash was checked against."""

    loan_id: str
    head: str
    chain_id: int
    contract: str
    code_hash: str
    block_number: int
    block_hash: str
    timestamp: int
    anchored_by: str | None
    events: list[ProvedEvent] = field(default_factory=list)
    positions_checked: bool = False
    pinned_by: str | None = None
    subject: str = "loan"  # "voucher": `loan_id` is then the voucher's id (a voucher bundle, issue 22)

    @property
    def anchored(self) -> bool:
        return self.anchored_by is not None

    @property
    def pinned(self) -> bool:
        """The bundle's contract was checked against a ledger the auditor pinned."""
        return self.pinned_by is not None

    @property
    def proven(self) -> bool:
        """Anchored to a block hash the auditor trusts and pinned to the auditor's ledger: both or nothing."""
        return self.anchored and self.pinned


def _expect_keys(obj: Any, keys: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise BundleError(f"{where}: expected an object")
    if list(obj) != list(keys):
        extra = [k for k in obj if k not in keys]
        missing = [k for k in keys if k not in obj]
        if extra:
            raise BundleError(f"{where}.{extra[0]}: unknown field")
        if missing:
            raise BundleError(f"{where}.{missing[0]}: missing field")
        raise BundleError(f"{where}: fields out of order (expected {', '.join(keys)})")
    return obj


def _hex_field(obj: Mapping[str, Any], name: str, where: str, size: int | None = None) -> str:
    value = obj[name]
    if not isinstance(value, str) or not _HEX.match(value) or len(value) % 2:
        raise BundleError(f"{where}.{name}: expected lower-case 0x-hex of whole bytes, got {value!r}")
    if size is not None and len(value) != 2 + 2 * size:
        raise BundleError(f"{where}.{name}: expected {size} bytes, got {(len(value) - 2) // 2}")
    return value


def _int_field(obj: Mapping[str, Any], name: str, where: str) -> int:
    value = obj[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BundleError(f"{where}.{name}: expected a non-negative integer, got {value!r}")
    return value


def _quantity_field(obj: Mapping[str, Any], name: str, where: str) -> int:
    value = obj[name]
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise BundleError(f"{where}.{name}: expected a canonical 0x-hex quantity, got {value!r}")
    return int(value, 16)


def _parse_args(name: str, args: Any, where: str, subject: _Subject = _LOAN) -> dict[str, Any]:
    inputs = subject.inputs[name]
    _expect_keys(args, [n for n, _, _ in inputs], where)
    out: dict[str, Any] = {}
    for field_name, abi_type, _ in inputs:
        value = args[field_name]
        here = f"{where}.{field_name}"
        if abi_type == "bool":
            if not isinstance(value, bool):
                raise BundleError(f"{here}: expected true or false")
            out[field_name] = value
        elif abi_type.startswith("uint"):
            if not isinstance(value, str) or not _DECIMAL.match(value):
                raise BundleError(f"{here}: expected a decimal string, got {value!r}")
            number = int(value)
            if number >> int(abi_type[4:]):
                raise BundleError(f"{here}: {value} does not fit {abi_type}")
            out[field_name] = number
        else:
            size = 20 if abi_type == "address" else int(abi_type[5:])
            out[field_name] = _hex_field(args, field_name, where, size)
    return out


def verify_bundle(
    text: str | bytes,
    *,
    trusted_block_hash: str | None = None,
    client: ChainClient | None = None,
    pin: LedgerPin | None = None,
    heads_slot: int = HEADS_SLOT,
    voucher_heads_slot: int = VOUCHER_HEADS_SLOT,
) -> BundleVerification:
    """Verify a bundle file's text. Raises BundleError naming the place (JSON path, proof node, event, or
    byte offset) of the first thing wrong. The header hash is anchored to `trusted_block_hash`, or to the
    hash the node behind `client` has at that height (which then also checks every event's position and,
    with a pinned genesis, that the node is the pinned chain). `pin` is the ledger the bundle must be of;
    without one the result says it is not pinned (`pinned` false), and proves nothing about which ledger."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise BundleError(f"byte {exc.start}: not ASCII (a bundle is plain ASCII JSON)") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"line {exc.lineno} column {exc.colno} (byte {exc.pos}): not valid JSON ({exc.msg})"
        ) from None
    # A loan's bundle or a voucher's (issue 22): the format says which, and fixes everything else.
    if not isinstance(doc, dict):
        raise BundleError("bundle: expected an object")
    subject = _SUBJECTS.get(str(doc.get("format")))
    if subject is None:
        got = doc.get("format")
        raise BundleError(
            f"bundle.format: expected {BUNDLE_FORMAT!r} or {VOUCHER_BUNDLE_FORMAT!r}, got {got!r}"
        )
    _expect_keys(doc, subject.top_keys, "bundle")
    if subject is _VOUCHER:
        heads_slot = voucher_heads_slot
    if doc["version"] != BUNDLE_VERSION or isinstance(doc["version"], bool):
        raise BundleError(
            f"bundle.version: this verifier reads version {BUNDLE_VERSION}, got {doc['version']!r}"
        )
    chain_id = _int_field(doc, "chainId", "bundle")
    contract = _hex_field(doc, "contract", "bundle", 20)
    slot = _hex_field(doc, "headsSlot", "bundle", 32)
    loan_id = _hex_field(doc, subject.id_key, "bundle", 32)
    head = _hex_field(doc, "head", "bundle", 32)

    # 0. The pins: the ledger the auditor expects, and the `_heads` slot of the audited build.
    if int(slot, 16) != heads_slot:
        raise BundleError(
            f"bundle.headsSlot: {slot} is not the {'voucher contract' if subject is _VOUCHER else 'ledger'}"
            f"'s `_heads` slot ({heads_slot}); a verifier pins the slot instead of taking it from the bundle"
        )
    if pin is not None:
        _check_pin(pin, contract, chain_id, subject)

    # 1. The header: every RLP field, hashed, equals the stated hash and the trusted one.
    header = doc["header"]
    if not isinstance(header, dict):
        raise BundleError("bundle.header: expected an object")
    names = [n for n, _ in HEADER_FIELDS if n in header]
    _expect_keys(header, [*names, "hash"], "bundle.header")
    computed = header_hash(header, "bundle.header")
    stated = _hex_field(header, "hash", "bundle.header", 32)
    if computed != stated:
        raise BundleError(
            f"bundle.header: keccak256(rlp(header)) is {computed}, header.hash says {stated}: a header "
            "field was altered"
        )
    number = int(header["number"], 16)
    anchored_by: str | None = None
    if client is not None:
        if client.chain_id != chain_id:
            raise BundleError(
                f"bundle.chainId: the bundle is of chain {chain_id}, the node is chain {client.chain_id}"
            )
        if pin is not None and pin.genesis_hash is not None:
            genesis = client.get_header(0).hash.lower()
            if genesis != pin.genesis_hash:
                raise BundleError(
                    f"--rpc: the node at {client.display_url} has genesis {genesis}, the pinned ledger's "
                    f"chain has genesis {pin.genesis_hash} ({pin.source}): the node is another chain"
                )
        try:
            node_hash = client.get_header(number).hash.lower()
        except ChainError as exc:
            raise BundleError(
                f"bundle.header.number: the node has no block {number} ({exc.message})"
            ) from None
        if trusted_block_hash is not None and node_hash != trusted_block_hash.lower():
            raise BundleError(
                f"--block-hash {trusted_block_hash} differs from the node's block {number}: {node_hash}"
            )
        trusted_block_hash = node_hash
        anchored_by = f"block {number} hash on the node at {client.display_url}"
    if trusted_block_hash is not None:
        if computed != trusted_block_hash.lower():
            raise BundleError(
                f"bundle.header: the header hashes to {computed}, not to the trusted block hash "
                f"{trusted_block_hash.lower()}"
            )
        anchored_by = anchored_by or f"trusted block hash {trusted_block_hash.lower()}"

    # 2. The account proof: the contract's account leaf under the header's state root.
    account = _expect_keys(doc["accountProof"], _ACCOUNT_KEYS, "bundle.accountProof")
    if _hex_field(account, "address", "bundle.accountProof", 20) != contract:
        raise BundleError("bundle.accountProof.address: differs from bundle.contract")
    nonce = _quantity_field(account, "nonce", "bundle.accountProof")
    balance = _quantity_field(account, "balance", "bundle.accountProof")
    storage_hash = _hex_field(account, "storageHash", "bundle.accountProof", 32)
    code_hash = _hex_field(account, "codeHash", "bundle.accountProof", 32)
    account_nodes = _proof_nodes(account["proof"], "bundle.accountProof.proof")
    leaf = mpt_get(
        _hex_to_bytes(header["stateRoot"]),
        keccak(_hex_to_bytes(contract)),
        account_nodes,
        "bundle.accountProof.proof",
    )
    if leaf is None:
        raise BundleError(
            "bundle.accountProof.proof: proves the contract account does not exist at this block"
        )
    expected_leaf = rlp.encode(
        [
            _int_bytes(nonce),
            _int_bytes(balance),
            _hex_to_bytes(storage_hash),
            _hex_to_bytes(code_hash),
        ]
    )
    if leaf != expected_leaf:
        raise BundleError(
            "bundle.accountProof: the proven account is not (nonce, balance, storageHash, codeHash) as stated"
        )

    # 3. The storage proof: _heads[loanId] under the account's storage root equals bundle.head.
    storage = _expect_keys(doc["storageProof"], _STORAGE_KEYS, "bundle.storageProof")
    key = _hex_field(storage, "key", "bundle.storageProof", 32)
    if key != heads_storage_key(loan_id, int(slot, 16)):
        raise BundleError(
            f"bundle.storageProof.key: is not keccak256(abi.encode({subject.id_key}, headsSlot))"
        )
    storage_nodes = _proof_nodes(storage["proof"], "bundle.storageProof.proof")
    value = mpt_get(
        _hex_to_bytes(storage_hash), keccak(_hex_to_bytes(key)), storage_nodes, "bundle.storageProof.proof"
    )
    proven = 0 if value is None else int.from_bytes(rlp.decode(value), "big")
    if proven != int(head, 16):
        raise BundleError(
            f"bundle.head: the storage proof shows _heads[{subject.id_key}] = 0x{proven:064x} at block "
            f"{number}, the bundle states {head}"
        )
    if proven == 0:
        raise BundleError(f"bundle.head: the {subject.noun} has no head at this block (it does not exist)")

    # 4. The events: canonical, in order, each digest intact, the hash chain ending in the proven head.
    events = doc["events"]
    if not isinstance(events, list) or not events:
        raise BundleError("bundle.events: expected a non-empty list")
    proved: list[ProvedEvent] = []
    running = ZERO_HEAD
    previous: tuple[int, int] = (-1, -1)
    for i, entry in enumerate(events):
        where = f"bundle.events[{i}]"
        _expect_keys(entry, _EVENT_KEYS, where)
        name = entry["name"]
        if name not in subject.inputs:
            raise BundleError(f"{where}.name: {name!r} is not a {subject.noun} event")
        block_number = _int_field(entry, "blockNumber", where)
        log_index = _int_field(entry, "logIndex", where)
        block_hash = _hex_field(entry, "blockHash", where, 32)
        tx_hash = _hex_field(entry, "transactionHash", where, 32)
        args = _parse_args(name, entry["args"], f"{where}.args", subject)
        if (block_number, log_index) <= previous:
            raise BundleError(f"{where}: not after the previous event (events must be in chain order)")
        previous = (block_number, log_index)
        if block_number > number:
            raise BundleError(f"{where}.blockNumber: {block_number} is after the proven block {number}")
        if block_number == number and block_hash != computed:
            raise BundleError(f"{where}.blockHash: the event is in the proven block but names another hash")
        if args[subject.id_key] != loan_id:
            raise BundleError(f"{where}.args.{subject.id_key}: not the bundle's {subject.noun}")
        if i == 0 and name != subject.first:
            raise BundleError(f"{where}.name: a trail starts with {subject.first}, not {name}")
        if name == "TrailAttested":
            if args["head"] != running:
                raise BundleError(
                    f"{where}.args.head: attests {args['head']}, but the trail's head there is {running}"
                )
        else:
            expected = subject.chain.step(running, name, args)
            stated_head = event_head(name, args)
            if expected != stated_head:
                what = "lotId" if name in LOT_CREATING_EVENTS else "head"
                raise BundleError(
                    f"{where}: hash chain breaks at this {name}: the previous head and its payload give "
                    f"{expected}, args.{what} is {stated_head} (a payload field or the head was altered)"
                )
            running = expected
        if entry["digest"] != _digest(entry):
            raise BundleError(
                f"{where}.digest: does not match the entry (its blockNumber, blockHash, transactionHash or "
                "logIndex was altered; these positions are not covered by the state proof, anchor with --rpc "
                "to check them against a node)"
            )
        proved.append(ProvedEvent(name, block_number, log_index, tx_hash, args, running))
    if running != head:
        raise BundleError(
            f"bundle.events: the trail's payloads give head {running}, the proven head is {head} (events are "
            "missing or were added)"
        )

    # 5. Whole-document digest and canonical serialisation: nothing outside the proofs changed either.
    if doc["digest"] != _digest(doc):
        raise BundleError(
            "bundle.digest: does not match the document (bundle.chainId or the digest was altered)"
        )
    canonical = bundle_to_text(doc)
    if canonical != text:
        offset = next((i for i, (a, b) in enumerate(zip(canonical, text, strict=False)) if a != b), None)
        offset = min(len(canonical), len(text)) if offset is None else offset
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise BundleError(
            f"byte {offset} (line {line} column {column}): the file is not in canonical form (whitespace, "
            "escaping or key order changed)"
        )

    positions_checked = False
    if client is not None:
        _check_positions(client, contract, doc["events"], subject)
        positions_checked = True
    return BundleVerification(
        loan_id=loan_id,
        head=head,
        chain_id=chain_id,
        contract=contract,
        code_hash=code_hash,
        block_number=number,
        block_hash=computed,
        timestamp=int(header["timestamp"], 16),
        anchored_by=anchored_by,
        events=proved,
        positions_checked=positions_checked,
        pinned_by=None if pin is None else pin.describe(),
        subject=subject.noun,
    )


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""


def _proof_nodes(nodes: Any, where: str) -> list[bytes]:
    if not isinstance(nodes, list) or not nodes:
        raise BundleError(f"{where}: expected a non-empty list of 0x-hex trie nodes")
    out = []
    for i, node in enumerate(nodes):
        if not isinstance(node, str) or not _HEX.match(node) or len(node) % 2 or len(node) < 4:
            raise BundleError(f"{where}[{i}]: expected lower-case 0x-hex bytes")
        out.append(_hex_to_bytes(node))
    return out


def _check_positions(
    client: ChainClient, contract: str, events: list[dict[str, Any]], subject: _Subject = _LOAN
) -> None:
    """With a node: each event is the log at its (block hash, log index), from its transaction."""
    blocks = sorted({e["blockHash"] for e in events})
    answers = client.batch([("eth_getLogs", [{"address": contract, "blockHash": b}]) for b in blocks])
    decoder = EventDecoder(subject.abi)
    logs: dict[tuple[str, int], Any] = {}
    for logs_of_block in answers:
        for event in decoder.decode_all(logs_of_block):
            logs[(event.block_hash.lower(), event.log_index)] = event
    for i, entry in enumerate(events):
        where = f"bundle.events[{i}]"
        truth = logs.get((entry["blockHash"], entry["logIndex"]))
        if truth is None:
            raise BundleError(f"{where}: the node has no {subject.noun} log at this blockHash and logIndex")
        if truth.transaction_hash.lower() != entry["transactionHash"]:
            raise BundleError(f"{where}.transactionHash: the node says {truth.transaction_hash}")
        if truth.block_number != entry["blockNumber"] or truth.name != entry["name"]:
            raise BundleError(f"{where}: the node's log there is {truth.name} in block {truth.block_number}")
        wanted = {n: _json_arg(t, truth.args[n]) for n, t, _ in subject.inputs[truth.name]}
        if wanted != entry["args"]:
            raise BundleError(f"{where}.args: differ from the node's log")


def load_bundle_text(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
