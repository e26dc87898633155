"""Running the check's steps in order against a time budget, and its JSON record.

A step is a function ``step(ctx) -> dict`` of numbers; a key ``checks`` in it maps check
names to booleans, and the step passes when every one holds. A step that raises fails
(the traceback goes to the log and its last line to the JSON). A step whose estimated
minimum time exceeds what is left of the budget is not started and is recorded as
``skipped-for-budget``; one named in ``--skip`` as ``skipped``. The record is rewritten
(atomically) after every step, so a run killed midway leaves a valid, partial record.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from nfws.store import write_json

PASS, FAIL, SKIPPED, SKIPPED_FOR_BUDGET = "pass", "fail", "skipped", "skipped-for-budget"
#: seconds kept back from the budget for writing the record and the plots at the end
RESERVE_SECONDS = 5.0


class Budget:
    """Wall seconds left of ``total`` since construction."""

    def __init__(self, total: float):
        if total <= 0:
            raise ValueError(f"--budget-s must be > 0, got {total}")
        self.total, self._start = float(total), time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def remaining(self) -> float:
        return self.total - RESERVE_SECONDS - self.elapsed()

    def allows(self, seconds: float) -> bool:
        return self.remaining() >= seconds


@dataclass
class Context:
    """What every step gets: where to write, the device, its sizes, the budget, the log."""

    out: Path
    device: torch.device
    sizes: dict
    budget: Budget
    log: logging.Logger
    record: dict = field(default_factory=dict)


def run_steps(steps: list[tuple[str, Callable[[Context], dict]]], ctx: Context,
              skip: set[str], json_path: Path) -> list[dict]:
    """Run ``steps`` in order; returns (and keeps writing into ``ctx.record``) their results."""
    results = ctx.record.setdefault("steps", [])
    for name, step in steps:
        need = float(ctx.sizes["min_seconds"][name])
        entry = {"name": name, "status": None, "seconds": 0.0}
        if name in skip:
            entry.update(status=SKIPPED, reason="--skip")
        elif not ctx.budget.allows(need):
            entry.update(status=SKIPPED_FOR_BUDGET,
                         reason=f"needs about {need:.0f} s, {max(ctx.budget.remaining(), 0):.0f} s left")
        else:
            ctx.log.info("step %s: start (%.0f s left)", name, ctx.budget.remaining())
            start = time.perf_counter()
            try:
                numbers = step(ctx)
                checks = numbers.get("checks", {})
                entry.update(status=PASS if all(checks.values()) else FAIL, **numbers)
                if entry["status"] == FAIL:
                    entry["reason"] = "failed checks: " + ", ".join(k for k, v in checks.items() if not v)
            except Exception as err:  # a failing step is recorded, the next one still runs
                ctx.log.error("step %s raised:\n%s", name, traceback.format_exc())
                entry.update(status=FAIL, reason=f"{type(err).__name__}: {err}")
            entry["seconds"] = time.perf_counter() - start
        ctx.log.info("step %s: %s (%.1f s)%s", name, entry["status"], entry["seconds"],
                     f" — {entry['reason']}" if entry.get("reason") else "")
        results.append(entry)
        write_json(ctx.record, json_path)
        if ctx.device.type == "cuda":  # hand cached blocks back before the next step's children run
            torch.cuda.empty_cache()
    return results


def target(value, threshold: float, met: bool, required: bool, what: str) -> dict:
    """One target of the record: its value, threshold, whether it is met and required."""
    return {"value": value, "threshold": threshold, "met": bool(met), "required": required,
            "what": what}
