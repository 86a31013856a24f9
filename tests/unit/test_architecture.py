"""The shape of the package, checked: one direction of imports, no cycles, one clock.

docs/architecture.md draws the layers; these tests keep the drawing true. The
import graph is read from the source with ``ast`` (every ``import`` and
``from … import``, at module level and inside functions alike, except those
under ``if TYPE_CHECKING:``, which only annotations see), so a lazy import
cannot hide a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import dk2020flow

PACKAGE_DIR = Path(dk2020flow.__file__).parent
ROOT = "dk2020flow"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {
    _module_name(path): path
    for path in sorted(PACKAGE_DIR.rglob("*.py"))
    if "_bundled" not in path.parts and "_migrations" not in path.parts
}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(nodes: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node below ``nodes``, skipping the bodies of ``if TYPE_CHECKING:``."""
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _walk(node.orelse)
            continue
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _walk([child])
            else:
                yield from ast.walk(child)


def _resolve(name: str) -> str | None:
    """The dk2020flow module ``name`` refers to (a module, else its nearest package)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(tree.body):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            # `from pkg import mod` imports the module pkg.mod when there is one (pkg
            # itself is then only the parent, run first by any import of a submodule);
            # `from pkg import name` imports pkg.
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            names = [name for name in submodules if name in MODULES]
            if len(names) < len(submodules):
                names.append(target)
        for name in names:
            if name == ROOT or name.startswith(ROOT + "."):
                resolved = _resolve(name)
                if resolved is not None and resolved != module:
                    found.add(resolved)
    return found


GRAPH: dict[str, set[str]] = {module: _imports(module) for module in MODULES}


def _cycles() -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_the_graph_is_read() -> None:
    # A guard against a parser that silently finds nothing.
    assert "dk2020flow.engine.decide" in GRAPH
    assert "dk2020flow.engine.machine" in GRAPH["dk2020flow.engine.decide"]
    assert len(MODULES) > 50


def test_there_is_no_import_cycle() -> None:
    assert _cycles() == []


# The layers, lowest first. A module may import its own layer and those listed
# for it; nothing imports upwards. `cli` is the top; `report` and `simulate` sit
# above the service and call it.
LOWER: dict[str, set[str]] = {
    "errors": set(),
    "localtime": set(),
    "clock": {"localtime"},
    "bundled": set(),
    "settings": {"errors"},
    "definition": {"errors", "localtime", "bundled"},
    "engine": {"definition", "errors", "localtime"},
    "store": {"engine", "definition", "errors", "localtime"},
    "notify": {"definition", "engine", "errors", "localtime", "settings"},
    "service": {
        "store",
        "engine",
        "definition",
        "notify",
        "clock",
        "settings",
        "errors",
        "localtime",
        "bundled",
        "report",
    },
    "report": {"store", "engine", "definition", "errors", "localtime", "clock"},
    "runtime": {"service", "notify", "clock", "settings", "errors", "localtime", "store"},
    "web": {
        "service",
        "runtime",
        "notify",
        "engine",
        "definition",
        "store",
        "report",
        "clock",
        "settings",
        "errors",
        "localtime",
        "bundled",
    },
    "simulate": {
        "service",
        "runtime",
        "notify",
        "engine",
        "definition",
        "store",
        "clock",
        "settings",
        "errors",
        "localtime",
        "bundled",
        "report",
    },
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _upward_imports() -> list[str]:
    wrong = []
    for module, imported in sorted(GRAPH.items()):
        layer = _layer(module)
        if layer not in LOWER:
            continue  # cli, __main__, the package itself: the top may import anything
        allowed = LOWER[layer] | {layer, ""}
        wrong.extend(
            f"{module} imports {target}"
            for target in sorted(imported)
            if _layer(target) not in allowed
        )
    return wrong


def test_imports_go_one_way() -> None:
    assert _upward_imports() == []


def test_only_the_service_opens_the_store() -> None:
    """Outside store/ and service/, the store is seen only through its records (store.port)."""
    allowed_layers = {"store", "service"}
    wrong = [
        f"{module} imports {target}"
        for module, imported in sorted(GRAPH.items())
        if _layer(module) not in allowed_layers
        for target in sorted(imported)
        if _layer(target) == "store" and target not in {"dk2020flow.store", "dk2020flow.store.port"}
    ]
    assert wrong == []


WALL_CLOCK = re.compile(
    r"\b(?:datetime|dt)\.(?:datetime\.)?(?:now|utcnow|today)\(|\bdate\.today\(|\btime\.time\("
)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_clock_reads_the_wall_clock(module: str) -> None:
    if module == "dk2020flow.clock":
        return
    text = MODULES[module].read_text(encoding="utf-8")
    hits = [
        f"{MODULES[module].name}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), 1)
        if WALL_CLOCK.search(line)
    ]
    assert hits == [], "read the time from a Clock (dk2020flow.clock), not the machine"


def test_the_wall_clock_pattern_finds_what_it_should() -> None:
    for line in (
        "now = dt.datetime.now(dt.UTC)",
        "datetime.now()",
        "dt.date.today()",
        "time.time()",
    ):
        assert WALL_CLOCK.search(line), line
    assert not WALL_CLOCK.search("clock.now()")
