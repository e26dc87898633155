"""Imports go down the floors (function-local ones too): core, then the core layers (data,
fields, render, graphs), the shared evaluation, the NeRF farm, the tracks built on its NeRFs,
and on top the workflow's plan and the tools; tracks never import each other; the manifest
is below the object scanners that register with it; no import cycle between modules or
packages; no module over 400 lines."""
import ast
from pathlib import Path

import pytest

import nfws

PACKAGE = Path(nfws.__file__).parent
#: Floor of each nfws package (top-level modules not listed are core, floor 0).
FLOORS = {"data": 1, "fields": 1, "render": 1, "graphs": 1, "eval": 2, "farm": 3,
          "gmn": 4, "mlora": 4, "sane": 4, "plan": 5, "cli": 5, "bench": 5, "gpucheck": 5}
TRACKS = ("farm", "gmn", "mlora", "sane")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return ({node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             if node.module}
            | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names})


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
    packages: dict[str, set[str]] = {}
    for module, deps in graph.items():
        packages.setdefault(package_of(module), set()).update(
            package_of(d) for d in deps if package_of(d) != package_of(module))
    assert cycle(packages) == []


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def package_of(module: str) -> str:
    """``nfws.gmn.train`` -> ``gmn``; a top-level module is its own package."""
    return module.split(".")[1] if module.count(".") else module


def floor(module: str) -> int:
    return FLOORS.get(package_of(module), 0)


def test_floors_cover_every_package():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages - {"published"} <= set(FLOORS), sorted(packages - set(FLOORS))


def test_imports_only_point_down():
    upward = sorted(f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})"
                    for m, deps in import_graph().items() for d in deps
                    if floor(d) > floor(m))
    assert not upward, upward


def test_tracks_do_not_import_each_other_except_the_farm():
    """gmn, mlora and sane build on the farm's NeRFs; none of them imports another."""
    sideways = sorted(f"{m} imports {d}" for m, deps in import_graph().items() for d in deps
                      if floor(m) == floor(d) == 4 and package_of(m) != package_of(d))
    assert not sideways, sideways


def test_floor_checker_flags_a_hand_made_upward_import():
    assert floor("nfws.store") == 0 and floor("nfws.data.views") == 1
    assert floor("nfws.eval.classify") > floor("nfws.data.views")
    assert floor("nfws.gmn.train") > floor("nfws.farm.train") > floor("nfws.eval.tables")
    assert package_of("nfws.mlora.jobs") == "mlora" and package_of("nfws.store") == "store"
