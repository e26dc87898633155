"""Paths named inside data files, kept inside the folder they belong to.

A data file that names other files (an nf2vec transforms file's frames, a labels CSV's
``file`` column) is resolved against its folder with symlinks followed; an entry that
lands outside (``../other_object/...``, an absolute path, a symlink into another object)
is an error naming the data file and the entry, so one object's files never stand in for
another's.
"""
from __future__ import annotations

from pathlib import Path


def confined(entry, folder, where) -> Path:
    """``folder / entry`` resolved (symlinks followed), which must lie inside ``folder``
    (resolved too); ``where`` names the data file and the field for the error."""
    folder = Path(folder).resolve()
    path = (folder / entry).resolve()
    if not path.is_relative_to(folder):
        raise ValueError(f"{where}: {str(entry)!r} resolves to {path}, outside {folder}")
    return path
