"""Device choice and the local GPU slot allocator.

On a multi-GPU box Snakemake only counts GPUs (``--resources gpu=4``); it does not say
*which* GPU a job may use. Each job therefore takes an exclusive ``flock`` on one lock
file per GPU for its lifetime, so concurrent jobs land on distinct GPUs, and a job waits
while every GPU is held. Locks vanish with the process, so a killed job frees its slot.

torch is imported where it is used: the Snakefile reads this module for every run.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def pick_device(device=None) -> torch.device:
    """CUDA when available (or as asked), CPU otherwise."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def choose_device(cfg_device: str) -> torch.device:
    """``auto`` → CUDA when a GPU is visible else CPU; ``cuda`` fails loudly when absent.

    GPUs are counted without initialising CUDA (NVML), so a GPU slot can still be pinned
    through CUDA_VISIBLE_DEVICES afterwards.
    """
    import torch

    if cfg_device not in DEVICE_CHOICES:
        raise ValueError(f"config key device: must be one of {DEVICE_CHOICES}, got {cfg_device!r}")
    if cfg_device == "cpu":
        return torch.device("cpu")
    if visible_gpu_count() > 0:
        return torch.device("cuda")
    if cfg_device == "cuda":
        raise RuntimeError("config key device: 'cuda' requested but no CUDA device is available")
    return torch.device("cpu")


def visible_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def cuda_keys(config: dict, prefix: str = "") -> list[str]:
    """Dotted names of the config's ``device`` keys (any depth) set to ``cuda``."""
    keys = []
    for name, value in config.items():
        if isinstance(value, dict):
            keys += cuda_keys(value, f"{prefix}{name}.")
        elif name == "device" and value == "cuda":
            keys.append(f"{prefix}{name}")
    return keys


def check_config_devices(config: dict) -> None:
    """Fail when a ``device`` key asks for ``cuda`` and this machine has no CUDA device.

    Runs when the workflow is parsed, so ``snakemake -n`` fails too, before any job.
    ``check_device: false`` skips it where the jobs run on other machines than the one
    parsing the workflow (a SLURM login node without GPUs); each job still checks its own.
    """
    if not config["check_device"]:
        return
    keys = cuda_keys(config)
    if keys and visible_gpu_count() == 0:
        raise RuntimeError(
            f"config key {', '.join(keys)}: 'cuda' requested but this machine has no CUDA "
            "device; use 'auto' or 'cpu', or set check_device: false if the jobs run on "
            "other machines (e.g. GPU nodes of a SLURM cluster)")


@contextlib.contextmanager
def job_device(cfg_device: str, lock_dir):
    """The device of one pipeline job, held for the job's lifetime.

    A CUDA job takes a GPU slot (see :func:`gpu_slot`) before CUDA initialises, so the
    pinned GPU is the job's ``cuda:0``; a CPU job locks nothing.
    """
    import torch

    device = choose_device(cfg_device)
    if device.type != "cuda":
        yield device
        return
    if torch.cuda.is_initialized():
        raise RuntimeError("job_device: CUDA is already initialised in this process, so "
                           "CUDA_VISIBLE_DEVICES can no longer pin the job's GPU")
    with gpu_slot(lock_dir):
        yield torch.device("cuda", 0)


@contextlib.contextmanager
def gpu_slot(lock_dir, n_gpus: int | None = None, poll_seconds: float = 0.2):
    """Hold one free GPU for the duration of the block and yield its index.

    ``n_gpus`` defaults to the GPUs visible to this process (``None`` is yielded when
    there are none, and nothing is locked). While held, ``CUDA_VISIBLE_DEVICES`` names
    only the chosen GPU, so CUDA code inside the block sees it as device 0; the previous
    value is restored on exit.
    """
    n = visible_gpu_count() if n_gpus is None else int(n_gpus)
    if n < 0:
        raise ValueError(f"gpu_slot: n_gpus must be >= 0, got {n}")
    if n == 0:
        yield None
        return
    visible = _visible_ids(n)
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    handle, index = _acquire(lock_dir, visible, poll_seconds)
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[index]
    try:
        yield index
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _visible_ids(n: int) -> list[str]:
    """Physical GPU ids this process may use (respects an outer CUDA_VISIBLE_DEVICES)."""
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")
    if outer:
        ids = [s.strip() for s in outer.split(",") if s.strip()]
        if len(ids) < n:
            raise ValueError(f"gpu_slot: n_gpus={n} but CUDA_VISIBLE_DEVICES lists only {ids}")
        return ids[:n]
    return [str(i) for i in range(n)]


def _acquire(lock_dir: Path, visible: list[str], poll_seconds: float):
    """Poll the lock files (non-blocking flock) until one GPU is free."""
    while True:
        for index, gpu_id in enumerate(visible):
            handle = open(lock_dir / f"gpu{gpu_id}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return handle, index
        time.sleep(poll_seconds)
