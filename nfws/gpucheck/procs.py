"""Child processes of the check: output into a log file, stopped with their children
(a compiler, Snakemake's jobs) when they run past their time."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def run_logged(cmd: list[str], log_path: Path, timeout: float, cwd=None,
               env: dict | None = None) -> tuple[int | None, float]:
    """Run ``cmd`` with stdout and stderr into ``log_path``; ``(exit code, seconds)``, the
    code ``None`` when it ran past ``timeout`` seconds and was killed."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(map(str, cmd)) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            code = proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
            log.write(f"\n[killed after {timeout:.0f} s]\n")
    return code, time.perf_counter() - start


def tail(path: Path, n_chars: int = 2000) -> str:
    """The last ``n_chars`` characters of a text file ('' if it is missing)."""
    if not path.is_file():
        return ""
    return path.read_text(errors="replace")[-n_chars:]
