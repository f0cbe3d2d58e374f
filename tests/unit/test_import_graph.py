"""The package's import graph, computed from the AST, has no cycles.

Edges are the imports a module runs when it is loaded: top-level imports, not those
under ``if TYPE_CHECKING:`` nor those inside functions (deferred on purpose, e.g. an
optional driver). ``from pkg import name`` points at ``pkg.name`` when that is a module;
importing ``a.b.c`` also runs the package ``a.b`` first.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "agentmesh"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                todo.extend(handler.body)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_pkg else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                graph[name].update(_loaded_by(target, name, modules))
    return graph


def _loaded_by(target: str, importer: str, modules: dict[str, Path]) -> set[str]:
    """``target`` and the packages above it that loading it runs first (the root package
    and the importer's own packages are already loaded)."""
    parts = target.split(".")
    loaded = {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
    own = {importer.rsplit(".", i)[0] for i in range(importer.count("."))}
    return {m for m in loaded if m in modules and m != importer and m not in own}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_real() -> None:
    graph = import_graph()
    assert "agentmesh.store.audit_log" in graph["agentmesh.controlplane"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between the package's subpackages (``agentmesh.store`` ...)."""
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        here = ".".join(module.split(".")[:2])
        out.setdefault(here, set())
        for target in targets:
            there = ".".join(target.split(".")[:2])
            out.setdefault(there, set())
            if there != here:
                out[here].add(there)
    return out


def test_no_import_cycles_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_no_import_cycles_between_subpackages() -> None:
    # a layer imports only layers below it (domain <- adapters <- application <- entry points)
    assert cycles(package_graph(import_graph())) == []


def test_no_module_is_over_450_lines() -> None:
    # small modules with one clear job: a long one is split by role
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > 450
    }
    assert long == {}
