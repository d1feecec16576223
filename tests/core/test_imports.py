"""No import cycles in anime_core, at module level or at run time, and no layer reaches up to the CLI.

Two graphs are checked. The module-level one: imports under ``if TYPE_CHECKING:`` never run, so
they are not edges; everything else at module level (in ``if``/``try``/``with`` blocks and class
bodies too) is. The run-time one adds the imports inside functions: a function-level import that
closes a cycle only postpones it, and hides the real dependency graph from a reader (issue 22).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anime_core


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package folder ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            found += _top_level_imports(node.orelse)
        else:
            for child in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, child, None)
                if isinstance(inner, list):
                    found += _top_level_imports(inner)
    return found


def _all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run: at module level and inside functions, not under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child)

    visit(tree)
    return found


def import_graph(root: Path, package: str, functions: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level (``functions``: also inside functions)."""
    modules = _modules(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        for node in _all_imports(tree) if functions else _top_level_imports(tree.body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from pkg import sub`` imports the submodule; ``from mod import attr`` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle_and_ignores_deferred_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n"
        "def f():\n    import pkg.b\n"
    )
    (pkg / "b.py").write_text("import pkg.a\n")
    (pkg / "sub" / "c.py").write_text("try:\n    from ..b import x\nexcept ImportError:\n    pass\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == set() and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.sub"] == {"pkg.sub.c"} and graph["pkg.sub.c"] == {"pkg.b"}
    assert find_cycle(graph) is None
    assert graph == import_graph(pkg, "pkg", functions=False)
    # at run time, the import inside f closes a -> b -> a; the one under TYPE_CHECKING never runs
    runtime = import_graph(pkg, "pkg", functions=True)
    assert runtime["pkg.a"] == {"pkg.b"} and find_cycle(runtime) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "a.py").write_text("class A:\n    from .sub import c\n")  # a -> sub.c -> b -> a
    assert find_cycle(import_graph(pkg, "pkg")) == ["pkg.a", "pkg.sub.c", "pkg.b", "pkg.a"]


def test_the_run_time_graph_sees_imports_nested_in_functions(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def __getattr__(name):\n    from pkg import api\n    return api\n")
    (pkg / "api.py").write_text("")
    (pkg / "b.py").write_text(
        "class C:\n    def m(self):\n        try:\n            from .api import x\n        except ImportError:\n"
        "            pass\n        def inner():\n            import pkg.c\n"
    )
    (pkg / "c.py").write_text("")
    graph = import_graph(pkg, "pkg", functions=True)
    assert graph["pkg"] == {"pkg.api"} and graph["pkg.b"] == {"pkg.api", "pkg.c"}
    assert import_graph(pkg, "pkg")["pkg.b"] == set()


@pytest.mark.parametrize("functions", [False, True], ids=["module level", "run time"])
def test_anime_core_has_no_import_cycle(functions):
    root = Path(anime_core.__file__).parent
    graph = import_graph(root, "anime_core", functions=functions)
    assert "anime_core.inference.pipeline" in graph and graph["anime_core"]  # the walk saw the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_nothing_outside_the_cli_imports_the_cli():
    """The CLI is a front end: the runner, the web app, metrics and the core never import it, even lazily."""
    root = Path(anime_core.__file__).parent
    graph = import_graph(root, "anime_core", functions=True)
    assert "anime_core.runner.translate" in graph["anime_core.cli.run"]  # the walk sees function-level imports
    def in_cli(module: str) -> bool:
        return module.split(".")[:2] == ["anime_core", "cli"]

    reaching = sorted(f"{name} imports {target}" for name, targets in graph.items() for target in targets
                      if in_cli(target) and not in_cli(name))
    assert reaching == []


def test_pipelines_do_not_reach_up_to_the_api_or_the_cli():
    """Layers: the CLI and ``anime_core.api`` use the pipelines, never the reverse (not even inside functions)."""
    root = Path(anime_core.__file__).parent
    for path in sorted((root / "inference").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("anime_core.api", "anime_core.cli")), f"{path.name} imports {name}"
