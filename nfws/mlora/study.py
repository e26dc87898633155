"""Track B base-field study: choose the base field's size and schedule and the fitting
settings for your own targets by measuring what they buy.

Each variant of a variants file overrides keys of ``lora.base`` / ``lora.fit``. Its base
field is trained once per distinct base section, targets store and seed (cached under
``OUT/bases``); the base alone (at its training latents, and with only its latent fitted)
and every representation of ``lora.representations`` are then scored on the whole test
split. ``OUT/results.csv`` / ``results.md`` hold one row per variant and ``OUT/curve.png``
plots test score against the base field's CPU seconds. A rerun keeps every finished
variant whose resolved config is unchanged.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from snakemake.utils import update_config
from tqdm import tqdm

from nfws.checkpoint import input_fingerprint
from nfws.config_files import REPO_CONFIG, check_config_file
from nfws.data.targets import load_targets
from nfws.eval.tables import write_table
from nfws.figures import save_figure
from nfws.metrics import reconstruction_scores
from nfws.mlora.base_field import train_base_field
from nfws.mlora.base_reference import (TEST_SPLIT, base_reference, read_base_reference,
                                       split_instances)
from nfws.mlora.config import DATASETS, base_config, fit_config
from nfws.mlora.models import DISPLAY_NAMES, KINDS
from nfws.mlora.train import fit_params, make_representation, starting_params
from nfws.store import config_hash, load_torch

VARIANT_KEYS = ("base", "fit", "targets")
CPU = torch.device("cpu")
#: Scores per modality as tables and plots show them: PSNR in dB, Chamfer distance ×100.
SCALE = {"image": 1.0, "occupancy": 100.0}
UNITS = {"image": "PSNR (dB)", "occupancy": "Chamfer distance ×100"}
BETTER = {"image": "higher", "occupancy": "lower"}


# ------------------------------------------------------------------------ configuration
def load_config(configfiles) -> dict:
    """The checkout's ``config.yaml`` with ``configfiles`` deep-merged over it in order, as
    Snakemake's ``--configfile`` does; each file is checked first (``check_config_file``)."""
    config: dict = {}
    for path in [REPO_CONFIG, *configfiles]:
        check_config_file(path)
        update_config(config, yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    return config


def read_variants(path, lora: dict) -> dict[str, dict]:
    """``name -> {base, fit, targets}`` of a variants file, in file order. A key other than
    those, or an override key that ``lora.base`` / ``lora.fit`` lacks, is refused."""
    check_config_file(path)
    variants = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not variants:
        raise ValueError(f"{path}: the variants file holds no variants")
    checked = {}
    for name, variant in variants.items():
        where = f"{path}: variant {name!r}"
        variant = {} if variant is None else variant
        check_keys(variant, VARIANT_KEYS, where)
        for section in ("base", "fit"):
            check_keys(variant.get(section) or {}, lora[section],
                       f"{where}, {section} (keys of lora.{section})")
        checked[str(name)] = variant
    return checked


def check_keys(mapping, allowed, where: str) -> None:
    """Refuse ``mapping`` unless it is a mapping whose keys are among ``allowed``."""
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: expected a mapping with keys among {sorted(allowed)}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (known: {sorted(allowed)})")


def plan_variant(name: str, variant: dict, lora: dict, dataset: str, targets, seed: int,
                 variants_path) -> dict:
    """One variant resolved: its targets path, the hash of everything its row depends on
    (``resolved``: dataset, targets, base and fit sections, representations, seed) and the
    hash that keys its base field (base section, targets, seed)."""
    path = str(variant.get("targets", targets))
    if not Path(path).exists():
        source = (f"targets of variant {name!r} in {variants_path}" if "targets" in variant
                  else "--targets")
        raise FileNotFoundError(f"{path}: no such targets store ({source})")
    entry = lora["datasets"][dataset]       # a variant's keys win over the dataset's own
    merged = {**lora, "datasets": {**lora["datasets"], dataset: {
        **entry, **{part: {**entry.get(part, {}), **(variant.get(part) or {})}
                    for part in ("base", "fit")}}}}
    where = Path(path).resolve()
    resolved = {"dataset": dataset, "base": base_config(merged, dataset),
                "fit": fit_config(merged, dataset), "kinds": list(lora["representations"]),
                "targets": {"path": str(where), "fingerprint": input_fingerprint([where])},
                "seed": seed}
    return {"name": name, "path": path, "resolved": resolved, "hash": config_hash(resolved),
            "base_hash": config_hash({k: resolved[k] for k in ("base", "targets", "seed")})}


def check_targets(path, dataset: str) -> None:
    """Refuse targets of another modality than ``dataset``'s, or without a test split."""
    targets = load_targets(path)
    if targets.kind != DATASETS[dataset]:
        raise ValueError(f"{path}: {targets.kind} targets, but --dataset {dataset} fits "
                         f"{DATASETS[dataset]} targets")
    split_instances(targets, TEST_SPLIT, path)


def make_plans(args) -> list[dict]:
    """Every variant of ``args.variants`` resolved (:func:`plan_variant`), targets checked."""
    config = load_config(args.configfile)
    lora = config["lora"]
    seed = int(config["seed"]) if args.seed is None else args.seed
    plans = [plan_variant(name, variant, lora, args.dataset, args.targets, seed, args.variants)
             for name, variant in read_variants(args.variants, lora).items()]
    for path in dict.fromkeys(plan["path"] for plan in plans):
        check_targets(path, args.dataset)
    return plans


def previous_rows(path: Path, dataset: str) -> dict[str, dict]:
    """The rows of an earlier run's ``results.csv`` by variant (none if there is none)."""
    if not path.exists():
        return {}
    df = pd.read_csv(path, dtype={"variant": str, "dataset": str, "targets": str,
                                  "config_hash": str})
    other = sorted(set(df["dataset"]) - {dataset})
    if other:
        raise ValueError(f"{path}: holds {other} results, not {dataset!r}; choose another --out")
    return {row["variant"]: row for row in df.to_dict("records")}


# ---------------------------------------------------------------------------- measuring
def trained_base(plan: dict, bases: Path) -> Path:
    """``bases/<base hash>.pt``, trained unless an earlier variant (or run) trained it."""
    path = bases / f"{plan['base_hash']}.pt"
    if not path.exists():
        r = plan["resolved"]
        train_base_field(plan["path"], r["base"], path, r["seed"], device=CPU)
    return path


def base_cpu_seconds(base_pt: Path) -> float:
    """Process CPU seconds the base field's training took, as ``train_base_field`` recorded
    them with its last snapshot (kept across resumed training)."""
    return float(load_torch(base_pt)["snapshots"][-1]["cpu_seconds"])


def reference_scores(plan: dict, base_pt: Path, out_path: Path, scale: float) -> dict:
    """The base alone (``nfws.mlora.base_reference``): its parameters, the mean score at the
    training latents of its first n training instances (n = test-split size) and the mean
    latent-only fit of the test split."""
    r = plan["resolved"]
    base_reference(base_pt, plan["path"], r["fit"], out_path, r["seed"], CPU, r["base"])
    ref = read_base_reference(out_path)
    n_test = len(ref.test_score)
    return {"base_params": int(ref.attrs["n_base_params"]),
            "base_train": float(np.nanmean(ref.train_score[:n_test])) * scale,
            "base_latent_fit": float(np.nanmean(ref.test_score)) * scale}


def fit_kind(kind: str, base_pt: Path, targets, test: np.ndarray, plan: dict) -> dict:
    """Fit ``kind`` to the test instances from its shared start: the mean score, the fitting
    CPU seconds (template fit included) and the per-instance parameter counts."""
    r = plan["resolved"]
    rep = make_representation(kind, base_pt, targets, r["fit"], r["base"])
    clock = time.process_time()
    start, _ = starting_params(rep, targets, len(test), r["fit"], r["seed"], CPU)
    fitted, _ = fit_params(rep, start, targets, test, r["fit"], r["seed"], CPU, desc=kind)
    seconds = time.process_time() - clock
    scores = reconstruction_scores(lambda p: rep.forward(fitted, p), test, targets, r["fit"],
                                   r["seed"], CPU)
    return {kind: float(np.nanmean(scores)) * SCALE[targets.kind], f"{kind}_cpu_s": seconds,
            f"{kind}_params": rep.n_params, f"{kind}_trainable": rep.n_trainable}


def run_variant(plan: dict, out: Path) -> dict:
    """The results row of one variant."""
    base_pt = trained_base(plan, out / "bases")
    targets = load_targets(plan["path"])
    test = split_instances(targets, TEST_SPLIT, plan["path"])
    reference = reference_scores(plan, base_pt, out / "references" / f"{plan['hash']}.zarr",
                                 SCALE[targets.kind])
    row = {"variant": plan["name"], "dataset": plan["resolved"]["dataset"],
           "targets": plan["path"], "base_cpu_s": base_cpu_seconds(base_pt), **reference}
    for kind in plan["resolved"]["kinds"]:
        row.update(fit_kind(kind, base_pt, targets, test, plan))
    return {**row, "config_hash": plan["hash"]}


# ------------------------------------------------------------------------------ outputs
def ordered_rows(rows: dict[str, dict], plans: list[dict]) -> list[dict]:
    """The rows of ``plans``' variants in file order, then earlier runs' other variants."""
    names = [plan["name"] for plan in plans]
    return [rows[n] for n in names if n in rows] + [r for n, r in rows.items() if n not in names]


def write_results(rows: list[dict], dataset: str, out: Path) -> None:
    """``results.csv``, ``results.md`` and ``curve.png`` of the finished variants."""
    df = pd.DataFrame(rows)
    modality = DATASETS[dataset]
    write_table(df, out / "results.csv", out / "results.md", f"{dataset}: base-field study",
                note=f"Mean over the targets' test split, {UNITS[modality]}, {BETTER[modality]} "
                     "is better. base_train: the "
                     "base field at the training latents of its first n training instances "
                     "(n = test-split size); base_latent_fit: the base with only its latent "
                     "fitted per test instance. *_cpu_s: process CPU seconds of base training "
                     "/ of fitting. *_params / *_trainable: per-instance parameters / those "
                     "not frozen. config_hash: the resolved config; a rerun keeps rows whose "
                     "hash is unchanged.", floatfmt="{:.3f}")
    plot_curve(df, dataset, out / "curve.png")


def plot_curve(df: pd.DataFrame, dataset: str, path: Path) -> None:
    """Test score against base CPU seconds: one colour per kind (black: the base's
    latent-only fit), one marker per (variant, kind); above each base, the first variant
    trained on it and how many more share it."""
    import matplotlib.pyplot as plt

    kinds = [k for k in KINDS if k in df.columns]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter(df["base_cpu_s"], df["base_latent_fit"], color="black", marker="x",
               label="base, latent-only fit")
    colours = plt.get_cmap("tab10")
    for k, kind in enumerate(kinds):
        ax.scatter(df["base_cpu_s"], df[kind], color=colours(k), s=20, label=DISPLAY_NAMES[kind])
    for i, (cpu_s, group) in enumerate(df.groupby("base_cpu_s")):
        more = f" (+{len(group) - 1})" if len(group) > 1 else ""
        ax.annotate(group["variant"].iloc[0] + more,  # neighbours' labels at two heights
                    (cpu_s, group[["base_latent_fit", *kinds]].max().max()),
                    fontsize=7, ha="center", textcoords="offset points", xytext=(0, 6 + 9 * (i % 2)))
    ax.set_xlabel("base field training, CPU seconds")
    ax.margins(y=0.12)
    ax.set_ylabel(UNITS[DATASETS[dataset]])
    ax.set_title(f"{dataset}: test-split reconstruction against base-field cost")
    ax.legend(fontsize=7)
    save_figure(fig, path)


# ---------------------------------------------------------------------------------- CLI
def run_study(plans: list[dict], rows: dict[str, dict], dataset: str, out: Path) -> None:
    """Run every variant without a current row; rewrite the outputs after each one."""
    for plan in tqdm(plans, desc="variants"):
        if rows.get(plan["name"], {}).get("config_hash") == plan["hash"]:
            tqdm.write(f"{plan['name']}: kept from {out / 'results.csv'}")
            continue
        rows[plan["name"]] = run_variant(plan, out)
        write_results(ordered_rows(rows, plans), dataset, out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nfws.mlora.study",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--targets", required=True,
                   help="targets store (targets.zarr) for variants that name none")
    p.add_argument("--variants", required=True,
                   help="YAML: name -> {base: {...}, fit: {...}, targets: PATH}")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--configfile", nargs="+", action="extend", default=[],
                   help="config files merged over the checkout's config.yaml, in order")
    p.add_argument("--seed", type=int, help="default: the config's seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return p


def main(argv=None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    try:
        plans = make_plans(args)
        rows = previous_rows(args.out / "results.csv", args.dataset)
    except (ValueError, OSError) as err:
        cli.error(str(err))
    torch.set_num_threads(args.threads)
    run_study(plans, rows, args.dataset, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
