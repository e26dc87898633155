"""Imports go down the stack (function-local ones too): models below fit, fit below eval,
the manifest below the object scanners that register with it."""
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
