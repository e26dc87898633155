"""How large each step of the check runs, and the paper recipes it reads.

Three profiles: ``cuda`` (the GPU run, sized to finish in about 7 minutes on one H200),
``cpu`` (the dry run on a CPU: every code path, small sizes; the bf16 matmul peak is timed
at 512 because a CPU without bf16 instructions takes minutes for larger ones) and ``quick``
(the dry run shrunk for its unit test). ``min_seconds`` is each step's estimated minimum: a step is not
started with less than that left of the budget. The paper's sizes are not copied here:
:func:`recipe` reads them from ``workflow/configs/`` merged over ``config.yaml``, as
``snakemake --configfile`` merges them.
"""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

PROFILES = {
    "cuda": {
        "min_seconds": {"environment": 10, "cuda_tests": 45, "nerf_farm": 45, "learners": 30,
                        "smoke_dag": 150},
        # one default-sized shard (nerf.shard_size 32) at the recipe's rays and samples a
        # step; the baseline trains the first 8 of its NeRFs alone (its cost per NeRF does
        # not depend on which), and the PSNRs are paired over those 8
        "nerf_farm": {"archs": ["MLP", "TRI", "HASH"], "objects": 32, "shard": 32,
                      "baseline_objects": 8, "resolution": 64, "views": 12, "steps": 64,
                      "rays": "recipe", "samples_per_ray": "recipe", "points_per_call": 2**21,
                      "peak_size": 8192, "render_nerfs": 4, "seconds_per_arch": 30},
        "learners": {"sizes": "paper", "gmn_repeats": 5, "gmn_warm_up": 2,
                     "lora_instances": 128, "lora_steps": 20},
    },
    "cpu": {
        "min_seconds": {"environment": 5, "cuda_tests": 20, "nerf_farm": 30, "learners": 20,
                        "smoke_dag": 240},
        "nerf_farm": {"archs": ["MLP", "TRI", "HASH"], "objects": 4, "shard": 4,
                      "baseline_objects": 4, "resolution": 32, "views": 8, "steps": 32,
                      "rays": 64, "samples_per_ray": None, "points_per_call": 32768,
                      "peak_size": 512, "render_nerfs": 2, "seconds_per_arch": 10},
        "learners": {"sizes": "bench", "gmn_repeats": 2, "gmn_warm_up": 1,
                     "lora_instances": 16, "lora_steps": 10},
    },
}


def merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base``: dicts recursively, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and \
            isinstance(out.get(key), dict) else value
    return out


#: the CPU profile shrunk: fewer, smaller NeRFs and steps, the tiny learners
PROFILES["quick"] = merge(PROFILES["cpu"], {
    "min_seconds": {"environment": 2, "cuda_tests": 10, "nerf_farm": 10, "learners": 5},
    "nerf_farm": {"objects": 2, "shard": 2, "baseline_objects": 2, "resolution": 16, "views": 5,
                  "steps": 8, "rays": 32, "peak_size": 256, "render_nerfs": 1, "seconds_per_arch": 2},
    "learners": {"sizes": "tiny", "gmn_repeats": 1, "gmn_warm_up": 0, "lora_instances": 4,
                 "lora_steps": 2},
})


def recipe(name: str) -> dict:
    """``workflow/configs/{name}.yaml`` merged over ``config.yaml``."""
    path = REPO / "workflow" / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recipe (the check runs from a checkout)")
    return merge(yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load(path.read_text()))
