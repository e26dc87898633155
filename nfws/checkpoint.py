"""Progress checkpoints of resumable jobs: one helper for every stage that checkpoints.

A checkpoint records the identity of the run that wrote it (config hash, members, seed,
format, the input files' fingerprint). A rerun resumes a checkpoint of the same identity;
one of another identity, or one that cannot be read, is set aside as ``<name>.stale`` and
the job starts afresh, saying so in its log. An edited config never blocks a rerun.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from nfws.store import load_torch, save_torch

log = logging.getLogger(__name__)


def input_fingerprint(paths: Iterable) -> str:
    """Short hash of the files under ``paths`` (relative name, size, mtime): it changes
    whenever an upstream job rewrites an input, and costs only a ``stat`` a file. Items may
    be paths or lists of paths."""
    digest = hashlib.sha256()
    for top in sorted(_flat_paths(paths)):
        if not top.exists():
            raise FileNotFoundError(f"{top}: input missing")
        files = [top] if top.is_file() else sorted(f for f in top.rglob("*") if f.is_file())
        for f in files:
            st = f.stat()
            digest.update(f"{top}|{f.relative_to(top) if f != top else ''}|{st.st_size}|"
                          f"{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def tensor_digest(tensors: Mapping) -> str:
    """Short hash of named tensors' values (e.g. a fit's starting weights)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _flat_paths(items) -> list[Path]:
    if isinstance(items, (str, os.PathLike)):
        return [Path(items)]
    return [p for item in items for p in _flat_paths(item)]


class Checkpoint:
    """The progress file of one job, tagged with ``identity`` (a JSON-able mapping)."""

    def __init__(self, path, identity: Mapping):
        self.path = Path(path)
        self.identity = json.loads(json.dumps(dict(identity), sort_keys=True))
        self.stale = self.path.with_name(self.path.name + ".stale")

    @classmethod
    def beside(cls, out_path, identity: Mapping) -> "Checkpoint":
        """The progress file of the job writing ``out_path``: ``<out_path>.progress.pt``."""
        return cls(Path(str(out_path) + ".progress.pt"), identity)

    def load(self, map_location="cpu") -> dict | None:
        """The saved state when the checkpoint is this run's, else ``None`` (a foreign or
        unreadable checkpoint is set aside, and the reason logged)."""
        if not self.path.exists():
            return None
        try:
            saved = load_torch(self.path, map_location=map_location)
            stored = json.loads(saved["identity"])
        except Exception as err:  # torch, pickle and json raise several types
            reason = f"cannot be read ({type(err).__name__}: {err})"
        else:
            differ = sorted(k for k in set(stored) | set(self.identity)
                            if stored.get(k) != self.identity.get(k))
            if not differ:
                log.info("%s: resuming a checkpoint of this run", self.path)
                return saved["state"]
            reason = "was written for a different " + ", ".join(
                f"{k} ({_short(stored.get(k))}; this job has {_short(self.identity.get(k))})"
                for k in differ)
        os.replace(self.path, self.stale)
        log.warning("%s: checkpoint %s; set aside as %s, starting afresh",
                    self.path, reason, self.stale.name)
        return None

    def save(self, state: Mapping) -> None:
        save_torch({"identity": json.dumps(self.identity, sort_keys=True), "state": dict(state)},
                   self.path)

    def clear(self) -> None:
        """Remove the checkpoint and any set-aside one: the job's output is written."""
        self.path.unlink(missing_ok=True)
        self.stale.unlink(missing_ok=True)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
