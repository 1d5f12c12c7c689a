"""The import contract, read from the source with the package-dir map of pyproject.toml: the
layers (the events and their vocabulary ← projections ← adapters ← streams ← the composition
root) import only downwards, and no modules import each other in a circle, counting imports
made inside functions (a late import does not hide a cycle) and under TYPE_CHECKING."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tests.services import ROOT

# The modules of the root package that every layer may use: the event envelope and what it is
# made of, the settings record, the idempotency keys, metrics, retries and the receipt format.
BASE = {"agentstream.events", "agentstream.channel_specs", "agentstream.idempotency", "agentstream.settings",
        "agentstream.metrics", "agentstream.retry", "agentstream.receipt", "agentstream.logs", "agentstream.keys"}
LAYERS = ("base", "projections", "adapters", "streams", "root")  # bottom to top


def package_dirs() -> dict[str, Path]:
    """pyproject.toml's package-dir: each package and the folder that holds it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {package: ROOT / folder for package, folder in config["tool"]["setuptools"]["package-dir"].items()}


def modules() -> dict[str, Path]:
    """Every module of the installed package by its dotted name (the deepest folder mapping wins)."""
    dirs = sorted(package_dirs().items(), key=lambda kv: len(kv[1].parts), reverse=True)
    found: dict[str, Path] = {}
    for package, folder in dirs:
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts or any(str(path).startswith(f"{d}/") for p, d in dirs
                                                    if len(d.parts) > len(folder.parts) and p != package):
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            name = ".".join([package, *parts[:-1]] + ([] if parts[-1] == "__init__" else [parts[-1]]))
            found.setdefault(name, path)
    return found


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    if module == "agentstream.registry" or module.startswith("agentstream.projections"):
        return "projections"  # the registry lists the projections
    for name in ("adapters", "streams"):
        if module.startswith(f"agentstream.{name}"):
            return name
    return "root"


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(module imported, line) for every import of one of `known`, wherever in the file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                yield (target if target in known else node.module), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {t for t, _ in imports(p, known) if t in known and t != m} for m, p in known.items()}


def back_up(edges: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted(f"{m} ({layer(m)}) -> {t} ({layer(t)})" for m, targets in edges.items() for t in targets
                  if rank[layer(t)] > rank[layer(m)])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_folder_of_the_package_is_read() -> None:
    found = modules()
    for package in package_dirs():
        assert package in found or any(m.startswith(f"{package}.") for m in found), package
    assert {"agentstream.events", "agentstream.adapters.http.gateway", "agentstream.streams.worker",
            "agentstream.projections.conversation", "agentstream.wiring"} <= set(found)


def test_no_import_runs_back_up_a_layer() -> None:
    assert back_up(graph()) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert cycles(graph()) == []


def test_the_checks_catch_a_circle_and_an_import_back_up() -> None:
    edges = {"agentstream.projections.a": {"agentstream.adapters.b"}, "agentstream.adapters.b": {"agentstream.adapters.c"},
             "agentstream.adapters.c": {"agentstream.adapters.b"}}
    assert back_up(edges) == ["agentstream.projections.a (projections) -> agentstream.adapters.b (adapters)"]
    assert cycles(edges) == [["agentstream.adapters.b", "agentstream.adapters.c"]]
