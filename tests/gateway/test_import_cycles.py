"""No module of the ``gateway`` package imports a module that leads back to itself.

The graph is read from the source with :mod:`ast`: every ``import`` and ``from ... import``,
at module level and inside functions or methods (a deferred import still ties the two modules
together; it only hides the cycle from the interpreter). Imports under ``if TYPE_CHECKING:``
are left out: they never run, they only name types for the checker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

PACKAGE_DIR = Path(gateway.__file__).resolve().parent
ROOT = PACKAGE_DIR.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    tree: ast.AST, *, type_checking: bool = False
) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, wherever it is; ``if TYPE_CHECKING`` bodies only if asked."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """``{module: {gateway modules it imports}}`` over the whole package."""
    paths = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in _import_nodes(tree, type_checking=type_checking):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = _resolve_from(node, name, path.name == "__init__.py")
            for alias in node.names:
                # ``from pkg import submodule`` imports the submodule; else the name is in pkg.
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def component_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph with each subpackage of gateway as one node (``gateway.campaigns``)."""

    def component(name: str) -> str:
        return ".".join(name.split(".")[:2])

    collapsed: dict[str, set[str]] = {component(n): set() for n in graph}
    for name, targets in graph.items():
        collapsed[component(name)].update(
            component(t) for t in targets if component(t) != component(name)
        )
    return collapsed


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_gateway_package_has_no_import_cycle() -> None:
    """No gateway module imports (at module level or in a function) one that leads back to it."""
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles among gateway modules:\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_two_components_import_each_other() -> None:
    """No cycle between components either (a subpackage such as gateway.campaigns is one node)."""
    cycles = find_cycles(component_graph(import_graph()))
    assert cycles == [], "import cycles among gateway components:\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_detector_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    """A cycle closed by an import inside a def is found; one under TYPE_CHECKING is not."""
    a = ast.parse("import b\n")
    b = ast.parse("def later():\n    from a import x\n")
    c = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n")
    assert [n.names[0].name for n in _import_nodes(a) if isinstance(n, ast.Import)] == ["b"]
    assert [n.module for n in _import_nodes(b) if isinstance(n, ast.ImportFrom)] == ["a"]
    assert [n for n in _import_nodes(c) if isinstance(n, ast.Import)] == []
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert find_cycles({"a": {"b"}, "b": set(), "c": {"a"}}) == []


def test_the_daemon_is_the_composition_root() -> None:
    """Nothing in the core imports gateway.daemon, not even for type hints: it is the top.

    ``gateway.testing`` is the one exception: it is the test harness plugin authors import, and
    it runs a real daemon, so it stands above the daemon as a second root that nothing in the
    runtime imports (checked here too).
    """
    graph = import_graph(type_checking=True)
    importers = sorted(
        name
        for name, targets in graph.items()
        if "gateway.daemon" in targets and not name.startswith("gateway.testing")
    )
    testing_importers = sorted(
        name
        for name, targets in graph.items()
        if not name.startswith("gateway.testing")
        and any(t.startswith("gateway.testing") for t in targets)
    )
    assert testing_importers == []
    assert importers == []
