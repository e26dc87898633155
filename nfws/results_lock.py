"""One run at a time per results folder, whichever working directory it starts from.

Snakemake locks its working directory (``.snakemake/locks``); with ``results:`` an
absolute path, runs from two working directories would both write the same outputs.
The run's main process therefore holds an exclusive ``flock`` on
``<results>/.nfws-run.lock`` for the whole run; the file describes the holder (pid, host,
working directory, start time) in JSON. A second run is refused with that description.
A lock vanishes with its process, so a file left by a run that was killed is free: the
next run reports it as stale and replaces it.

The Snakefile takes the lock in ``onstart`` and releases it in ``onsuccess`` and
``onerror`` (and at exit). Snakemake calls none of them for dry runs, for jobs it spawns
(``--no-hooks``, also on SLURM nodes) or under ``--no-hooks``; ``--nolock`` turns this
lock off as well. The filesystem must support ``flock`` across the hosts that share it.
"""
from __future__ import annotations

import atexit
import datetime
import fcntl
import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".nfws-run.lock"


class ResultsInUse(RuntimeError):
    """Another live run holds the results folder."""


def describe(holder: dict) -> str:
    """``pid P on host H, working directory W, started T`` of a holder record."""
    if not holder:
        return "a run that has not described itself yet"
    if "unreadable" in holder:
        return f"unknown (lock file holds {holder['unreadable']!r})"
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, working directory "
            f"{holder.get('workdir')}, started {holder.get('started')}")


class ResultsLock:
    """The lock of one results folder, held by this process between acquire and release."""

    def __init__(self, results_dir):
        self.path = Path(results_dir).absolute() / LOCK_NAME
        self._handle = None

    def acquire(self) -> None:
        """Take the lock or raise ResultsInUse naming its holder; a stale file is reported."""
        if self._handle is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._open_locked()
        stale = _read_holder(handle)
        if stale:
            log.warning("%s: cleared the stale lock of a run that ended without releasing it "
                        "(%s)", self.path, describe(stale))
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "workdir": os.getcwd(),
                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        self._handle = handle
        atexit.register(self.release)

    def release(self) -> None:
        """Remove the lock file and unlock (nothing when not held)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        atexit.unregister(self.release)
        if _same_file(handle, self.path):
            self.path.unlink()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    def _open_locked(self):
        """The lock file, opened and flocked; retried when a releasing run removed it
        between our open and our lock (we would hold a file nobody else sees)."""
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(handle)
                handle.close()
                raise ResultsInUse(
                    f"results folder {self.path.parent} is in use by another run: "
                    f"{describe(holder)} (lock file {self.path}); wait for it to finish or "
                    "give this run other `results:`") from None
            except OSError as err:
                handle.close()
                raise OSError(f"{self.path}: cannot lock the results folder ({err}); its "
                              "filesystem must support flock") from err
            if _same_file(handle, self.path):
                return handle
            handle.close()


def _same_file(handle, path: Path) -> bool:
    """Whether ``path`` still names the open file ``handle``."""
    try:
        named, held = os.stat(path), os.fstat(handle.fileno())
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _read_holder(handle) -> dict:
    """The holder record in the lock file ({} when empty or unreadable)."""
    handle.seek(0)
    text = handle.read()
    try:
        holder = json.loads(text or "{}")
    except json.JSONDecodeError:
        holder = None
    return holder if isinstance(holder, dict) else {"unreadable": text[:200]}
