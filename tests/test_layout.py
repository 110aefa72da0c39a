"""The layout's promises, checked from the source: which package may import which.

Dependencies point one way: ``quanttrap`` (the composition root) → ``proxy`` → ``backends``,
``telemetry``, ``scoring`` → ``core``; ``grafana`` reads ``telemetry``'s and ``scoring``'s
names. No package imports one above it, and no two modules import each other (also not
through a chain), counting imports inside functions and under ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "quanttrap", "proxy", "backends", "telemetry", "scoring", "grafana", "bench")

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "scoring": {"core"},
    "backends": {"core"},
    "telemetry": {"core", "scoring"},
    "grafana": {"core", "scoring", "telemetry"},
    "proxy": {"core", "backends", "telemetry", "scoring"},
    "bench": {"core", "backends", "telemetry", "scoring"},
    "quanttrap": {"core", "proxy", "backends", "telemetry", "scoring", "grafana", "bench"},
}
"""What each package may import (besides itself)."""


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))  # fmt: skip
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(path, name, set(_modules())) for name, path in _modules().items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_below_themselves(package: str) -> None:
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED[package] | {package}
    }
    assert not wrong, f"{package} imports what it may not: {sorted(wrong)}"


def test_no_import_cycle_between_modules() -> None:
    # Submodules of a package importing their package's __init__ is not a cycle of concepts.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in GRAPH.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


_IO_MODULES = {"sqlite3", "socket", "threading", "subprocess", "argparse", "asyncio", "httpx"}


def test_scoring_maths_does_no_io() -> None:
    """Only ``scoring.io`` (the store, files, commands) may reach outside the process."""
    for module, path in _modules().items():
        if module.split(".")[0] != "scoring" or module.startswith("scoring.io"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(tree)
                                      if isinstance(n, ast.ImportFrom)}  # fmt: skip
        assert not names & _IO_MODULES, f"{module} imports {sorted(names & _IO_MODULES)}"
