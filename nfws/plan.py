"""How the pipeline fans out, for the Snakemake rules: which objects each architecture's
NeRFs cover, in which shards, and the tracks' config helpers the rules need.

Pure functions over the manifest and the config. ``workflow/rules/common.smk`` imports
from this module alone; it sits above the tracks (:mod:`nfws.gmn.config`,
:mod:`nfws.mlora.config`), whose jobs read the same helpers, so the rule graph and the
jobs agree on every shard's members and every job's config.
"""
from __future__ import annotations

import pandas as pd

from nfws.data.manifest import read_manifest
from nfws.fields.spec import ArchSpec
from nfws.gmn.config import BASELINE_METHODS, family_archs, training_archs
from nfws.mlora.config import ABLATION, base_config, fit_config, variant_kind

__all__ = ["ABLATION", "BASELINE_METHODS", "arch_bbox", "arch_names", "arch_objects",
           "arch_splits", "base_config", "family_archs", "fit_config", "read_manifest",
           "shard_members", "training_archs", "variant_kind"]


def arch_bbox(name: str, arch_cfg: dict) -> float:
    """The NeRF box half-size of the architecture ``name`` configured by ``arch_cfg``."""
    return ArchSpec.from_dict(name, arch_cfg).bbox


def arch_names(nerf_cfg: dict) -> list[str]:
    """Training architectures first, then the unseen ones, each once."""
    names = list(nerf_cfg["train_archs"]) + list(nerf_cfg.get("unseen_archs", []))
    unknown = [n for n in names if n not in nerf_cfg["architectures"]]
    if unknown:
        raise ValueError(f"config nerf.train_archs/unseen_archs: unknown architectures {unknown}")
    if len(set(names)) != len(names):
        raise ValueError("config nerf.train_archs/unseen_archs: an architecture is listed twice")
    return names


def arch_splits(arch: str, nerf_cfg: dict) -> list[str]:
    """Training architectures get NeRFs for ``train_arch_splits`` (train and test at least:
    encoders train on the one, every table tests on the other); unseen ones for
    ``unseen_splits``."""
    if arch in nerf_cfg["train_archs"]:
        splits = list(nerf_cfg["train_arch_splits"])
        missing = sorted({"train", "test"} - set(splits))
        if missing:
            raise ValueError(f"config nerf.train_arch_splits: the training architectures need "
                             f"NeRFs of the train and test splits, {missing} missing from {splits}")
        return splits
    if arch in nerf_cfg.get("unseen_archs", []):
        return list(nerf_cfg.get("unseen_splits", ["test"]))
    raise ValueError(f"config nerf: architecture {arch!r} is neither a training nor an unseen one")


def arch_objects(manifest: pd.DataFrame, arch: str, nerf_cfg: dict) -> list[str]:
    splits = arch_splits(arch, nerf_cfg)
    rows = manifest[manifest["split"].isin(splits)]
    return sorted(rows["object_id"].astype(str).tolist())


def shard_members(manifest: pd.DataFrame, arch: str, nerf_cfg: dict) -> dict[str, list[str]]:
    """``{shard name: object ids}``, shards of at most ``nerf.shard_size`` objects."""
    ids = arch_objects(manifest, arch, nerf_cfg)
    size = int(nerf_cfg["shard_size"])
    if size < 1:
        raise ValueError(f"config nerf.shard_size must be >= 1, got {size}")
    n = (len(ids) + size - 1) // size
    # Balanced shards: sizes differ by at most one, so batched training stays even.
    bounds = [round(i * len(ids) / n) for i in range(n + 1)] if n else [0]
    return {f"{i:03d}": ids[bounds[i]:bounds[i + 1]] for i in range(n)}
