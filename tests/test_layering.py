"""Layers point one way inside the core: the lower packages never pull in the evaluation run, search or
Dagster, `metrics` is pure NumPy, and no two packages of `echo_pipeline` import each other round a loop.

Each import runs in a fresh interpreter, so what a package drags in is measured on its own, not on whatever
this test session happened to import before.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "echo_pipeline"

#: Packages below the evaluation run and search (docs: README "Architecture").
LOWER = ("metrics", "ingest", "masking", "reports", "tokenizers", "training")
#: What none of them may load: higher floors of the core, and the orchestration framework.
FORBIDDEN = ("echo_pipeline.evaluation", "echo_pipeline.search", "dagster")


def modules_loaded_by(module: str) -> list[str]:
    """`sys.modules` after importing `module` in a fresh interpreter started in this checkout."""
    code = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code, module], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("package", LOWER)
def test_lower_packages_do_not_pull_in_evaluation_search_or_dagster(package):
    loaded = modules_loaded_by(f"echo_pipeline.{package}")
    assert f"echo_pipeline.{package}" in loaded  # the probe really imported the package
    assert [m for m in loaded if within(m, FORBIDDEN)] == []


def test_metrics_are_pure_functions_over_arrays():
    loaded = modules_loaded_by("echo_pipeline.metrics")
    core = [m for m in loaded if within(m, ("echo_pipeline",))]
    assert sorted(set(core) - {"echo_pipeline", "echo_pipeline.errors"}) == sorted(
        m for m in core if within(m, ("echo_pipeline.metrics",)))
    assert [m for m in loaded if within(m, ("torch", "open_clip", "dagster"))] == []


def unit_of(module: str) -> str | None:
    """The core package (or top-level module) a dotted module name belongs to; None outside the core."""
    parts = module.split(".")
    if parts[0] != "echo_pipeline" or len(parts) < 2:
        return None
    return parts[1] if (CORE / parts[1]).is_dir() or (CORE / f"{parts[1]}.py").is_file() else None


def core_import_graph() -> dict[str, set[str]]:
    """unit → units it imports anywhere in its files (function-level imports included: they are edges too)."""
    graph: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE).parts
        if len(rel) == 1 and rel[0] == "__init__.py":
            continue  # the package root holds only the version
        unit = rel[0].removesuffix(".py")
        targets = graph.setdefault(unit, set())
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(t for t in map(unit_of, names) if t and t != unit)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import loop as [a, b, …, a], or [] when the graph has none (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (loop := visit(start)):
            return loop
    return []


def test_core_packages_import_each_other_without_cycles():
    graph = core_import_graph()
    assert {"metrics", "training", "evaluation", "tokenizers"} <= set(graph)  # the scan found the packages
    assert "metrics" in graph["training"] and "metrics" in graph["evaluation"]  # and their imports
    assert find_cycle(graph) == []


def test_the_cycle_finder_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
