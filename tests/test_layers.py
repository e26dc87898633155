"""Imports go down the stack (function-local ones too): models below fit, fit below eval,
the manifest below the object scanners that register with it; no import cycle between
modules or packages; no module over 400 lines."""
import ast
from pathlib import Path

import pytest

import nfws

PACKAGE = Path(nfws.__file__).parent
#: Package → the packages above it, which it must not import.
ABOVE = {"models": ("fit", "eval"), "fit": ("eval",)}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return ({node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             if node.module}
            | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names})


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_no_upward_import(package):
    upward = [f"{path.relative_to(PACKAGE.parent)} imports {module}"
              for path in sorted((PACKAGE / package).rglob("*.py"))
              for module in sorted(imported_modules(path))
              if any(module == f"nfws.{up}" or module.startswith(f"nfws.{up}.")
                     for up in ABOVE[package])]
    assert not upward, upward


def test_manifest_imports_no_scanner_module():
    scanners = {f"nfws.data.{m}" for m in ("images", "faces", "synthetic3d", "sources")}
    assert imported_modules(PACKAGE / "data" / "manifest.py").isdisjoint(scanners)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """nfws module → the nfws modules it imports (``from a import b`` counts a.b when it is
    a module)."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name, deps = module_name(path), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                deps |= {m for m in [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                         if m in modules}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
        graph[name] = deps - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a path [a, b, ..., a], or [] when it has none."""
    state: dict[str, int] = {}     # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_cycle_finder_on_hand_made_graphs():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "d"}, "b": set(), "d": {"d2"}, "d2": {"d"}}) == ["d", "d2", "d"]


def test_no_import_cycle_between_modules_or_packages():
    graph = import_graph()
    assert cycle(graph) == []
    top = lambda m: m.split(".")[1] if m.count(".") else m
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        packages.setdefault(top(module), set()).update(top(d) for d in deps if top(d) != top(module))
    assert cycle(packages) == []


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
