"""What every pipeline script does first: log to the rule's log file, pin threads, seed.

Snakemake rules stay thin: a script calls :func:`script_setup` and then one library
function. Progress bars (tqdm writes to stderr) and warnings land in the rule's log.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed the global generators; library code also takes explicit generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def script_setup(smk, seed: int | None = None):
    """Redirect stdout/stderr to ``smk.log[0]``, set torch threads to ``smk.threads``."""
    log_path = smk.log[0] if len(smk.log) else None
    threads = max(1, int(getattr(smk, "threads", 1)))
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if seed is not None:
        seed_everything(seed)
    if log_path is None:
        yield
        return
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with open(log_path, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), \
            contextlib.redirect_stderr(fh):
        logging.basicConfig(stream=fh, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
        except BaseException:
            import traceback
            traceback.print_exc(file=fh)
            raise
