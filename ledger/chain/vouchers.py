"""Typed access to a deployed SupplyChainVouchers contract (contracts/SupplyChainVouchers.sol).

The voucher contract sits beside the ledger and takes identities, roles and the pause flag from it. One
Python method per contract function, as `LedgerContract` has for the ledger: ids and hashes are 0x-hex,
amounts integer fen, times Unix seconds; a refusal raises `ContractRevertError` with the custom error
decoded (the contract's errors and the ledger's are both known to `errors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ledger.chain.client import ChainClient, TxResult
from ledger.chain.contract import BoundContract, as_bytes32
from ledger.chain.reverts import ErrorDecoder
from ledger.errors import ValidationError
from ledger.protocol.codes import PartState, VoucherEventKind
from ledger.protocol.hashchain import part_id_of

__all__ = [
    "MAX_SPLIT",
    "VOUCHERS_CONTRACT_NAME",
    "CreditLineState",
    "PartInfo",
    "VoucherContract",
    "VoucherState",
    "discount",
]

VOUCHERS_CONTRACT_NAME = "SupplyChainVouchers"
MAX_SPLIT = 100
"""Most pieces one `splitTransfer` creates (the contract's MAX_SPLIT)."""

_ZERO = "0x" + "00" * 32


@dataclass(frozen=True)
class VoucherState:
    core_org: str
    face_value: int
    settled: int
    maturity: int
    currency: str
    invoice_hash: str
    head: str


class PartInfo(NamedTuple):
    """A part as kept on chain (a tuple, so `(holder, remaining, state)` unpacks and compares)."""

    holder: str
    remaining: int
    state: PartState


@dataclass(frozen=True)
class CreditLineState:
    bank_org: str
    limit: int
    outstanding: int
    expiry: int
    terms_hash: str


def discount(face: int, rate_bps: int, seconds_to_maturity: int) -> tuple[int, int]:
    """(days, interest) exactly as the contract computes them at acceptance: days = whole days to maturity,
    a started day counting as one; interest = face × rate × days / 360, half up to the fen, at most face
    (贴现利息 = 票面金额 × 年贴现率 × 贴现天数 / 360)."""
    days = -(-seconds_to_maturity // 86_400)
    denominator = 10_000 * 360
    interest = min(face, (face * rate_bps * days + denominator // 2) // denominator)
    return min(days, 2**32 - 1), interest


def _currency(code: str) -> bytes:
    raw = code.encode("ascii")
    if len(raw) != 3:
        raise ValidationError(f"currency {code!r} is not a 3-letter ISO 4217 code", hint="e.g. CNY, USD")
    return raw


class VoucherContract(BoundContract):
    """A SupplyChainVouchers at `address`. `ledger_abi`, when given, lets its reverts decode too (the voucher
    contract only calls the ledger's views, which do not revert, so this is for completeness)."""

    def __init__(
        self,
        client: ChainClient,
        address: str,
        abi: Sequence[Mapping[str, Any]],
        *,
        ledger_abi: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(client, address, abi, kinds=VoucherEventKind)
        if ledger_abi:
            self.errors = ErrorDecoder([*self.abi, *ledger_abi])

    # ------------------------------------------------------------------ writes

    def set_credit_line(
        self, lender: LocalAccount, *, core_org: str, limit: int, expiry: int, terms_hash: str
    ) -> TxResult:
        return self.transact(
            lender, "setCreditLine", as_bytes32(core_org), int(limit), int(expiry), as_bytes32(terms_hash)
        )

    def issue_voucher(
        self,
        core: LocalAccount,
        *,
        voucher_id: str,
        holder: str,
        face_value: int,
        maturity: int,
        currency: str,
        invoice_hash: str,
    ) -> TxResult:
        """The core enterprise acknowledges a payable (确权): a voucher whose root part (1) `holder` holds."""
        return self.transact(
            core,
            "issueVoucher",
            as_bytes32(voucher_id),
            to_checksum_address(holder),
            int(face_value),
            int(maturity),
            _currency(currency),
            as_bytes32(invoice_hash),
        )

    def split_transfer(
        self, holder: LocalAccount, voucher_id: str, part_id: int, pieces: Sequence[tuple[str, int]]
    ) -> TxResult:
        """Split `part_id` into new parts, one per (recipient, amount); the part keeps the rest. The new
        parts' numbers are their PartTransferred heads' low 32 bits (`new_parts` lists them)."""
        return self.transact(
            holder,
            "splitTransfer",
            as_bytes32(voucher_id),
            int(part_id),
            [to_checksum_address(to) for to, _ in pieces],
            [int(amount) for _, amount in pieces],
        )

    @staticmethod
    def new_parts(result: TxResult) -> list[int]:
        """The numbers of the parts a split created, in order."""
        return [part_id_of(str(e.args["head"])) for e in result.events if e.name == "PartTransferred"]

    def request_financing(
        self, holder: LocalAccount, *, voucher_id: str, part_id: int, bank_org: str, discount_rate_bps: int
    ) -> TxResult:
        return self.transact(
            holder,
            "requestFinancing",
            as_bytes32(voucher_id),
            int(part_id),
            as_bytes32(bank_org),
            int(discount_rate_bps),
        )

    def accept_financing(
        self, lender: LocalAccount, *, voucher_id: str, part_id: int, payment_ref: str
    ) -> TxResult:
        return self.transact(
            lender, "acceptFinancing", as_bytes32(voucher_id), int(part_id), as_bytes32(payment_ref)
        )

    def settle(self, core: LocalAccount, *, voucher_id: str, part_id: int, payment_ref: str) -> TxResult:
        return self.transact(core, "settle", as_bytes32(voucher_id), int(part_id), as_bytes32(payment_ref))

    # ------------------------------------------------------------------ reads

    def ledger_address(self) -> str:
        return to_checksum_address(self.read("ledger")[0])

    def head_of(self, voucher_id: str, block: int | str = "latest") -> str:
        return "0x" + self.read("headOf", as_bytes32(voucher_id), block=block)[0].hex()

    def get_voucher(self, voucher_id: str, block: int | str = "latest") -> VoucherState:
        (v,) = self.read("getVoucher", as_bytes32(voucher_id), block=block)
        return VoucherState(
            core_org="0x" + v[0].hex(),
            face_value=v[1],
            settled=v[2],
            maturity=v[3],
            currency=v[4].decode("ascii"),
            invoice_hash="0x" + v[5].hex(),
            head="0x" + v[6].hex(),
        )

    def get_part(self, voucher_id: str, part_id: int, block: int | str = "latest") -> PartInfo:
        holder, remaining, state = self.read("getPart", as_bytes32(voucher_id), int(part_id), block=block)
        return PartInfo(to_checksum_address(holder), remaining, PartState(state))

    def financing_request_of(self, voucher_id: str, part_id: int) -> tuple[str, int]:
        """(bank org, rate in bps) a holder asked; the zero org when none is pending."""
        bank, rate = self.read("financingRequestOf", as_bytes32(voucher_id), int(part_id))
        return "0x" + bank.hex(), int(rate)

    def credit_line_of(self, core_org: str, block: int | str = "latest") -> CreditLineState:
        (line,) = self.read("creditLineOf", as_bytes32(core_org), block=block)
        return CreditLineState(
            bank_org="0x" + line[0].hex(),
            limit=line[1],
            outstanding=line[2],
            expiry=line[3],
            terms_hash="0x" + line[4].hex(),
        )

    def discount(self, face: int, rate_bps: int, seconds_to_maturity: int) -> tuple[int, int]:
        """The contract's own discount computation (a pure view), for checking `discount` against it."""
        days, interest = self.read("discount", int(face), int(rate_bps), int(seconds_to_maturity))
        return int(days), int(interest)
