"""The package's modules form no import cycle.

Module-level imports count, including those under ``if TYPE_CHECKING:``: a cycle there still ties
two modules together for a reader and for type checkers. Imports inside functions are the lazy
imports of optional dependencies and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vos_ros

PACKAGE_ROOT = Path(vos_ros.__file__).parent


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _module_level_imports(statements: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in statements:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            found += _module_level_imports(node.body) + _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            found += _module_level_imports(node.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports at module level."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif node.module and node.level == 0:
                for alias in node.names:  # `from pkg import module` names a module
                    child = f"{node.module}.{alias.name}"
                    deps.add(child if child in files else node.module)
        graph[name] = {dep for dep in deps if dep in files and dep != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "vos_ros.evaluation.clips" in graph  # the walk found the package's modules
    assert cycles(graph) == []


def test_clip_frames_do_not_depend_on_the_prompt_protocol() -> None:
    assert "vos_ros.evaluation.prompt_plan" not in import_graph()["vos_ros.evaluation.clips"]
