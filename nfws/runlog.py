"""What every pipeline script does first: log to the rule's log file, pin threads, seed.

Snakemake rules stay thin: a script calls :func:`script_setup` and then one library
function. Progress bars (tqdm writes to stderr) and warnings land in the rule's log, which
ends with one :data:`USAGE_MARK` line: the job's wall and CPU seconds and peak memory,
measured from inside the job (``nfws.jobusage`` sums them per rule).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import resource
import time

import numpy as np
import torch

USAGE_MARK = "nfws job usage: "
_IMPORTED = time.monotonic()


def process_age() -> float:
    """Seconds since this process started (imports included); since this module was
    imported where ``/proc`` is missing."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def job_usage() -> dict:
    """Wall seconds, CPU seconds (user + system, this process and its children) and peak
    resident memory (MB, the larger of the process and its largest child) so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return {"wall_s": round(process_age(), 2), "cpu_s": round(cpu, 2),
            "max_rss_mb": round(max(own.ru_maxrss, children.ru_maxrss) / 1024, 1)}


def seed_everything(seed: int) -> None:
    """Seed the global generators; library code also takes explicit generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def script_setup(smk, seed: int | None = None):
    """Redirect stdout/stderr to ``smk.log[0]``, set torch threads to ``smk.threads``; the
    log's last line is the job's usage (:data:`USAGE_MARK`), on success and on failure."""
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
        status = "failed"
        try:
            yield
            status = "ok"
        except BaseException:
            import traceback
            traceback.print_exc(file=fh)
            raise
        finally:
            wildcards = getattr(smk, "wildcards", None)
            usage = {"rule": getattr(smk, "rule", None),
                     "wildcards": dict(wildcards.items()) if wildcards is not None else {},
                     **job_usage(), "status": status}
            print(USAGE_MARK + json.dumps(usage), file=fh, flush=True)
