"""``python -m nfws.bench NAME|all``: run benchmarks, print one JSON line each.

A benchmark is a module ``nfws.bench.<name>`` (``-`` in NAME read as ``_``) exposing
``run() -> dict`` with at least name, baseline, ours, unit and ratio.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import sys

import nfws.bench
from nfws.jobenv import restart_with_malloc_env

REQUIRED = ("name", "baseline", "ours", "unit", "ratio")


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(nfws.bench.__path__)
                  if not m.name.startswith("_"))


def run_one(name: str) -> dict:
    module_name = name.replace("-", "_")
    if module_name not in available():
        raise SystemExit(f"unknown benchmark {name!r}; available: {', '.join(available())} or all")
    module = importlib.import_module(f"nfws.bench.{module_name}")
    if not callable(getattr(module, "run", None)):
        raise SystemExit(f"nfws.bench.{module_name} has no run() function")
    result = module.run()
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        raise SystemExit(f"nfws.bench.{module_name}.run() result lacks {missing}")
    return result


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m nfws.bench NAME|all")
    # benchmarks run under the allocator settings every pipeline job starts with
    restart_with_malloc_env("nfws.bench", argv)
    names = available() if argv[0] == "all" else [argv[0]]
    for name in names:
        print(json.dumps(run_one(name)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
