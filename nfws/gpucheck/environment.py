"""Step 1: what the check runs on, and nerfacc's CUDA extension built (timed).

nerfacc 0.5.3 compiles its CUDA kernels on first use (torch's JIT, nvcc + ninja) into
``$TORCH_EXTENSIONS_DIR/nerfacc_cuda``. The check points that at an ignored folder of the
checkout (:func:`extensions_dir`), so a second run on the same machine loads the build
instead of compiling again. The build runs in a child process with a time limit; a lock
file left by a killed build (torch's JIT would wait on it for ever) is removed first.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

from nfws.gpucheck.procs import run_logged, tail
from nfws.gpucheck.report import Context
from nfws.gpucheck.sizes import REPO

#: (import name, distribution name); the check cannot run without the required ones
REQUIRED = (("torch", "torch"), ("nerfacc", "nerfacc"), ("torch_geometric", "torch-geometric"),
            ("snakemake", "snakemake"), ("zarr", "zarr"), ("numcodecs", "numcodecs"),
            ("pytest", "pytest"))
OPTIONAL = (("tinycudann", "tinycudann"),)
#: the longest the extension build may take
BUILD_SECONDS = 420
LOAD_NERFACC = ("import sys\nfrom nerfacc.cuda._backend import _C\n"
                "sys.exit(0 if _C is not None else 3)\n")


def extensions_dir() -> Path:
    """The checkout's ignored build folder for this Python and torch build."""
    cuda = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    return REPO / ".torch_extensions" / f"py{sys.version_info.major}{sys.version_info.minor}_{cuda}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # a broken install can raise anything on import
        return False
    return True


def _gpu(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    props = torch.cuda.get_device_properties(device)
    return {"gpu_name": props.name, "gpu_capability": f"{props.major}.{props.minor}",
            "gpu_memory_gib": props.total_memory / 2**30, "gpu_count": torch.cuda.device_count(),
            "cudnn": torch.backends.cudnn.version()}


def build_nerfacc(ctx: Context) -> dict:
    """Build (or load) nerfacc's CUDA extension in a child process, timed."""
    build_dir = Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "nerfacc_cuda"
    cached = any(build_dir.glob("*.so"))
    lock = build_dir / "lock"
    stale = lock.exists()
    if stale:
        lock.unlink()
    log = ctx.out / "nerfacc_build.log"
    code, seconds = run_logged([sys.executable, "-c", LOAD_NERFACC], log,
                               timeout=min(BUILD_SECONDS, ctx.budget.remaining()))
    return {"built": code == 0, "exit_code": code, "seconds": seconds, "cached_before": cached,
            "build_dir": str(build_dir), "stale_lock_removed": stale,
            "nvcc": shutil.which("nvcc"), "ninja": shutil.which("ninja"),
            "log_tail": "" if code == 0 else tail(log)}


def run(ctx: Context) -> dict:
    packages = {dist: _version(dist) for _, dist in REQUIRED + OPTIONAL}
    checks = {f"imports {module}": _imports(module) for module, _ in REQUIRED}
    nfws_dir = Path(importlib.import_module("nfws").__file__).parent
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "device": str(ctx.device), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), **_gpu(ctx.device), "packages": packages,
           "nfws_from": str(nfws_dir), "nfws_pip_installed": _version("nfws") is not None,
           "torch_extensions_dir": os.environ.get("TORCH_EXTENSIONS_DIR")}
    if ctx.device.type == "cuda":
        out["nerfacc_extension"] = build_nerfacc(ctx)
        checks["nerfacc CUDA extension builds and loads"] = out["nerfacc_extension"]["built"]
    ctx.log.info("environment: %s", {k: v for k, v in out.items() if k != "nerfacc_extension"})
    return {**out, "checks": checks}
