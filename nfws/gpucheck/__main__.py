"""``python -m nfws.gpucheck --out DIR [--device cuda|cpu] [--budget-s N] [--quick] [--skip STEP]``

The one-shot GPU check (docs/gpucheck.md): five steps in order, each timed, each passing
or failing on checks of its own, recorded in ``DIR/gpucheck.json`` (rewritten after every
step) beside ``DIR/gpucheck.log``, the steps' own logs and PNGs. Then the targets: on a GPU
they must be met, on the CPU (the dry run) they are reported only. Exits 0 when the run
passed (every step that was not ``--skip``-ped passed, and on a GPU every target is met).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import torch

from nfws.device import pick_device
from nfws.gpucheck import cuda_tests, environment, learners, nerf_farm, smoke_dag
from nfws.gpucheck.report import PASS, SKIPPED, Budget, Context, run_steps, target
from nfws.gpucheck.sizes import PROFILES
from nfws.jobenv import restart_with_malloc_env
from nfws.store import write_json

STEPS = [("environment", environment.run), ("cuda_tests", cuda_tests.run),
         ("nerf_farm", nerf_farm.run), ("learners", learners.run), ("smoke_dag", smoke_dag.run)]
#: seconds the run may take when --budget-s is not given (a GPU: what fits in 8 minutes
#: with the machine's start-up; the CPU dry run: its smoke DAG on two shared cores)
DEFAULT_BUDGET = {"cuda": 450, "cpu": 1800}
#: the GPU targets (on the CPU reported, not required)
MIN_RATIO, MAX_PSNR_LOSS, MIN_PEAK_FRACTION = 5.0, 0.3, 0.30


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nfws.gpucheck",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", type=Path, required=True, help="folder for the record, logs and PNGs")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="default: cuda when available, else cpu")
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"wall seconds for the whole run (default {DEFAULT_BUDGET})")
    parser.add_argument("--quick", action="store_true",
                        help="shrunken sizes (the dry run's unit test)")
    parser.add_argument("--skip", action="append", default=[], choices=[n for n, _ in STEPS],
                        help="a step not to run, recorded as skipped (repeatable)")
    return parser.parse_args(argv)


def targets(steps: list[dict], required: bool) -> dict:
    """The run's targets from its step results."""
    by_name = {s["name"]: s for s in steps}
    farm = by_name.get("nerf_farm", {})
    per_arch = farm.get("per_arch") or {}
    every_arch = bool(per_arch) and not farm.get("archs_skipped_for_budget")
    ratios = {n: r["ratio"] for n, r in per_arch.items()}
    deltas = {n: r["psnr_delta"] for n, r in per_arch.items()}
    fraction = farm.get("peak_fraction")
    return {
        "every_step_passes": target({s["name"]: s["status"] for s in steps}, PASS,
                                    all(s["status"] == PASS for s in steps), required,
                                    "every step ran and passed"),
        "batched_vs_one_at_a_time": target(
            {"ratio": ratios, "psnr_delta": deltas}, {"ratio": MIN_RATIO, "psnr_delta": -MAX_PSNR_LOSS},
            every_arch and all(r >= MIN_RATIO for r in ratios.values())
            and all(d >= -MAX_PSNR_LOSS for d in deltas.values()), required,
            f"every architecture: the farm >= {MIN_RATIO:g}x one-at-a-time NeRF-steps/s, its "
            f"median held-out PSNR at most {MAX_PSNR_LOSS} dB below"),
        "farm_mlp_peak_fraction": target(
            fraction, MIN_PEAK_FRACTION, fraction is not None and fraction >= MIN_PEAK_FRACTION,
            required, "the farm MLP's FLOP/s (mean over architectures) / a large bf16 matmul's"),
    }


def _logger(path: Path) -> logging.Logger:
    log = logging.getLogger("nfws.gpucheck")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in (logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def main(argv: list[str]) -> int:
    args = parse(argv)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(environment.extensions_dir()))
    # the farm runs under the allocator settings every pipeline job starts with
    restart_with_malloc_env("nfws.gpucheck", argv)
    device = pick_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    profile = "quick" if args.quick else device.type
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "gpucheck.json"
    log = _logger(args.out / "gpucheck.log")
    budget = Budget(args.budget_s or DEFAULT_BUDGET[device.type])
    record = {"command": ["python", "-m", "nfws.gpucheck", *argv], "device": str(device),
              "profile": profile, "budget_s": budget.total,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    ctx = Context(args.out, device, PROFILES[profile], budget, log, record)
    log.info("gpucheck on %s, profile %s, budget %.0f s", device, profile, budget.total)
    steps = run_steps(STEPS, ctx, set(args.skip), json_path)
    required = device.type == "cuda"
    record["targets"] = targets(steps, required)
    record["passed"] = all(s["status"] == PASS or (s["status"] == SKIPPED and not required)
                           for s in steps) and (not required or all(
                               t["met"] for t in record["targets"].values()))
    record["seconds"] = budget.elapsed()
    write_json(record, json_path)
    for s in steps:
        log.info("%-12s %-18s %6.1f s %s", s["name"], s["status"], s["seconds"], s.get("reason", ""))
    for name, t in record["targets"].items():
        log.info("target %-26s %s%s", name, "met" if t["met"] else "NOT met",
                 "" if t["required"] else " (not required here)")
    log.info("gpucheck %s in %.0f s: %s", "PASSED" if record["passed"] else "FAILED",
             record["seconds"], json_path)
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
