"""Pausing freezes every ledger write and no read; cutting off a key (revokeRole, removeAccount) still works
while paused; unpausing restores every write."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    AUTHORIZED_CALLER,
    WRITE_CALLS,
    Scene,
    abi_functions,
    make_scene,
    make_world,
    reverts,
)

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import ENTERPRISE_ROLE, LENDER_ROLE, LoanStatus, as_bytes32

# Writes that stay available while paused: the ways to cut off a key, and unpausing itself.
NOT_PAUSABLE = {"revokeRole", "removeAccount", "renounceRole", "unpause"}
PAUSED_WRITES = sorted(set(WRITE_CALLS) - NOT_PAUSABLE)


@pytest.fixture(scope="module")
def paused_scene(client: ChainClient, compiled: CompiledContract) -> Scene:
    """One paused scene for the whole module: a refused write changes nothing, so tests can share it."""
    scene = make_scene(make_world(client, compiled))
    scene.ledger.pause(scene.cast.operator)
    return scene


def test_every_state_changing_function_is_either_paused_or_deliberately_not(
    compiled: CompiledContract,
) -> None:
    assert set(PAUSED_WRITES) | NOT_PAUSABLE == abi_functions(compiled.abi, views=False)


def test_pause_emits_paused_and_the_ledger_reports_it(scene: Scene) -> None:
    ledger, operator = scene.ledger, scene.cast.operator
    assert not ledger.paused()
    result = ledger.pause(operator)
    assert [(e.name, e.args) for e in result.events] == [("Paused", {"account": operator.address})]
    assert ledger.paused()


@pytest.mark.parametrize("function", PAUSED_WRITES)
def test_write_reverts_with_enforced_pause_while_paused(paused_scene: Scene, function: str) -> None:
    account = getattr(paused_scene.cast, AUTHORIZED_CALLER[function])
    head = paused_scene.ledger.head_of(paused_scene.loan_id)
    with reverts("EnforcedPause"):
        WRITE_CALLS[function](paused_scene, account)
    assert paused_scene.ledger.head_of(paused_scene.loan_id) == head


@pytest.mark.parametrize("function", PAUSED_WRITES)
def test_unpause_restores_write(client: ChainClient, compiled: CompiledContract, function: str) -> None:
    # The same call, by the same account, on the same kind of scene that refused it while paused.
    scene = make_scene(make_world(client, compiled))
    ledger, operator = scene.ledger, scene.cast.operator
    ledger.pause(operator)
    result = ledger.unpause(operator)
    assert [(e.name, e.args) for e in result.events] == [("Unpaused", {"account": operator.address})]
    assert not ledger.paused()
    account = getattr(scene.cast, AUTHORIZED_CALLER[function])
    assert WRITE_CALLS[function](scene, account).events


def test_revoke_role_still_works_while_paused_and_takes_effect(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.pause(cast.operator)
    event = ledger.revoke_role(cast.operator, ENTERPRISE_ROLE, cast.supplier.address).event("RoleRevoked")
    assert event.args["account"] == cast.supplier.address
    assert not ledger.has_role(ENTERPRISE_ROLE, cast.supplier.address)
    ledger.unpause(cast.operator)
    with reverts(
        "AccessControlUnauthorizedAccount", account=cast.supplier.address, neededRole=ENTERPRISE_ROLE
    ):
        WRITE_CALLS["pay"](scene, cast.supplier)


def test_remove_account_still_works_while_paused_and_takes_effect(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.pause(cast.operator)
    result = ledger.remove_account(cast.operator, cast.bank.address)
    assert [e.name for e in result.events] == ["RoleRevoked", "AccountRemoved"]
    assert ledger.organization_of(cast.bank.address) == "0x" + "00" * 32
    ledger.unpause(cast.operator)
    with reverts("AccessControlUnauthorizedAccount", account=cast.bank.address, neededRole=LENDER_ROLE):
        WRITE_CALLS["disburse"](scene, cast.bank)


def test_renounce_role_still_works_while_paused(scene: Scene) -> None:
    cast, ledger = scene.cast, scene.ledger
    ledger.pause(cast.operator)
    ledger.transact(cast.supplier2, "renounceRole", as_bytes32(ENTERPRISE_ROLE), cast.supplier2.address)
    assert not ledger.has_role(ENTERPRISE_ROLE, cast.supplier2.address)


# Arguments for every view of the ABI, given the paused scene; the expected answer is checked where the
# scene determines it, and every view must answer (not revert) while paused.
def _view_args(scene: Scene) -> dict[str, tuple[Any, ...]]:
    loan, lot = as_bytes32(scene.loan_id), as_bytes32(scene.lot)
    return {
        "headOf": (loan,),
        "getLoan": (loan,),
        "getLot": (loan, lot),
        "organizationOf": (scene.cast.bank.address,),
        "organizationExists": (as_bytes32(scene.cast.bank_org),),
        "hasRole": (as_bytes32(LENDER_ROLE), scene.cast.bank.address),
        "getRoleAdmin": (as_bytes32(LENDER_ROLE),),
        "paused": (),
        "supportsInterface": (bytes.fromhex("7965db0b"),),  # IAccessControl
        "DEFAULT_ADMIN_ROLE": (),
        "OPERATOR_ROLE": (),
        "LENDER_ROLE": (),
        "ENTERPRISE_ROLE": (),
        "AUDITOR_ROLE": (),
        "MAX_BATCH": (),
        "engagementOf": (loan, as_bytes32(scene.cast.bank_org)),
    }


VIEWS = [
    "headOf",
    "getLoan",
    "getLot",
    "organizationOf",
    "organizationExists",
    "hasRole",
    "getRoleAdmin",
    "paused",
    "supportsInterface",
    "DEFAULT_ADMIN_ROLE",
    "OPERATOR_ROLE",
    "LENDER_ROLE",
    "ENTERPRISE_ROLE",
    "AUDITOR_ROLE",
    "MAX_BATCH",
    "engagementOf",
]


def test_view_table_covers_every_view_of_the_abi(paused_scene: Scene, compiled: CompiledContract) -> None:
    assert set(VIEWS) == set(_view_args(paused_scene)) == abi_functions(compiled.abi, views=True)


@pytest.mark.parametrize("view", VIEWS)
def test_view_answers_while_paused(paused_scene: Scene, view: str) -> None:
    assert paused_scene.ledger.paused()
    answer = paused_scene.ledger.read(view, *_view_args(paused_scene)[view])
    assert len(answer) >= 1


def test_reads_while_paused_return_the_state_before_the_pause(paused_scene: Scene) -> None:
    ledger, cast = paused_scene.ledger, paused_scene.cast
    loan = ledger.get_loan(paused_scene.loan_id)
    assert (loan.status, loan.head) == (LoanStatus.OPEN, paused_scene.child_lot)
    assert ledger.head_of(paused_scene.loan_id) == paused_scene.child_lot
    assert ledger.get_lot(paused_scene.loan_id, paused_scene.child_lot).holder == cast.subsupplier.address
    assert ledger.organization_of(cast.bank.address) == cast.bank_org
    assert ledger.has_role(LENDER_ROLE, cast.bank.address)
    assert ledger.read("supportsInterface", bytes.fromhex("7965db0b")) == (True,)
    assert ledger.read("MAX_BATCH") == (500,)
