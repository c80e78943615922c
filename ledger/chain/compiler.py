"""Compile contracts/ with py-solc-x through scripts/solc-shim.js (solc-js), byte-for-byte like Hardhat.

No solc binary can be downloaded on these machines, so py-solc-x runs the Node shim as its `solc_binary`.
The runtime bytecode ends in a hash of the contract's metadata, which embeds every source unit name, the
sources' content hashes and the settings; so the standard-JSON input here mirrors what Hardhat puts in
`artifacts/build-info/*.json`: the same source unit names ("contracts/...", "@openzeppelin/contracts/..."),
the same settings (`SOLC_SETTINGS`, kept equal to hardhat.config.js), no remappings and no `metadata`
section (solc's defaults: ipfs bytecode hash, no literal content). tests/test_compiler.py holds the two
side by side.

Project sources are sent by content; their imports ("@openzeppelin/...") are resolved by the shim's import
callback from the project root and node_modules. Results are cached in `var/build/<key>.json`, where the key
hashes every source, the settings and the toolchain versions, so an unchanged tree compiles instantly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import solcx
import solcx.exceptions

from ledger.errors import CompilerError

__all__ = [
    "SOLC_SETTINGS",
    "SOLC_VERSION",
    "CompiledContract",
    "compile_contracts",
    "load_contract",
    "project_root",
    "shim_path",
]

log = logging.getLogger(__name__)

SOLC_VERSION = "0.8.28"

# Must equal `solidity.settings` in hardhat.config.js. Hardhat sends exactly these keys (plus its
# outputSelection, which does not affect the bytecode): no "metadata", no "remappings".
SOLC_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 1_000_000},
    "evmVersion": "cancun",
    "viaIR": True,
}

_OUTPUT_SELECTION: dict[str, Any] = {
    "*": {
        "*": [
            "abi",
            "evm.bytecode.object",
            "evm.deployedBytecode.object",
            "metadata",
            "storageLayout",
        ],
    },
}

# Bump when the cache file layout changes.
_CACHE_FORMAT = 1

_CONTRACTS_DIR = "contracts"

_LOCATION_RE = re.compile(r"-->\s*(?P<file>[^\n]+?):(?P<line>\d+):(?P<col>\d+):")


@dataclass(frozen=True)
class CompiledContract:
    """One compiled contract. Bytecode is 0x-prefixed hex ("0x" for interfaces and abstract contracts).

    `source_hash` is the build key: the sha256 of all sources, the settings and the toolchain versions; the
    deployer records it so a deployment can be matched to the code it came from.
    """

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_hash: str
    source_name: str = ""
    metadata: str = ""
    storage_layout: dict[str, Any] = field(default_factory=dict)

    @property
    def fully_qualified_name(self) -> str:
        """`source:Name`, the way Hardhat names an artifact."""
        return f"{self.source_name}:{self.name}"


def project_root() -> Path:
    """The repository root: where contracts/, scripts/ and node_modules/ live."""
    return Path(__file__).resolve().parents[2]


def shim_path() -> Path:
    """scripts/solc-shim.js, found relative to this package (never an absolute configured path)."""
    return project_root() / "scripts" / "solc-shim.js"


def _read_sources(root: Path) -> dict[str, str]:
    """Every .sol file under root/contracts, keyed by its Hardhat source unit name, content verbatim."""
    contracts_dir = root / _CONTRACTS_DIR
    if not contracts_dir.is_dir():
        raise CompilerError(
            f"No {_CONTRACTS_DIR}/ directory under {root}",
            hint="Run from the project root or pass the root that holds contracts/.",
        )
    sources: dict[str, str] = {}
    for path in sorted(contracts_dir.rglob("*.sol")):
        if not path.is_file():
            continue
        name = path.relative_to(root).as_posix()
        try:
            # Bytes, not text mode: newlines must reach solc untranslated or the metadata hash changes.
            sources[name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CompilerError(f"{name}: not valid UTF-8 ({exc})") from exc
    if not sources:
        raise CompilerError(
            f"No Solidity sources under {contracts_dir}",
            hint="Add .sol files to contracts/ (interfaces in contracts/interfaces/).",
        )
    return sources


def _package_version(node_modules: Path, package: str) -> str | None:
    try:
        data = json.loads((node_modules / package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version")
    return version if isinstance(version, str) else None


def _toolchain_fingerprint(root: Path) -> dict[str, Any]:
    """What besides the sources decides the output: the shim, solc-js and the imported npm packages."""
    tool_root = project_root()
    shim = shim_path()
    fingerprint: dict[str, Any] = {
        "shim": hashlib.sha256(shim.read_bytes()).hexdigest() if shim.is_file() else None,
        "solc": _package_version(tool_root / "node_modules", "solc"),
    }
    # The shim looks in root's node_modules before the project's own; both can supply imports.
    for where in dict.fromkeys([root.resolve(), tool_root]):
        fingerprint[f"openzeppelin@{where}"] = _package_version(
            where / "node_modules", "@openzeppelin/contracts"
        )
    return fingerprint


def _build_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": sources[name]} for name in sorted(sources)},
        "settings": {**SOLC_SETTINGS, "outputSelection": _OUTPUT_SELECTION},
    }


def _build_key(sources: dict[str, str], root: Path) -> str:
    material = {
        "format": _CACHE_FORMAT,
        "solc": SOLC_VERSION,
        "settings": SOLC_SETTINGS,
        "outputSelection": _OUTPUT_SELECTION,
        "sources": {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in sources.items()},
        "toolchain": _toolchain_fingerprint(root),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def _line_of(text: str | None, offset: int) -> int | None:
    if text is None or offset < 0:
        return None
    return text.count("\n", 0, offset) + 1


def _format_errors(errors: list[dict[str, Any]], sources: dict[str, str]) -> str:
    """solc's errors as `file:line: Type: message`, one a line."""
    lines: list[str] = []
    for err in errors:
        if err.get("severity") != "error":
            continue
        kind = err.get("type", "Error")
        message = err.get("message", "").strip()
        where = ""
        formatted = err.get("formattedMessage", "")
        match = _LOCATION_RE.search(formatted)
        if match:
            where = f"{match['file']}:{match['line']}: "
        elif loc := err.get("sourceLocation"):
            line = _line_of(sources.get(loc.get("file", "")), int(loc.get("start", -1)))
            where = f"{loc.get('file', '?')}:{line if line is not None else '?'}: "
        lines.append(f"{where}{kind}: {message}")
    return "\n".join(lines) if lines else "solc reported errors without messages"


def _compile_uncached(sources: dict[str, str], root: Path) -> dict[str, Any]:
    shim = shim_path()
    if not shim.is_file():
        raise CompilerError(f"The solc shim is missing at {shim}", hint="Restore scripts/solc-shim.js.")
    try:
        output: dict[str, Any] = solcx.compile_standard(
            _build_input(sources),
            base_path=root,
            allow_paths=[root, project_root()],
            solc_binary=shim,
        )
    except solcx.exceptions.SolcError as exc:
        if exc.error_dict:
            # Annotated as a dict upstream; it is solc's "errors" list.
            errors: list[dict[str, Any]] = list(exc.error_dict)
            raise CompilerError("Solidity compilation failed:\n" + _format_errors(errors, sources)) from exc
        raise CompilerError(
            f"The solc shim failed (exit {exc.return_code}): {(exc.stderr_data or '').strip()[:2000]}",
            hint="Run `npm ci` so node_modules/solc is installed, and check that `node` is on PATH.",
        ) from exc
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CompilerError(
            f"Could not run the solc shim {shim}: {exc}",
            hint="Install Node.js 20 and run `npm ci` in the project root.",
        ) from exc
    for warning in output.get("errors", []):
        log.debug("solc %s: %s", warning.get("severity"), warning.get("formattedMessage", "").strip())
    return output


def _extract(output: dict[str, Any], key: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for source_name in sorted(output.get("contracts", {})):
        for name, data in sorted(output["contracts"][source_name].items()):
            evm = data.get("evm", {})
            records.append(
                {
                    "name": name,
                    "abi": data.get("abi", []),
                    "bytecode": "0x" + evm.get("bytecode", {}).get("object", ""),
                    "deployed_bytecode": "0x" + evm.get("deployedBytecode", {}).get("object", ""),
                    "source_hash": key,
                    "source_name": source_name,
                    "metadata": data.get("metadata", ""),
                    "storage_layout": data.get("storageLayout") or {},
                }
            )
    return records


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> list[dict[str, Any]] | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("format") != _CACHE_FORMAT:
        return None
    contracts = payload.get("contracts")
    return contracts if isinstance(contracts, list) else None


def _by_name(records: list[dict[str, Any]]) -> dict[str, CompiledContract]:
    contracts = [CompiledContract(**record) for record in records]
    counts: dict[str, int] = {}
    for contract in contracts:
        counts[contract.name] = counts.get(contract.name, 0) + 1
    result: dict[str, CompiledContract] = {}
    for contract in contracts:
        # A name defined in two files is only reachable by its fully qualified name, as in Hardhat.
        key = contract.name if counts[contract.name] == 1 else contract.fully_qualified_name
        result[key] = contract
    return result


def compile_contracts(
    root: Path | None = None, *, cache_dir: Path | None = None
) -> dict[str, CompiledContract]:
    """Compile every contract under `root/contracts` (default: the project root), keyed by contract name.

    Includes the imported OpenZeppelin contracts. A name defined in more than one source file is keyed
    by its fully qualified name ("contracts/A.sol:Name") instead. Cached in `root/var/build` unless
    `cache_dir` says otherwise. Raises `CompilerError` with solc's errors as `file:line: message`.
    """
    root = (root or project_root()).resolve()
    sources = _read_sources(root)
    key = _build_key(sources, root)
    cache_file = (cache_dir or root / "var" / "build") / f"{key}.json"

    records = _read_cache(cache_file)
    if records is None:
        output = _compile_uncached(sources, root)
        records = _extract(output, key)
        _write_atomically(cache_file, {"format": _CACHE_FORMAT, "key": key, "contracts": records})
    return _by_name(records)


def load_contract(name: str, root: Path | None = None) -> CompiledContract:
    """One compiled contract by name (or "source:Name"); compiles or reads the cache as needed."""
    contracts = compile_contracts(root)
    if name in contracts:
        return contracts[name]
    for contract in contracts.values():
        if contract.fully_qualified_name == name:
            return contract
    ambiguous = sorted(c.fully_qualified_name for c in contracts.values() if c.name == name)
    if ambiguous:
        raise CompilerError(
            f"Contract name {name!r} is defined in several files: {', '.join(ambiguous)}",
            hint="Ask for it by its fully qualified name.",
        )
    project = sorted(c.name for c in contracts.values() if c.source_name.startswith(f"{_CONTRACTS_DIR}/"))
    raise CompilerError(
        f"No contract named {name!r} in {_CONTRACTS_DIR}/",
        hint=f"Known contracts: {', '.join(project) or 'none'}.",
    )
