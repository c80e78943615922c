"""ledger.chain.compiler: py-solc-x through scripts/solc-shim.js must build exactly what Hardhat builds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import solcx
import solcx.wrapper

from ledger.chain.compiler import SOLC_VERSION, CompiledContract, compile_contracts, project_root, shim_path
from ledger.errors import CompilerError

REPO = project_root()

# Used when contracts/ has no sources yet, and always as a second, known case: it pulls OpenZeppelin in
# through the shim's import callback, which is where source unit names could drift from Hardhat's.
FIXTURE_CONTRACT = """\
// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @notice Toolchain fixture: a role-gated counter.
contract ToolchainFixture is AccessControl {
    bytes32 public constant WRITER_ROLE = keccak256("WRITER_ROLE");
    uint256 private _value;

    error ToolchainFixtureTooLarge(uint256 value, uint256 limit);

    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    function set(uint256 value) external onlyRole(WRITER_ROLE) {
        if (value > 1000) revert ToolchainFixtureTooLarge(value, 1000);
        _value = value;
    }
}
"""


def _repo_has_sources() -> bool:
    return any((REPO / "contracts").rglob("*.sol"))


def _make_project(tmp_path: Path, *, with_repo_contracts: bool) -> Path:
    """A throwaway copy of the project: contracts, Hardhat config, and the repo's node_modules linked in."""
    proj = tmp_path / "proj"
    contracts = proj / "contracts"
    contracts.mkdir(parents=True)
    if with_repo_contracts and _repo_has_sources():
        shutil.copytree(REPO / "contracts", contracts, dirs_exist_ok=True)
    else:
        (contracts / "ToolchainFixture.sol").write_text(FIXTURE_CONTRACT, encoding="utf-8")
    for name in ("hardhat.config.js", "package.json"):
        shutil.copy2(REPO / name, proj / name)
    (proj / "node_modules").symlink_to(REPO / "node_modules", target_is_directory=True)
    return proj


def _hardhat_compile(proj: Path) -> None:
    env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
    proc = subprocess.run(
        ["npx", "--no-install", "hardhat", "compile"],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"npx hardhat compile failed:\n{proc.stdout}\n{proc.stderr}"


def _hardhat_artifacts(proj: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    """Hardhat's artifacts for contracts/ sources, keyed by fully qualified name."""
    found: dict[str, tuple[dict[str, Any], Path]] = {}
    for path in sorted((proj / "artifacts" / "contracts").rglob("*.json")):
        if path.name.endswith(".dbg.json"):
            continue
        artifact = json.loads(path.read_text(encoding="utf-8"))
        found[f"{artifact['sourceName']}:{artifact['contractName']}"] = (artifact, path)
    return found


def _hardhat_metadata(artifact: dict[str, Any], artifact_path: Path) -> dict[str, Any]:
    dbg = json.loads(artifact_path.with_suffix(".dbg.json").read_text(encoding="utf-8"))
    build_info = json.loads((artifact_path.parent / dbg["buildInfo"]).read_text(encoding="utf-8"))
    metadata: dict[str, Any] = json.loads(
        build_info["output"]["contracts"][artifact["sourceName"]][artifact["contractName"]]["metadata"]
    )
    return metadata


def _explain_mismatch(name: str, hardhat_code: str, ours: CompiledContract, hh_meta: dict[str, Any]) -> str:
    """Say whether only the metadata hash differs and, if so, which metadata input differs."""
    ours_code = ours.deployed_bytecode
    if len(hardhat_code) < 6 or len(ours_code) < 6:
        return f"{name}: runtime bytecode differs (one side is empty)"
    # The runtime code ends with CBOR metadata (ipfs hash + solc version) and its 2-byte length.
    hh_cbor = int(hardhat_code[-4:], 16) * 2 + 4
    our_cbor = int(ours_code[-4:], 16) * 2 + 4
    if hardhat_code[:-hh_cbor] != ours_code[:-our_cbor]:
        return f"{name}: the code itself differs (not just the metadata hash): settings or compiler differ"
    our_meta = json.loads(ours.metadata)
    lines = [f"{name}: code equal except the metadata hash, so the metadata JSON differs:"]
    for key in ("compiler", "language", "settings"):
        if hh_meta.get(key) != our_meta.get(key):
            lines.append(
                f"  {key}: hardhat={hh_meta.get(key)!r}\n  {' ' * len(key)}  ours={our_meta.get(key)!r}"
            )
    hh_sources, our_sources = hh_meta.get("sources", {}), our_meta.get("sources", {})
    if set(hh_sources) != set(our_sources):
        lines.append(
            f"  source unit names: only hardhat={sorted(set(hh_sources) - set(our_sources))}, "
            f"only ours={sorted(set(our_sources) - set(hh_sources))}"
        )
    for source in sorted(set(hh_sources) & set(our_sources)):
        if hh_sources[source].get("keccak256") != our_sources[source].get("keccak256"):
            lines.append(f"  content of {source} differs (newlines? a different package version?)")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("with_repo_contracts", [True, False], ids=["repo-contracts", "fixture"])
def test_shim_compile_matches_hardhat_runtime_bytecode(tmp_path: Path, with_repo_contracts: bool) -> None:
    proj = _make_project(tmp_path, with_repo_contracts=with_repo_contracts)
    _hardhat_compile(proj)
    hardhat = _hardhat_artifacts(proj)
    ours = {c.fully_qualified_name: c for c in compile_contracts(proj).values()}
    ours_project = {fqn: c for fqn, c in ours.items() if c.source_name.startswith("contracts/")}

    assert hardhat, "Hardhat produced no artifacts for contracts/"
    assert sorted(ours_project) == sorted(hardhat)
    if not with_repo_contracts:
        fixture = ours_project["contracts/ToolchainFixture.sol:ToolchainFixture"]
        assert len(fixture.deployed_bytecode) > 1000, "fixture compiled to (almost) nothing"
        assert "@openzeppelin/contracts/access/AccessControl.sol" in json.loads(fixture.metadata)["sources"]

    problems = []
    for fqn, (artifact, path) in hardhat.items():
        mine = ours_project[fqn]
        if artifact["deployedBytecode"] != mine.deployed_bytecode:
            problems.append(
                _explain_mismatch(fqn, artifact["deployedBytecode"], mine, _hardhat_metadata(artifact, path))
            )
        elif artifact["bytecode"] != mine.bytecode:
            problems.append(f"{fqn}: runtime code equal but creation bytecode differs")
        assert artifact["abi"] == mine.abi, f"{fqn}: ABI differs"
    assert not problems, "\n".join(problems)


def test_second_compile_is_served_from_cache_without_running_solc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _make_project(tmp_path, with_repo_contracts=False)
    first = compile_contracts(proj)
    cache_files = list((proj / "var" / "build").glob("*.json"))
    assert len(cache_files) == 1
    assert cache_files[0].stem == first["ToolchainFixture"].source_hash

    def no_solc(*args: object, **kwargs: object) -> None:
        raise AssertionError("solc ran although the sources did not change")

    monkeypatch.setattr(solcx, "compile_standard", no_solc)
    assert compile_contracts(proj) == first

    # A changed source is a different build: the cache must not answer for it.
    fixture = proj / "contracts" / "ToolchainFixture.sol"
    fixture.write_text(FIXTURE_CONTRACT.replace("1000", "2000"), encoding="utf-8")
    with pytest.raises(AssertionError, match="solc ran"):
        compile_contracts(proj)


def test_syntax_error_raises_compiler_error_naming_file_and_line(tmp_path: Path) -> None:
    proj = _make_project(tmp_path, with_repo_contracts=False)
    broken = proj / "contracts" / "sub" / "Broken.sol"
    broken.parent.mkdir()
    broken.write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity 0.8.28;\n\ncontract Broken {\n"
        "    function f() external pure returns (uint256) {\n        return 1\n    }\n}\n",
        encoding="utf-8",
    )

    with pytest.raises(CompilerError) as excinfo:
        compile_contracts(proj)

    message = str(excinfo.value)
    assert re.search(
        r"^contracts/sub/Broken\.sol:7: ParserError: Expected ';' but got '}'$", message, re.M
    ), message
    assert not list((proj / "var" / "build").glob("*.json")), "a failed build must not be cached"


def test_unresolvable_import_raises_compiler_error_naming_the_import(tmp_path: Path) -> None:
    proj = _make_project(tmp_path, with_repo_contracts=False)
    (proj / "contracts" / "Orphan.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity 0.8.28;\n\n"
        'import {Nope} from "@nowhere/Nope.sol";\n',
        encoding="utf-8",
    )

    with pytest.raises(CompilerError, match=r"contracts/Orphan\.sol:4: .*@nowhere/Nope\.sol"):
        compile_contracts(proj)


def test_shim_reports_the_npm_solc_version_to_py_solc_x() -> None:
    shim = shim_path()
    assert os.access(shim, os.X_OK), "scripts/solc-shim.js must be executable"
    banner = subprocess.run(
        [str(shim), "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout

    assert re.fullmatch(
        rf"solc, the solidity compiler commandline interface\nVersion: {re.escape(SOLC_VERSION)}"
        r"\+commit\.[0-9a-f]{8}\.Emscripten\.clang\n",
        banner,
    ), banner
    assert str(solcx.wrapper.get_solc_version(shim)) == SOLC_VERSION
