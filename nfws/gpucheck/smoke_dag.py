"""Step 5: the smoke DAG (tests/workflow/smoke.yaml, every rule) through Snakemake on this device.

On CUDA: ``device: cuda`` and ``--resources gpu=1``, so GPU jobs run one at a time, each
holding the GPU slot of ``gpu_lock_dir`` (a lock file per GPU appears there); on the CPU:
``device: cpu``. Runs in a temporary directory (the results are large and of no use after)
with every core, and is stopped when the budget runs out. Snakemake's output (with the logs
of failed jobs) goes to ``smoke_dag.log``.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from nfws.gpucheck.procs import run_logged, tail
from nfws.gpucheck.report import Context
from nfws.gpucheck.sizes import REPO

SMOKE_CONFIG = REPO / "tests" / "workflow" / "smoke.yaml"


def command(workdir: Path, device: str, cores: int) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--cores", str(cores), "all", "--configfile", str(SMOKE_CONFIG),
           "--config", f"device={device}"]
    return cmd + (["--resources", "gpu=1"] if device == "cuda" else [])


def run(ctx: Context) -> dict:
    log = ctx.out / "smoke_dag.log"
    device = ctx.device.type
    with tempfile.TemporaryDirectory(prefix="nfws-smoke-") as tmp:
        workdir = Path(tmp)
        code, seconds = run_logged(command(workdir, device, os.cpu_count() or 1), log,
                                   timeout=ctx.budget.remaining())
        results = workdir / "results"
        tables = sorted(p.name for p in (results / "tables").glob("*.csv"))
        locks = sorted(p.name for p in (results / ".gpu_locks").glob("*.lock"))
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log.read_text())
    checks = {"snakemake exits 0": code == 0, "tables written": bool(tables)}
    if device == "cuda":
        checks["GPU jobs took a GPU slot"] = bool(locks)
    return {"exit_code": code, "timed_out": code is None, "snakemake_seconds": seconds,
            "jobs": int(done[-1][1]) if done else None, "tables": len(tables), "gpu_locks": locks,
            "log_tail": "" if code == 0 else tail(log, 4000), "checks": checks}
