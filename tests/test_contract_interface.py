"""The contract's interface as an outside implementer reads it: every ledger error and event documented in
NatSpec (what throws or emits it, and each argument), and ids typed (LoanId, LotId, OrgId) while the ABI
stays plain `bytes32`, so selectors, event topics and encodings are the ones every client already uses."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from ledger.chain.compiler import CompiledContract, load_contract

# Every argument, field and return value that carries an id, by name, and the id type it must have.
ID_TYPES = {
    "loanId": "LoanId",
    "lotId": "LotId",
    "fromLot": "LotId",
    "parentLotId": "LotId",
    "lotIds": "LotId[]",
    "orgId": "OrgId",
    "lenderOrg": "OrgId",
    "auditorOrg": "OrgId",
}

# A few selectors and topics as clients and mirrors computed them before the ids were typed.
KNOWN_SIGNATURES = {
    "openLoan(bytes32,address,bytes32,uint256,bytes3,uint32,uint40,bytes32)",
    "pay(bytes32,bytes32,address,uint256,uint8,bytes32)",
    "payBatch(bytes32,(bytes32,address,uint256,uint8,bytes32)[])",
    "getLoan(bytes32)",
    "Paid(bytes32,bytes32,address,bytes32,uint256,uint8,bool,bytes32)",
    "TrailAttested(bytes32,bytes32,bytes32,bytes32)",
    "LedgerLotNotFound(bytes32,bytes32)",
    "LedgerAccountAlreadyRegistered(address,bytes32)",
}


def _signature(entry: Mapping[str, Any]) -> str:
    def canonical(arg: Mapping[str, Any]) -> str:
        t = str(arg["type"])
        if t.startswith("tuple"):
            return "(" + ",".join(canonical(c) for c in arg["components"]) + ")" + t[5:]
        return t

    return f"{entry['name']}({','.join(canonical(i) for i in entry['inputs'])})"


def _args(abi: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named argument, return value and struct field in the ABI, with where it appears."""

    def walk(where: str, args: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        for arg in args:
            yield f"{where}.{arg['name']}", arg
            yield from walk(f"{where}.{arg['name']}", arg.get("components", []))

    for entry in abi:
        name = entry.get("name", entry["type"])
        yield from walk(name, entry.get("inputs", []))
        yield from walk(f"{name}->", entry.get("outputs", []))


# The interface's size, pinned: a new error or event must come with its NatSpec (this test) and be counted
# here. 31 errors / 46 entries before the post-loan file (+1 error, +1 event), servicing (+1, +2) and the
# collateral register's appraisals (+1 error, LedgerNotEngagedAppraiser).
ERRORS = 34
ENTRIES = 52


@pytest.fixture(scope="module")
def interface() -> CompiledContract:
    return load_contract("IFundFlowLedger")


def _doc(output: Mapping[str, Any], kind: str, signature: str) -> Mapping[str, Any]:
    """One error's or event's entry in solc's userdoc or devdoc (errors may be declared more than once)."""
    entry = output.get(f"{kind}s", {}).get(signature, {})
    return dict(entry[0] if isinstance(entry, list) else entry)


def test_every_ledger_error_and_event_has_a_notice_and_documents_each_argument(
    compiled: CompiledContract, interface: CompiledContract
) -> None:
    assert _undocumented(interface, compiled, ERRORS, ENTRIES) == []


def _undocumented(
    interface: CompiledContract, implementation: CompiledContract, errors: int, entries: int
) -> list[str]:
    """The interface's errors and events (`errors` and `entries` of them, pinned) whose NatSpec, in the
    implementation's compiler output, lacks a notice saying when they are thrown or emitted, or a @param."""
    output = json.loads(implementation.metadata)["output"]
    found = [e for e in interface.abi if e["type"] in ("error", "event")]
    assert len([e for e in found if e["type"] == "error"]) == errors and len(found) == entries
    undocumented = []
    for entry in found:
        kind, signature = entry["type"], _signature(entry)
        notice = _doc(output["userdoc"], kind, signature).get("notice", "")
        opening = "Thrown when " if kind == "error" else "Emitted when "
        if not notice.startswith(opening):
            undocumented.append(f"{signature}: notice {notice!r} does not start with {opening!r}")
        params = _doc(output["devdoc"], kind, signature).get("params", {})
        missing = [i["name"] for i in entry["inputs"] if not params.get(i["name"], "").strip()]
        if missing:
            undocumented.append(f"{signature}: no @param for {missing}")
    return undocumented


def test_ids_are_typed_in_the_source_and_plain_bytes32_in_the_abi(
    compiled: CompiledContract, interface: CompiledContract
) -> None:
    typed = [(where, arg) for where, arg in _args(compiled.abi) if arg["name"] in ID_TYPES]
    assert len(typed) > 50
    for where, arg in typed:
        expected = ID_TYPES[arg["name"]]
        plain = "bytes32[]" if expected.endswith("[]") else "bytes32"
        assert (arg["internalType"], arg["type"]) == (expected, plain), where
    # The interface and the implementation expose the same ABI, and the selectors and topics that clients
    # computed from bytes32 signatures are still in it.
    implemented = {_signature(e) for e in compiled.abi if "name" in e}
    assert {_signature(e) for e in interface.abi} <= implemented
    assert implemented >= KNOWN_SIGNATURES


# ------------------------------------------------------------------------ the voucher contract (issue 22)

# ISupplyChainVouchers' errors and events, pinned like the ledger's: a new one comes with its NatSpec.
VOUCHER_ERRORS = 28
VOUCHER_ENTRIES = 34


def test_every_voucher_error_and_event_has_a_notice_and_documents_each_argument() -> None:
    interface, implementation = load_contract("ISupplyChainVouchers"), load_contract("SupplyChainVouchers")
    assert _undocumented(interface, implementation, VOUCHER_ERRORS, VOUCHER_ENTRIES) == []


def test_the_voucher_contract_types_organisations_and_keeps_the_ledger_untouched(
    compiled: CompiledContract,
) -> None:
    interface, implementation = load_contract("ISupplyChainVouchers"), load_contract("SupplyChainVouchers")
    orgs = [(where, arg) for where, arg in _args(implementation.abi) if arg["name"] in ("coreOrg", "bankOrg")]
    assert len(orgs) > 8
    for where, arg in orgs:
        assert (arg["internalType"], arg["type"]) == ("OrgId", "bytes32"), where
    assert {_signature(e) for e in interface.abi} <= {
        _signature(e) for e in implementation.abi if "name" in e
    }
    # Voucher errors never share a name with the ledger's, so one decoder knows both (VoucherContract.errors).
    ledger_errors = {e["name"] for e in compiled.abi if e["type"] == "error"}
    assert not ledger_errors & {e["name"] for e in implementation.abi if e["type"] == "error"}
