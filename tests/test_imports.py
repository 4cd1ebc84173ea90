"""The package structure: no import circle anywhere, and every module importable on its own.

The layer order itself (lower layers never import higher ones) is import-linter's contract in
pyproject.toml, checked by `.ci/run` with `lint-imports` before the tests.
"""

from __future__ import annotations

import subprocess
import sys

import grimp

from tests.conftest import ROOT

PACKAGES = ("mfpi_deploy", "training")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), lazy imports included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_between_any_two_modules():
    graph = grimp.build_graph(*PACKAGES)
    assert len(graph.modules) > 50
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_circle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_every_module_imports_alone():
    """Each module in a fresh state of our packages (third-party modules stay loaded, for speed)."""
    graph = grimp.build_graph(*PACKAGES)
    modules = sorted(m for m in graph.modules if not m.endswith("__main__"))
    script = f"""
import importlib, sys, traceback
failed = []
for name in {modules!r}:
    for loaded in [m for m in sys.modules if m.split('.')[0] in {PACKAGES!r}]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ': ' + traceback.format_exc().splitlines()[-1])
print('\\n'.join(failed))
sys.exit(1 if failed else 0)
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
