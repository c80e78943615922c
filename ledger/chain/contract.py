"""Typed access to a deployed FundFlowLedger: one Python method per contract function.

Encodes calls from the ABI with eth-abi, sends them through a `ChainClient`, and returns `TxResult`s whose
events are already decoded. Identifiers (loan, lot, org ids, hashes) are 0x-prefixed hex strings; amounts
are integers in the currency's minor unit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Self

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from ledger.chain.client import ChainClient, TxResult
from ledger.chain.journal import SendJournal
from ledger.chain.reverts import ErrorDecoder
from ledger.errors import ValidationError
from ledger.protocol.codes import (
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    ENTERPRISE_ROLE,
    LENDER_ROLE,
    MAX_BATCH,
    MAX_PURPOSE,
    OPERATOR_ROLE,
    EventKind,
    LoanStatus,
    RiskClass,
    role_id,
)
from ledger.protocol.events import EventDecoder
from ledger.protocol.hashchain import HashChain

__all__ = [
    "ENTERPRISE_ROLE",
    "AUDITOR_ROLE",
    "BoundContract",
    "LENDER_ROLE",
    "OPERATOR_ROLE",
    "DEFAULT_ADMIN_ROLE",
    "LedgerContract",
    "MAX_BATCH",
    "LoanState",
    "LoanStatus",
    "LotState",
    "PAY_GAS",
    "PaymentSpec",
    "RiskClass",
    "as_bytes32",
    "pay_batch_gas",
    "purpose_mask",
    "role_id",
]

# Roles, statuses, risk classes and MAX_BATCH are the protocol's (ledger.protocol.codes), re-exported here
# for callers that know them from the contract.


# Gas limits for pay and payBatch, computed instead of asked of the node: eth_estimateGas executes the
# whole transaction again (a 500-payment batch costs the node as much as the batch itself), and the node's
# estimate plus a margin overshoots the 2^24 per-transaction cap long before the batch does. Measured
# worst case (Hardhat 2.29, Osaka; the same on anvil): a servicing lender (the dearer spender check) paying
# out of a different, untouched lot each time, every calldata byte non-zero: 70,089 gas for one payment,
# then 34,161 per payment (29,479 when the lot is already warm). The bounds add about 4 % on top;
# tests/test_gas_bounds.py checks them against that worst case at the largest batch the cap allows.
PAY_GAS = 80_000
"""Gas limit of one `pay`."""
PAY_BATCH_BASE_GAS = 40_000
PAY_BATCH_ITEM_GAS = 30_500
PAY_BATCH_COLD_LOT_GAS = 5_000
"""Per distinct lot paid out of: the first read and rewrite of its slot in the transaction (EIP-2929)."""


def pay_batch_gas(payments: Sequence[PaymentSpec]) -> int:
    """A gas limit `payBatch` never exceeds for these payments."""
    lots = len({p.from_lot.lower() for p in payments})
    return PAY_BATCH_BASE_GAS + PAY_BATCH_ITEM_GAS * len(payments) + PAY_BATCH_COLD_LOT_GAS * lots


@dataclass(frozen=True)
class PaymentSpec:
    """One payment of a batch."""

    from_lot: str
    payee: str
    amount: int
    purpose: int
    evidence_hash: str = "0x" + "00" * 32


@dataclass(frozen=True)
class LoanState:
    lender_org: str
    borrower: str
    borrower_ref: str
    principal: int
    disbursed: int
    repaid: int
    allowed_purposes: int
    maturity: int
    currency: str
    status: LoanStatus
    risk_class: RiskClass
    terms_hash: str
    head: str


@dataclass(frozen=True)
class LotState:
    holder: str
    remaining: int
    allowed_purposes: int


def as_bytes32(value: str | bytes) -> bytes:
    """Accept 0x-hex or raw bytes; refuse anything that is not exactly 32 bytes."""
    raw = value if isinstance(value, bytes) else _hex(value)
    if len(raw) != 32:
        raise ValidationError(
            f"expected a 32-byte value, got {len(raw)} bytes",
            hint="pass a 0x-prefixed hex string of 64 hex digits",
        )
    return raw


def _hex(value: str) -> bytes:
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not hex", hint="pass a 0x-prefixed hex string") from exc


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address(value: str) -> bytes:
    raw = _hex(value)
    if len(raw) != 20:
        raise ValidationError(f"{value!r} is not an account address", hint="0x followed by 40 hex digits")
    return raw


def _currency(code: str | bytes) -> bytes:
    raw = code if isinstance(code, bytes) else code.encode("ascii")
    if len(raw) != 3:
        raise ValidationError(f"currency {code!r} is not a 3-letter ISO 4217 code", hint="e.g. CNY, USD")
    return raw


def _abi_type(abi_input: Mapping[str, Any]) -> str:
    t = str(abi_input["type"])
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in abi_input["components"])
        return f"({inner}){t[5:]}"
    return t


class BoundContract:
    """A deployed contract at `address` on the chain behind `client`: calls encoded from its ABI, reverts
    decoded by its errors, events by its events, heads by its hash chain (`kinds`: its event-kind enum).
    The ledger and the voucher contract are both one.

    Its sends record through `journal` when it has one: the plain contract has none, a view made by
    `journaled(journal)` has that one (see ledger/chain/journal.py)."""

    def __init__(
        self,
        client: ChainClient,
        address: str,
        abi: Sequence[Mapping[str, Any]],
        *,
        kinds: type[IntEnum] = EventKind,
    ) -> None:
        self.client = client
        self.journal: SendJournal | None = None
        self.address = to_checksum_address(address)
        self.abi = list(abi)
        self.errors = ErrorDecoder(self.abi)
        self.events = EventDecoder(self.abi)
        self.hash_chain = HashChain(self.abi, kinds=kinds)
        self._functions: dict[str, tuple[bytes, list[str], list[str]]] = {}
        for entry in self.abi:
            if entry.get("type") == "function":
                types = [_abi_type(i) for i in entry["inputs"]]
                selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
                outputs = [_abi_type(o) for o in entry.get("outputs", [])]
                self._functions[str(entry["name"])] = (selector, types, outputs)

    # ------------------------------------------------------------------ plumbing

    def journaled(self, journal: SendJournal | None) -> Self:
        """This contract with every send recorded through `journal` before it is broadcast (itself when
        `journal` is None). A cheap view: same client, ABI, decoders; this contract is left unchanged."""
        if journal is None:
            return self
        view = copy.copy(self)
        view.journal = journal
        return view

    def encode(self, function: str, *args: Any) -> str:
        selector, types, _ = self._functions[function]
        return "0x" + (selector + abi_encode(types, list(args))).hex()

    def transact(self, sender: LocalAccount, function: str, *args: Any, gas: int | None = None) -> TxResult:
        data = self.encode(function, *args)
        return self.client.transact(
            sender, self.address, data, gas=gas, errors=self.errors, events=self.events, journal=self.journal
        )

    def send(self, sender: LocalAccount, function: str, *args: Any, gas: int | None = None) -> str:
        """Send without waiting (for pipelining many transactions); pair with `result_of`."""
        return self.client.send(
            sender,
            self.address,
            self.encode(function, *args),
            gas=gas,
            errors=self.errors,
            journal=self.journal,
        )

    def result_of(self, tx_hash: str) -> TxResult:
        return self.client.result_of(tx_hash, errors=self.errors, events=self.events)

    def read(self, function: str, *args: Any, block: int | str = "latest") -> tuple[Any, ...]:
        raw = self.client.call(self.address, self.encode(function, *args), block=block, errors=self.errors)
        return tuple(abi_decode(self._functions[function][2], raw))

    def decode_result(self, function: str, raw: str | bytes) -> tuple[Any, ...]:
        """A view's return data (0x-hex, as a batched `eth_call` answers) decoded by its ABI outputs."""
        data = raw if isinstance(raw, bytes) else bytes.fromhex(raw[2:] if raw.startswith("0x") else raw)
        return tuple(abi_decode(self._functions[function][2], data))


class LedgerContract(BoundContract):
    """A FundFlowLedger at `address` on the chain behind `client`."""

    # ------------------------------------------------------------------ participants

    def register_organization(self, operator: LocalAccount, org_id: str, profile_hash: str) -> TxResult:
        return self.transact(operator, "registerOrganization", as_bytes32(org_id), as_bytes32(profile_hash))

    def add_account(self, operator: LocalAccount, org_id: str, account: str) -> TxResult:
        return self.transact(operator, "addAccount", as_bytes32(org_id), to_checksum_address(account))

    def remove_account(self, operator: LocalAccount, account: str) -> TxResult:
        return self.transact(operator, "removeAccount", to_checksum_address(account))

    def grant_role(self, operator: LocalAccount, role: str, account: str) -> TxResult:
        return self.transact(operator, "grantRole", as_bytes32(role), to_checksum_address(account))

    def revoke_role(self, operator: LocalAccount, role: str, account: str) -> TxResult:
        return self.transact(operator, "revokeRole", as_bytes32(role), to_checksum_address(account))

    def pause(self, operator: LocalAccount) -> TxResult:
        return self.transact(operator, "pause")

    def unpause(self, operator: LocalAccount) -> TxResult:
        return self.transact(operator, "unpause")

    # ------------------------------------------------------------------ loans

    def open_loan(
        self,
        lender: LocalAccount,
        *,
        loan_id: str,
        borrower: str,
        borrower_ref: str,
        principal: int,
        currency: str,
        allowed_purposes: Iterable[int],
        maturity: int,
        terms_hash: str,
    ) -> TxResult:
        return self.transact(
            lender,
            "openLoan",
            as_bytes32(loan_id),
            to_checksum_address(borrower),
            as_bytes32(borrower_ref),
            principal,
            _currency(currency),
            purpose_mask(allowed_purposes),
            maturity,
            as_bytes32(terms_hash),
        )

    def disburse(
        self,
        lender: LocalAccount,
        *,
        loan_id: str,
        payee: str,
        amount: int,
        purpose: int,
        evidence_hash: str = "0x" + "00" * 32,
    ) -> TxResult:
        return self.transact(
            lender,
            "disburse",
            as_bytes32(loan_id),
            to_checksum_address(payee),
            amount,
            purpose,
            as_bytes32(evidence_hash),
        )

    def pay(
        self,
        spender: LocalAccount,
        *,
        loan_id: str,
        from_lot: str,
        payee: str,
        amount: int,
        purpose: int,
        evidence_hash: str = "0x" + "00" * 32,
    ) -> TxResult:
        return self.transact(
            spender,
            "pay",
            as_bytes32(loan_id),
            as_bytes32(from_lot),
            to_checksum_address(payee),
            amount,
            purpose,
            as_bytes32(evidence_hash),
            gas=PAY_GAS,
        )

    def pay_batch(self, spender: LocalAccount, *, loan_id: str, payments: Sequence[PaymentSpec]) -> TxResult:
        """All payments in one transaction with a computed gas limit (no estimate). A batch whose limit
        exceeds what one transaction may use on this chain is refused before anything is signed."""
        self.check_batch(payments)
        data = self.encode_pay_batch(loan_id, payments)
        return self.client.transact(
            spender,
            self.address,
            data,
            gas=pay_batch_gas(payments),
            errors=self.errors,
            events=self.events,
            journal=self.journal,
        )

    def encode_pay_batch(self, loan_id: str, payments: Sequence[PaymentSpec]) -> str:
        """payBatch calldata, written directly: its argument is an array of static tuples, so the ABI
        encoding is five 32-byte words per payment after a fixed head; eth-abi's generic encoder (and the
        checksumming it asks for) took longer than the node takes to run the batch."""
        words = [self._functions["payBatch"][0], as_bytes32(loan_id), _word(64), _word(len(payments))]
        for p in payments:
            if not 0 <= p.amount < 2**256:
                raise ValidationError(
                    f"amount {p.amount} is not a uint256", hint="pass the minor-unit amount"
                )
            if not 0 <= p.purpose < 256:
                raise ValidationError(
                    f"purpose {p.purpose} is not a uint8", hint="see ledger.protocol.purposes"
                )
            words += (
                as_bytes32(p.from_lot),
                bytes(12) + _address(p.payee),
                _word(p.amount),
                _word(p.purpose),
                as_bytes32(p.evidence_hash),
            )
        return "0x" + b"".join(words).hex()

    def max_batch(self, *, one_lot: bool = True) -> int:
        """The most payments one batch may carry on this chain: all out of one lot, or each out of a
        different lot (the worst case). The contract's MAX_BATCH, or fewer where the chain's
        per-transaction gas cap says so."""
        room = self.client.max_tx_gas - PAY_BATCH_BASE_GAS
        if one_lot:
            fit = (room - PAY_BATCH_COLD_LOT_GAS) // PAY_BATCH_ITEM_GAS
        else:
            fit = room // (PAY_BATCH_ITEM_GAS + PAY_BATCH_COLD_LOT_GAS)
        return max(0, min(MAX_BATCH, fit))

    def check_batch(self, payments: Sequence[PaymentSpec]) -> None:
        """Raise ValidationError unless `payments` fit in one payBatch transaction on this chain. (More than
        MAX_BATCH is left to the contract, which refuses it with LedgerBatchTooLarge.)"""
        n = len(payments)
        gas = pay_batch_gas(payments)
        if gas > self.client.max_tx_gas:
            lots = len({p.from_lot.lower() for p in payments})
            raise ValidationError(
                f"a batch of {n} payments out of {lots} lots may need {gas:,} gas, more than the "
                f"{self.client.max_tx_gas:,} one transaction may use on this chain",
                hint=f"split it: {self.max_batch()} payments out of one lot fit in a batch, "
                f"{self.max_batch(one_lot=False)} when each comes out of a different lot",
            )

    def confirm_lot(self, payee: LocalAccount, *, loan_id: str, lot_id: str, evidence_hash: str) -> TxResult:
        return self.transact(
            payee, "confirmLot", as_bytes32(loan_id), as_bytes32(lot_id), as_bytes32(evidence_hash)
        )

    def dispute_lot(self, payee: LocalAccount, *, loan_id: str, lot_id: str, reason_hash: str) -> TxResult:
        return self.transact(
            payee, "disputeLot", as_bytes32(loan_id), as_bytes32(lot_id), as_bytes32(reason_hash)
        )

    def repay(self, lender: LocalAccount, *, loan_id: str, amount: int, evidence_hash: str) -> TxResult:
        return self.transact(lender, "repay", as_bytes32(loan_id), amount, as_bytes32(evidence_hash))

    def close_loan(self, lender: LocalAccount, *, loan_id: str, status: int, reason_hash: str) -> TxResult:
        return self.transact(lender, "closeLoan", as_bytes32(loan_id), int(status), as_bytes32(reason_hash))

    def classify(self, lender: LocalAccount, *, loan_id: str, risk_class: int, reason_hash: str) -> TxResult:
        return self.transact(
            lender, "classify", as_bytes32(loan_id), int(risk_class), as_bytes32(reason_hash)
        )

    def value_collateral(
        self, lender: LocalAccount, *, loan_id: str, collateral_id: str, value: int, evidence_hash: str
    ) -> TxResult:
        return self.transact(
            lender,
            "valueCollateral",
            as_bytes32(loan_id),
            as_bytes32(collateral_id),
            value,
            as_bytes32(evidence_hash),
        )

    def record_inspection(
        self, lender: LocalAccount, *, loan_id: str, kind: int, report_hash: str
    ) -> TxResult:
        return self.transact(lender, "recordInspection", as_bytes32(loan_id), kind, as_bytes32(report_hash))

    def file_record(
        self, lender: LocalAccount, *, loan_id: str, record_kind: int, record_id: str, content_hash: str
    ) -> TxResult:
        """A record in the loan's post-loan file (`FileRecordKind`): its id and its content's hash."""
        return self.transact(
            lender,
            "fileRecord",
            as_bytes32(loan_id),
            record_kind,
            as_bytes32(record_id),
            as_bytes32(content_hash),
        )

    def file_appraisal(
        self, appraiser: LocalAccount, *, loan_id: str, item_id: str, content_hash: str
    ) -> TxResult:
        """A collateral valuation signed by an appraiser its firm engaged on the loan (record kind 9)."""
        return self.transact(
            appraiser, "fileAppraisal", as_bytes32(loan_id), as_bytes32(item_id), as_bytes32(content_hash)
        )

    def engagement_of(self, loan_id: str, org_id: str) -> int:
        """`org_id`'s third-party roles on the loan: 1 appraiser, 2 law firm, 4 collection agency."""
        return int(self.read("engagementOf", as_bytes32(loan_id), as_bytes32(org_id))[0])

    def restructure(self, lender: LocalAccount, *, loan_id: str, maturity: int, terms_hash: str) -> TxResult:
        return self.transact(lender, "restructure", as_bytes32(loan_id), maturity, as_bytes32(terms_hash))

    # ---- loan servicing (issue 18)

    def repay_allocated(
        self,
        lender: LocalAccount,
        *,
        loan_id: str,
        principal: int,
        interest: int,
        penalty: int,
        evidence_hash: str,
    ) -> TxResult:
        """A repayment with its split (principal, interest, penalty interest) recorded on chain."""
        return self.transact(
            lender,
            "repayAllocated",
            as_bytes32(loan_id),
            int(principal),
            int(interest),
            int(penalty),
            as_bytes32(evidence_hash),
        )

    def change_terms(
        self,
        lender: LocalAccount,
        *,
        loan_id: str,
        maturity: int,
        terms_hash: str,
        change: int,
        financial_difficulty: bool,
    ) -> TxResult:
        """A change of terms (extension, grace period, other, collateral released/substituted)."""
        return self.transact(
            lender,
            "changeTerms",
            as_bytes32(loan_id),
            int(maturity),
            as_bytes32(terms_hash),
            int(change),
            bool(financial_difficulty),
        )

    def attest(self, auditor: LocalAccount, *, loan_id: str, head: str, report_hash: str) -> TxResult:
        return self.transact(
            auditor, "attest", as_bytes32(loan_id), as_bytes32(head), as_bytes32(report_hash)
        )

    # ------------------------------------------------------------------ reads

    def head_of(self, loan_id: str, block: int | str = "latest") -> str:
        return "0x" + self.read("headOf", as_bytes32(loan_id), block=block)[0].hex()

    def get_loan(self, loan_id: str, block: int | str = "latest") -> LoanState:
        (v,) = self.read("getLoan", as_bytes32(loan_id), block=block)
        return LoanState(
            lender_org="0x" + v[0].hex(),
            borrower=to_checksum_address(v[1]),
            borrower_ref="0x" + v[2].hex(),
            principal=v[3],
            disbursed=v[4],
            repaid=v[5],
            allowed_purposes=v[6],
            maturity=v[7],
            currency=v[8].decode("ascii"),
            status=LoanStatus(v[9]),
            risk_class=RiskClass(v[10]),
            terms_hash="0x" + v[11].hex(),
            head="0x" + v[12].hex(),
        )

    def get_lot(self, loan_id: str, lot_id: str, block: int | str = "latest") -> LotState:
        holder, remaining, allowed = self.read("getLot", as_bytes32(loan_id), as_bytes32(lot_id), block=block)
        return LotState(to_checksum_address(holder), remaining, allowed)

    def organization_of(self, account: str) -> str:
        return "0x" + self.read("organizationOf", to_checksum_address(account))[0].hex()

    def organization_exists(self, org_id: str) -> bool:
        return bool(self.read("organizationExists", as_bytes32(org_id))[0])

    def has_role(self, role: str, account: str) -> bool:
        return bool(self.read("hasRole", as_bytes32(role), to_checksum_address(account))[0])

    def paused(self) -> bool:
        return bool(self.read("paused")[0])


def purpose_mask(purposes: Iterable[int]) -> int:
    """The uint32 bit set the contract stores for a set of purpose codes (0-31)."""
    mask = 0
    for p in purposes:
        if not 0 <= int(p) <= MAX_PURPOSE:
            raise ValidationError(
                f"purpose code {p} is outside 0-{MAX_PURPOSE}",
                hint="see ledger.protocol.purposes for the codes",
            )
        mask |= 1 << int(p)
    return mask
