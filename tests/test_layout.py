"""The library's layout rules, read from the source with `ast` (nothing here imports the package):
no import cycles between modules, no use of another module's underscore names, no module over
500 lines. Covers every module under tinyscale/ and baselines/.

The import graph: every ``import``/``from ... import`` anywhere in a module (inside functions
too, where imports that dodge a cycle at load time still make one), resolved to the module it
loads: ``from P import n`` is module ``P.n`` when ``n`` is a submodule, else ``P``; a package
means its ``__init__``. Imports under ``if TYPE_CHECKING:`` are left out: they never run, so
they cannot make a cycle.

A module importing one of its own enclosing packages without taking names from it (``import
tinyscale.x`` or ``from tinyscale import x`` inside tinyscale/x/y.py) is no edge: the package
has always started loading before its submodules, so this cannot close a cycle, while ``from
tinyscale.x import Name`` (a name the package's ``__init__`` defines or re-exports) can.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tinyscale", "baselines")
MAX_LINES = 500


@dataclass(frozen=True)
class Module:
    name: str  # dotted; a package's __init__ is the package's own name
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package a relative import in this module is relative to."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    takes_names: bool  # ``from target import a_name`` rather than the module object itself


def find_modules() -> dict[str, Module]:
    modules = {}
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = Module(name, path, is_package)
    return modules


def is_type_checking_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except what sits under ``if TYPE_CHECKING:`` (its else runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if is_type_checking_guard(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_edges(module: Module, tree: ast.AST, modules: dict[str, Module]) -> list[Edge]:
    edges = []
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    edges.append(Edge(module.name, alias.name, node.lineno, takes_names=False))
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:
                    edges.append(Edge(module.name, sub, node.lineno, takes_names=False))
                elif source in modules:
                    edges.append(Edge(module.name, source, node.lineno, takes_names=True))
    return edges


def counts(edge: Edge, modules: dict[str, Module]) -> bool:
    """False for a module importing an enclosing package object without its names (see above)."""
    encloses = modules[edge.target].is_package and edge.source.startswith(edge.target + ".")
    return edge.source != edge.target and not (encloses and not edge.takes_names)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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


def one_loop(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest path from the component's first module back to itself (breadth first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    return component


def module_aliases(module: Module, tree: ast.AST, modules: dict[str, Module]) -> dict[str, str]:
    """Local names bound to a module of ours: ``import a.b as x``, ``from a import b`` (b a module),
    and the top name ``import a.b`` binds."""
    aliases = {}
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    aliases[alias.asname] = alias.name
                elif not alias.asname and alias.name.split(".")[0] in modules:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    return aliases


def dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(module: Module, tree: ast.AST, modules: dict[str, Module]) -> list[str]:
    found = []
    where = module.path.relative_to(ROOT)
    for node in runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            if source in modules and source != module.name:
                for alias in node.names:
                    if is_private(alias.name):
                        found.append(f"{where}:{node.lineno}: from {source} import {alias.name}")
    aliases = module_aliases(module, tree, modules)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            base = dotted(node.value)
            if base is None or base.split(".")[0] not in aliases:
                continue
            head, _, rest = base.partition(".")
            target = aliases[head] + (f".{rest}" if rest else "")
            if target in modules and target != module.name:
                found.append(f"{where}:{node.lineno}: {base}.{node.attr} (private to {target})")
    return found


def parsed(modules: dict[str, Module]) -> dict[str, ast.AST]:
    return {name: ast.parse(m.path.read_text(encoding="utf-8"), filename=str(m.path)) for name, m in modules.items()}


def test_the_tree_is_found():
    modules = find_modules()
    assert {"tinyscale", "tinyscale.cli", "baselines"} <= set(modules) and len(modules) > 30


def test_no_import_cycles_between_modules():
    modules = find_modules()
    trees = parsed(modules)
    edges = [e for name, tree in trees.items() for e in import_edges(modules[name], tree, modules)
             if counts(e, modules)]
    graph: dict[str, set[str]] = {name: set() for name in modules}
    lines: dict[tuple[str, str], int] = {}
    for e in edges:
        graph[e.source].add(e.target)
        lines.setdefault((e.source, e.target), e.line)
    report = []
    for component in cycles(graph):
        loop = one_loop(graph, component)
        steps = "\n".join(f"      {a} -> {b}  ({modules[a].path.relative_to(ROOT)}:{lines[a, b]})"
                          for a, b in zip(loop, loop[1:]))
        report.append(f"  cycle among {', '.join(component)}; for example:\n{steps}")
    assert not report, "import cycles between modules:\n" + "\n".join(report)


def test_no_module_uses_another_modules_private_names():
    modules = find_modules()
    trees = parsed(modules)
    found = [use for name, tree in trees.items() for use in private_uses(modules[name], tree, modules)]
    assert not found, ("underscore names used outside their module (make them public if they are "
                       "needed there):\n  " + "\n  ".join(found))


def test_no_module_is_over_the_line_limit():
    over = sorted((len(m.path.read_text(encoding="utf-8").splitlines()), m.path.relative_to(ROOT))
                  for m in find_modules().values())
    over = [f"{path}: {n} lines" for n, path in over if n > MAX_LINES]
    assert not over, f"modules over {MAX_LINES} lines (split them):\n  " + "\n  ".join(reversed(over))


# ---------------------------------------------------------------- the checks, on made-up trees
def fake_modules(tmp_sources: dict[str, str]) -> tuple[dict[str, Module], dict[str, ast.AST]]:
    modules = {}
    for name, source in tmp_sources.items():
        is_package = name.endswith(".__init__")
        dotted_name = name.removesuffix(".__init__")
        path = ROOT / (name.replace(".", "/") + ".py")
        modules[dotted_name] = Module(dotted_name, path, is_package)
    trees = {m.removesuffix(".__init__"): ast.parse(src) for m, src in tmp_sources.items()}
    return modules, trees


def graph_of(modules, trees) -> dict[str, set[str]]:
    graph = {name: set() for name in modules}
    for name, tree in trees.items():
        for e in import_edges(modules[name], tree, modules):
            if counts(e, modules):
                graph[e.source].add(e.target)
    return graph


def test_the_cycle_check_sees_function_level_and_relative_imports():
    modules, trees = fake_modules({
        "pkg.__init__": "",
        "pkg.a": "def f():\n    from pkg.b import thing\n",
        "pkg.b": "from . import c\n",
        "pkg.c": "import pkg.a as a\n",
    })
    graph = graph_of(modules, trees)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert one_loop(graph, ["pkg.a", "pkg.b", "pkg.c"]) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_a_package_init_re_exporting_its_submodules_is_no_cycle_unless_they_take_its_names():
    sources = {
        "pkg.__init__": "from pkg.core import Table\nfrom pkg import helpers\n",
        "pkg.core": "import pkg\nfrom pkg import helpers\n",
        "pkg.helpers": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.core import Table\n",
    }
    modules, trees = fake_modules(sources)
    assert cycles(graph_of(modules, trees)) == []
    # Taking a name the package's __init__ re-exports closes the loop.
    modules, trees = fake_modules({**sources, "pkg.helpers": "from pkg import Table\n"})
    assert cycles(graph_of(modules, trees)) == [["pkg", "pkg.core", "pkg.helpers"]]


def test_the_private_name_check_sees_imports_and_attributes_but_not_dunders_or_self():
    modules, trees = fake_modules({
        "pkg.__init__": "",
        "pkg.a": "_hidden = 1\n__version__ = '1'\n",
        "pkg.b": ("from pkg.a import _hidden, __version__\n"
                  "import pkg.a as A\nfrom pkg import a\n"
                  "def f(self):\n    return A._hidden, a._hidden, self._x, a.__doc__\n"),
    })
    found = private_uses(modules["pkg.b"], trees["pkg.b"], modules)
    assert [f.split(": ", 1)[1] for f in found] == [
        "from pkg.a import _hidden", "A._hidden (private to pkg.a)", "a._hidden (private to pkg.a)"]
