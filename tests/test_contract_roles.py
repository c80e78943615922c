"""The role matrix: every state-changing ledger function x every kind of participant.

Each cell is one test id (`<function>-<role>`). A cell that must succeed runs on a fresh scene and checks the
function's event; a cell that must be refused runs on a scene shared by the module (a refused call changes
nothing, which each such cell also checks) and asserts the exact custom error and its arguments.
"""

from __future__ import annotations

import pytest
from conftest import (
    AUTHORIZED_CALLER,
    WRITE_CALLS,
    Scene,
    abi_functions,
    h,
    make_scene,
    make_world,
    reverts,
)
from eth_account.signers.local import LocalAccount

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import AUDITOR_ROLE, ENTERPRISE_ROLE, LENDER_ROLE, OPERATOR_ROLE

# The roles of the matrix and who plays them in a scene (see conftest.make_scene): the loan belongs to
# Bank A (`bank`); `lot` is held by the supplier; `child_lot` was paid to the subsupplier.
ROLES: dict[str, str] = {
    "operator": "operator",
    "lender": "bank",  # lender of the loan's organisation
    "other_lender": "other_bank",  # lender of another bank
    "holder": "supplier",  # enterprise holding the lot being spent
    "non_holder": "supplier2",  # enterprise holding nothing in this loan
    "payee": "subsupplier",  # payee of the lot being confirmed or disputed
    "auditor": "auditor",
    "outsider": "outsider",  # registered, no role
    "stranger": "stranger",  # not registered
}

OK = "ok"
NEEDS_OPERATOR = "AccessControlUnauthorizedAccount:OPERATOR_ROLE"
NEEDS_LENDER = "AccessControlUnauthorizedAccount:LENDER_ROLE"
NEEDS_AUDITOR = "AccessControlUnauthorizedAccount:AUDITOR_ROLE"
NOT_LENDER = "LedgerNotLoanLender"
NOT_SPENDER = "LedgerNotLotSpender"
NOT_PAYEE = "LedgerNotLotPayee"
NOT_APPRAISER = "LedgerNotEngagedAppraiser"

_ADMIN = (OK, NEEDS_OPERATOR, NEEDS_OPERATOR, NEEDS_OPERATOR, NEEDS_OPERATOR, NEEDS_OPERATOR, NEEDS_OPERATOR,
          NEEDS_OPERATOR, NEEDS_OPERATOR)  # fmt: skip
_SERVICING = (NEEDS_LENDER, OK, NOT_LENDER, NEEDS_LENDER, NEEDS_LENDER, NEEDS_LENDER, NEEDS_LENDER,
              NEEDS_LENDER, NEEDS_LENDER)  # fmt: skip
_SPENDING = (NOT_SPENDER, OK, NOT_SPENDER, OK, NOT_SPENDER, NOT_SPENDER, NOT_SPENDER, NOT_SPENDER,
             NOT_SPENDER)  # fmt: skip
_CONFIRMING = (NOT_PAYEE, NOT_PAYEE, NOT_PAYEE, NOT_PAYEE, NOT_PAYEE, OK, NOT_PAYEE, NOT_PAYEE,
               NOT_PAYEE)  # fmt: skip

# Columns in ROLES order:
#   operator, lender, other_lender, holder, non_holder, payee, auditor, outsider, stranger
MATRIX: dict[str, tuple[str, ...]] = {
    "registerOrganization": _ADMIN,
    "addAccount": _ADMIN,
    "removeAccount": _ADMIN,
    "grantRole": _ADMIN,
    "revokeRole": _ADMIN,
    "pause": _ADMIN,
    "unpause": _ADMIN,
    # Any bank's lender opens loans for its own organisation.
    "openLoan": (
        NEEDS_LENDER,
        OK,
        OK,
        NEEDS_LENDER,
        NEEDS_LENDER,
        NEEDS_LENDER,
        NEEDS_LENDER,
        NEEDS_LENDER,
        NEEDS_LENDER,
    ),  # fmt: skip
    "disburse": _SERVICING,
    "pay": _SPENDING,
    "payBatch": _SPENDING,
    "confirmLot": _CONFIRMING,
    "disputeLot": _CONFIRMING,
    "repay": _SERVICING,
    "closeLoan": _SERVICING,
    "classify": _SERVICING,
    "valueCollateral": _SERVICING,
    "recordInspection": _SERVICING,
    "fileRecord": _SERVICING,
    "restructure": _SERVICING,
    "repayAllocated": _SERVICING,
    "changeTerms": _SERVICING,
    "attest": (
        NEEDS_AUDITOR,
        NEEDS_AUDITOR,
        NEEDS_AUDITOR,
        NEEDS_AUDITOR,
        NEEDS_AUDITOR,
        NEEDS_AUDITOR,
        OK,
        NEEDS_AUDITOR,
        NEEDS_AUDITOR,
    ),  # fmt: skip
    # Only an account of an organisation the loan's lender engaged as appraiser (the outsider's, here).
    "fileAppraisal": (NOT_APPRAISER,) * 7 + (OK, NOT_APPRAISER),
}

# The event a successful call emits (the proof that it did what it is for).
EVENT_OF: dict[str, str] = {
    "registerOrganization": "OrganizationRegistered",
    "addAccount": "AccountAdded",
    "removeAccount": "AccountRemoved",
    "grantRole": "RoleGranted",
    "revokeRole": "RoleRevoked",
    "pause": "Paused",
    "unpause": "Unpaused",
    "openLoan": "LoanOpened",
    "disburse": "Disbursed",
    "pay": "Paid",
    "payBatch": "Paid",
    "confirmLot": "LotConfirmed",
    "disputeLot": "LotDisputed",
    "repay": "Repaid",
    "closeLoan": "LoanClosed",
    "classify": "RiskClassified",
    "valueCollateral": "CollateralValued",
    "recordInspection": "InspectionRecorded",
    "fileRecord": "RecordFiled",
    "restructure": "LoanRestructured",
    "attest": "TrailAttested",
    "fileAppraisal": "RecordFiled",
    "repayAllocated": "RepaymentApplied",
    "changeTerms": "TermsChanged",
}

_ROLE_IDS = {"OPERATOR_ROLE": OPERATOR_ROLE, "LENDER_ROLE": LENDER_ROLE, "AUDITOR_ROLE": AUDITOR_ROLE}

CELLS = [(function, role) for function in MATRIX for role in ROLES]


def expected_error(outcome: str, scene: Scene, account: LocalAccount) -> tuple[str, dict[str, object]]:
    if outcome.startswith("AccessControlUnauthorizedAccount:"):
        role = _ROLE_IDS[outcome.split(":", 1)[1]]
        return "AccessControlUnauthorizedAccount", {"account": account.address, "neededRole": role}
    if outcome == NOT_LENDER:
        return NOT_LENDER, {"loanId": scene.loan_id, "account": account.address}
    if outcome == NOT_SPENDER:
        return NOT_SPENDER, {"lotId": scene.lot, "account": account.address}
    if outcome == NOT_APPRAISER:
        return NOT_APPRAISER, {"loanId": scene.loan_id, "account": account.address}
    if outcome == NOT_PAYEE:
        return NOT_PAYEE, {"lotId": scene.child_lot, "account": account.address}
    raise AssertionError(f"unknown outcome {outcome}")


@pytest.fixture(scope="module")
def shared_scene(client: ChainClient, compiled: CompiledContract) -> Scene:
    return make_scene(make_world(client, compiled))


@pytest.fixture(scope="module")
def shared_paused_scene(client: ChainClient, compiled: CompiledContract) -> Scene:
    scene = make_scene(make_world(client, compiled))
    scene.ledger.pause(scene.cast.operator)
    return scene


def test_matrix_covers_every_state_changing_function(compiled: CompiledContract) -> None:
    # renounceRole is self-service for every account; it has its own test below.
    assert set(MATRIX) == abi_functions(compiled.abi, views=False) - {"renounceRole"}
    assert set(MATRIX) == set(WRITE_CALLS) == set(EVENT_OF)
    assert all(len(row) == len(ROLES) for row in MATRIX.values())
    # The caller conftest uses for "the right account" is one the matrix lets through.
    for function, caller in AUTHORIZED_CALLER.items():
        role = next(r for r, attr in ROLES.items() if attr == caller)
        assert MATRIX[function][list(ROLES).index(role)] == OK, function


@pytest.mark.parametrize(("function", "role"), CELLS, ids=[f"{f}-{r}" for f, r in CELLS])
def test_write_succeeds_only_for_its_roles_and_refuses_everyone_else_with_exact_error(
    function: str,
    role: str,
    client: ChainClient,
    compiled: CompiledContract,
    request: pytest.FixtureRequest,
) -> None:
    outcome = MATRIX[function][list(ROLES).index(role)]
    call = WRITE_CALLS[function]
    if outcome == OK:
        scene = make_scene(make_world(client, compiled))
        if function == "unpause":
            scene.ledger.pause(scene.cast.operator)
        account = getattr(scene.cast, ROLES[role])
        result = call(scene, account)
        assert EVENT_OF[function] in [e.name for e in result.events]
        return
    fixture = "shared_paused_scene" if function == "unpause" else "shared_scene"
    scene = request.getfixturevalue(fixture)
    account = getattr(scene.cast, ROLES[role])
    head_before = scene.ledger.head_of(scene.loan_id)
    block_before = client.block_number()
    name, args = expected_error(outcome, scene, account)
    with reverts(name, **args):
        call(scene, account)
    assert scene.ledger.head_of(scene.loan_id) == head_before
    if function in NOT_ESTIMATED:
        # pay and payBatch carry a computed gas limit and are not estimated first (the write path's
        # speed), so a refused one is mined as a failed transaction: it may add a block, changing nothing.
        for number in range(block_before + 1, client.block_number() + 1):
            block = client.rpc("eth_getBlockByNumber", [hex(number), False])
            for tx in block["transactions"]:
                receipt = client.rpc("eth_getTransactionReceipt", [tx])
                assert receipt["status"] == "0x0" and receipt["logs"] == [], receipt
    else:
        assert client.block_number() == block_before  # refused before anything was sent


NOT_ESTIMATED = frozenset({"pay", "payBatch"})


def test_any_account_can_renounce_only_its_own_role(world) -> None:
    cast = world.cast
    with reverts("AccessControlBadConfirmation"):
        world.ledger.transact(
            cast.supplier, "renounceRole", bytes.fromhex(ENTERPRISE_ROLE[2:]), cast.supplier2.address
        )
    assert world.ledger.has_role(ENTERPRISE_ROLE, cast.supplier2.address)
    result = world.ledger.transact(
        cast.supplier, "renounceRole", bytes.fromhex(ENTERPRISE_ROLE[2:]), cast.supplier.address
    )
    assert result.event("RoleRevoked").args == {
        "role": ENTERPRISE_ROLE,
        "account": cast.supplier.address,
        "sender": cast.supplier.address,
    }
    assert not world.ledger.has_role(ENTERPRISE_ROLE, cast.supplier.address)


# ---------------------------------------------------------------- revocation takes effect at once


def test_supplier_whose_enterprise_role_is_revoked_cannot_spend_its_lot_but_the_lender_still_can(
    scene: Scene,
) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.revoke_role(cast.operator, ENTERPRISE_ROLE, cast.supplier.address)
    with reverts(
        "AccessControlUnauthorizedAccount", account=cast.supplier.address, neededRole=ENTERPRISE_ROLE
    ):
        WRITE_CALLS["pay"](scene, cast.supplier)
    with reverts(
        "AccessControlUnauthorizedAccount", account=cast.supplier.address, neededRole=ENTERPRISE_ROLE
    ):
        WRITE_CALLS["payBatch"](scene, cast.supplier)
    assert WRITE_CALLS["pay"](scene, cast.bank).event("Paid").args["payee"] == cast.supplier2.address
    assert WRITE_CALLS["pay"](scene, cast.bank2).event("Paid").args["payee"] == cast.supplier2.address
    assert ledger.get_lot(scene.loan_id, scene.lot).remaining == 400_000_00 - 100_000_00 - 2 * 1_000


def test_removed_supplier_cannot_spend_its_lot(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.remove_account(cast.operator, cast.supplier.address)
    with reverts(
        "AccessControlUnauthorizedAccount", account=cast.supplier.address, neededRole=ENTERPRISE_ROLE
    ):
        WRITE_CALLS["pay"](scene, cast.supplier)


def test_payee_whose_enterprise_role_is_revoked_cannot_confirm_or_dispute_its_lot(scene: Scene) -> None:
    # removeAccount promises that a compromised key can always be cut off; a cut-off payee key that could
    # still flip its lots between confirmed and disputed (the latest word stands) would break that promise.
    cast, ledger = scene.cast, scene.ledger
    ledger.revoke_role(cast.operator, ENTERPRISE_ROLE, cast.subsupplier.address)
    for function in ("confirmLot", "disputeLot"):
        with reverts(
            "AccessControlUnauthorizedAccount", account=cast.subsupplier.address, neededRole=ENTERPRISE_ROLE
        ):
            WRITE_CALLS[function](scene, cast.subsupplier)
    ledger.grant_role(cast.operator, ENTERPRISE_ROLE, cast.subsupplier.address)
    assert WRITE_CALLS["confirmLot"](scene, cast.subsupplier).event("LotConfirmed").args["lotId"] == (
        scene.child_lot
    )


def test_removed_payee_cannot_confirm_its_lot(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.remove_account(cast.operator, cast.subsupplier.address)
    with reverts(
        "AccessControlUnauthorizedAccount", account=cast.subsupplier.address, neededRole=ENTERPRISE_ROLE
    ):
        WRITE_CALLS["disputeLot"](scene, cast.subsupplier)


def test_lender_whose_role_is_revoked_cannot_service_the_loan_but_a_colleague_can(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.revoke_role(cast.operator, LENDER_ROLE, cast.bank.address)
    for function in ("disburse", "repay", "classify", "openLoan"):
        with reverts("AccessControlUnauthorizedAccount", account=cast.bank.address, neededRole=LENDER_ROLE):
            WRITE_CALLS[function](scene, cast.bank)
    # Spending a lot as the servicing lender also needs the role.
    with reverts("LedgerNotLotSpender", lotId=scene.lot, account=cast.bank.address):
        WRITE_CALLS["pay"](scene, cast.bank)
    assert WRITE_CALLS["disburse"](scene, cast.bank2).event("Disbursed").args["amount"] == 1_000


def test_revoked_auditor_cannot_attest(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.revoke_role(cast.operator, AUDITOR_ROLE, cast.auditor.address)
    with reverts("AccessControlUnauthorizedAccount", account=cast.auditor.address, neededRole=AUDITOR_ROLE):
        WRITE_CALLS["attest"](scene, cast.auditor)


def test_lender_moved_to_another_bank_services_only_loans_of_its_new_bank(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.remove_account(cast.operator, cast.bank2.address)
    assert not ledger.has_role(LENDER_ROLE, cast.bank2.address)
    ledger.add_account(cast.operator, cast.other_bank_org, cast.bank2.address)
    ledger.grant_role(cast.operator, LENDER_ROLE, cast.bank2.address)
    with reverts("LedgerNotLoanLender", loanId=scene.loan_id, account=cast.bank2.address):
        WRITE_CALLS["disburse"](scene, cast.bank2)
    with reverts("LedgerNotLotSpender", lotId=scene.lot, account=cast.bank2.address):
        WRITE_CALLS["pay"](scene, cast.bank2)
    opened = WRITE_CALLS["openLoan"](scene, cast.bank2).event("LoanOpened")
    assert opened.args["lenderOrg"] == cast.other_bank_org
    assert ledger.get_loan(h("loan:new")).lender_org == cast.other_bank_org
