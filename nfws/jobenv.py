"""The environment every pipeline job starts with, set by the Snakefile before any job runs.

Kept free of heavy imports: the Snakefile (parsed again inside every SLURM job) reads it.
"""
from __future__ import annotations

import os
import sys

#: glibc returns blocks >= 32 MB to the OS on free, so a farm step's large activations
#: page-fault afresh every step (2.3x slower). These must be in the environment *before*
#: the Python process starts (set in the Snakefile, inherited by every job).
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}

#: The checkout's folder (the Snakefile's), set by the Snakefile: envs/nfws.post-deploy.sh
#: installs it into the conda environment of ``--sdm conda`` (Snakemake runs that script
#: with the environment of the Snakemake process).
WORKFLOW_DIR_ENV = "NFWS_WORKFLOW_DIR"


def malloc_env_active() -> bool:
    return all(os.environ.get(k) == v for k, v in MALLOC_ENV.items())


def restart_with_malloc_env(module: str, argv: list[str]) -> None:
    """Start this process again as ``python -m module *argv`` with :data:`MALLOC_ENV` unless
    it is set already (glibc reads it only at process start); returns only when it is."""
    if not malloc_env_active():
        os.execve(sys.executable, [sys.executable, "-m", module, *argv],
                  {**os.environ, **MALLOC_ENV})
