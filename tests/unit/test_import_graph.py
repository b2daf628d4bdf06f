"""The import graph of the code that ships: no cycles, and dependencies that point one way.

Read from the source with ``ast`` (nothing is imported), over the core (``tokenrelay``) and
both functions' packages (``tokenrelay_http``, ``tokenrelay_ws``) with their entry modules.
Every import counts, a lazy one inside a function too; only ``if TYPE_CHECKING:`` blocks are
left out, as they never run. docs/architecture.md draws the graph this test holds:

    functions (tokenrelay_http, tokenrelay_ws, the entry modules)  ->  tokenrelay (the core)

and inside the core, each feature package depends only on packages below it, never back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core" / "tokenrelay"
HTTP = ROOT / "functions" / "http"
WS = ROOT / "functions" / "websocket"
SOURCES = {CORE.parent: CORE, HTTP: HTTP / "tokenrelay_http", WS: WS / "tokenrelay_ws"}
ENTRY_MODULES = {"app", "handler", "connect", "message", "disconnect", "worker"}  # template handlers
NOT_SHIPPED = {"scripts", "tests"}


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for base, package in SOURCES.items():
        found.update({_module_name(path, base): path for path in package.rglob("*.py")})
    for folder in (HTTP, WS):
        found.update({path.stem: path for path in folder.glob("*.py")})
    return found


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from _imports(node)


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level:
        package = package[: len(package) - node.level + 1]
        target = ".".join([*package, node.module] if node.module else package)
    else:
        target = node.module or ""
    for alias in node.names:  # ``from pkg import submodule`` imports the submodule
        yield f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = {target for node in _imports(tree) for target in _targets(module, path, node)}
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), over known nodes."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _feature(module: str) -> str:
    """``tokenrelay.stream._run`` -> ``tokenrelay.stream``: the core's feature package (or module)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "tokenrelay" and len(parts) > 1 else parts[0]


def test_import_graph_reads_every_module_and_sees_the_core_used() -> None:
    # the walk itself works: it found the packages, and the functions' imports of the core
    assert {"tokenrelay.stream._run", "tokenrelay_http.channel", "tokenrelay_ws.worker", "app", "worker"} <= set(
        MODULES
    )
    assert {"tokenrelay", "tokenrelay.errors", "tokenrelay.protection"} <= GRAPH["tokenrelay_http.runs"]
    assert "tokenrelay_ws.worker" in GRAPH["worker"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_cycles_between_the_cores_feature_packages() -> None:
    # the package root (tokenrelay/__init__.py) re-exports the public names, and nothing in
    # the core imports it back: it is the top, not a hub
    features: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if module.startswith("tokenrelay.") or module == "tokenrelay":
            features.setdefault(_feature(module), set()).update(
                _feature(t) for t in targets if t.split(".")[0] == "tokenrelay" and _feature(t) != _feature(module)
            )
    assert len(features) > 10
    assert _cycles(features) == []
    assert not [m for m, targets in GRAPH.items() if m.startswith("tokenrelay.") and "tokenrelay" in targets]


def test_the_core_never_imports_the_functions_or_what_does_not_ship() -> None:
    outside = {"tokenrelay_http", "tokenrelay_ws"} | ENTRY_MODULES | NOT_SHIPPED
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if module.split(".")[0] == "tokenrelay"
        for target in targets
        if target.split(".")[0] in outside
    }
    assert not wrong


def test_the_two_functions_never_import_each_other_nor_scripts_or_tests() -> None:
    http = {m for m, p in MODULES.items() if p.is_relative_to(HTTP)}
    ws = {m for m, p in MODULES.items() if p.is_relative_to(WS)}
    wrong = {
        (module, target)
        for side, other in ((http, ws), (ws, http))
        for module in side
        for target in GRAPH[module]
        if target.split(".")[0] in NOT_SHIPPED
        or target in other
        or target.split(".")[0] in {o.split(".")[0] for o in other}
    }
    assert not wrong
