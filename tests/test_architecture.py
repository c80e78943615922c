"""The layers of the house, checked on the code's own imports: a change that breaks one fails here, not in
review. `fundflow` (composition root, command line) sits on `api`, which sits on `ledger`; inside `ledger`,
`protocol` is pure and the parts import only downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> packages it must never import (directly or through `from X import`).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "ledger": ("api", "fundflow"),
    "api": ("fundflow",),
    "ledger.protocol": (
        "ledger.chain",
        "ledger.mirror",
        "ledger.store",
        "ledger.monitoring",
        "ledger.audit",
        "sqlalchemy",
        "sqlmodel",
        "web3",
    ),
    "ledger.chain": ("ledger.mirror", "ledger.monitoring", "ledger.audit", "ledger.store"),
    # The store (engines, lock, off-chain tables) sits under the mirror and the parts that read it; only
    # ledger.migrations knows every part's tables.
    "ledger.store": (
        "ledger.chain",
        "ledger.mirror",
        "ledger.monitoring",
        "ledger.audit",
        "ledger.migrations",
    ),
    "ledger.mirror": ("ledger.monitoring", "ledger.audit"),
    # The behaviour score reads the mirror, the store and the monitoring tables; only its simulator drives a
    # chain (ledger.scoring.simulator, checked below).
    "ledger.scoring": ("ledger.chain", "ledger.audit", "ledger.migrations"),
}


# (package, banned layer) -> the modules of the package allowed to import that layer all the same
ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("ledger.scoring", "ledger.chain"): ("ledger.scoring.simulator",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_from_the_layers_above_it(package: str) -> None:
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _sources(package)
        for line, name in _imports(path)
        if any(
            _inside(name, banned) and _module_name(path) not in ALLOWED.get((package, banned), ())
            for banned in FORBIDDEN[package]
        )
    ]
    assert violations == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rule above must be able to fail: a ledger module importing `api` in any of the three spellings is
    seen as importing it, and an import of a same-prefixed name (`apis`) is not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import api.app\nfrom api.services import Services\nfrom api import deps\nimport apis\n"
    )
    names = [name for _, name in _imports(sample)]
    flagged = [name for name in names if any(_inside(name, banned) for banned in FORBIDDEN["ledger"])]
    assert flagged == ["api.app", "api.services", "api"]


def test_no_api_route_module_imports_another_route_module() -> None:
    """Routes are thin: shared work lives in services, so no route (the dashboard included) calls another."""
    violations = []
    for path in _sources("api.routes"):
        me = _module_name(path)
        for line, name in _imports(path):
            if _inside(name, "api.routes") and name not in (me, "api.routes"):
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
        text = path.read_text()
        if "from api.routes import" in text and path.name != "__init__.py":
            violations.append(f"{path.relative_to(ROOT)} imports from the api.routes package")
    assert violations == []


def test_readers_reach_mirror_tables_only_through_the_read_model() -> None:
    """The API, the command line, monitoring's rules and audit read mirrored rows through
    `ledger.mirror.read.Mirror`; from the models they take only the public shapes (`...Public`, `...Base`),
    never a table to write SQL against."""
    import ledger.mirror.models as models

    tables = {
        name
        for name, obj in vars(models).items()
        if isinstance(obj, type) and getattr(obj, "__table__", None) is not None
    }
    assert {"Loan", "Lot", "Checkpoint", "Account"} <= tables  # the check sees the tables it guards
    violations = []
    for package in ("api", "fundflow", "ledger.audit", "ledger.monitoring"):
        for path in _sources(package):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "ledger.mirror.models":
                    violations += [
                        f"{path.relative_to(ROOT)}:{node.lineno} imports the table {alias.name}"
                        for alias in node.names
                        if alias.name in tables
                    ]
    assert violations == []
