"""The base-field study: one base per distinct base section, rows checked against a fit run
by hand, resuming without refitting, and refused variants files."""
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hand_built import random_image_targets
from nfws.data.targets import load_targets, pixel_grid
from nfws.mlora import study
from nfws.mlora.train import fit_params, make_representation, starting_params
from hand_built import tiny_lora_fit

CPU = torch.device("cpu")
SEED = 3
SPLITS = np.array(["train", "test", "train", "train", "test", "train", "train", "test"])
BASE = dict(d_z=4, mapping_layers=1, mapping_width=8, n_blocks=1, width=8, enc_width=8,
            stages=[dict(steps=4, batch=4, points=16, lr=1e-3)], lambda_r=1e-4,
            ema_decay=0.9, latent_init_std=0.5, checkpoint_every=100, curve_every=2)
FIT = tiny_lora_fit(steps=6, log_every=2, mask_seed=0)
OMEGA0 = 5.0
VARIANTS = {"first": None, "more_steps": {"fit": {"steps": 8}},
            "wider": {"base": {"width": 12}}}
COLUMNS = ["variant", "dataset", "targets", "base_cpu_s", "base_params", "base_train",
           "base_latent_fit"] + [f"{k}{s}" for k in ("mlp", "mlora_asym")
                                 for s in ("", "_cpu_s", "_params", "_trainable")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny face-like targets, a config file shrinking track B, a variants file."""
    d = tmp_path_factory.mktemp("study")
    imgs = random_image_targets(d / "t.zarr", 8, 5, splits=SPLITS)
    (d / "small.yaml").write_text(yaml.safe_dump({"lora": {
        "representations": ["mlp", "mlora_asym"], "base": BASE, "fit": FIT,
        "datasets": {"faces": {"omega0": OMEGA0, "mlp_template_init": True,  # config.yaml's
                               "fit": {"lr_start": FIT["lr_start"]}}}}}))  # own faces LR
    (d / "variants.yaml").write_text(yaml.safe_dump(VARIANTS, sort_keys=False))
    return d, imgs


def argv(d, out, variants=None, targets=None):
    """The study's command line on the files of ``d`` (or the given variants / targets)."""
    return ["--dataset", "faces", "--targets", str(targets or d / "t.zarr"), "--variants",
            str(variants or d / "variants.yaml"), "--out", str(out), "--configfile",
            str(d / "small.yaml"), "--seed", str(SEED)]


@pytest.fixture(scope="module")
def ran(setup, tmp_path_factory):
    """One study run, counting base-field trainings."""
    d, _ = setup
    out = tmp_path_factory.mktemp("out")
    trained = []
    real = study.train_base_field
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study, "train_base_field",
                   lambda *a, **k: trained.append(a[1]["width"]) or real(*a, **k))
        assert study.main(argv(d, out)) == 0
    return out, trained


def test_one_base_per_distinct_base_section(ran):
    out, trained = ran
    assert trained == [8, 12]          # "more_steps" reuses the base of "first"
    assert len(list((out / "bases").glob("*.pt"))) == 2


def test_rows_in_file_order_with_every_column(ran):
    out, _ = ran
    df = pd.read_csv(out / "results.csv")
    assert list(df["variant"]) == list(VARIANTS)
    assert list(df.columns[:len(COLUMNS)]) == COLUMNS
    assert set(df["dataset"]) == {"faces"}
    assert (df["base_cpu_s"] > 0).all() and df["base_params"].iloc[2] > df["base_params"].iloc[0]
    # MLP: 2→8→8→3 weights and biases; mLoRA-Asym: rank-2 pairs on the synthesis layers
    assert (df["mlp_params"] == 2 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3).all()
    assert (df["mlora_asym_trainable"] < df["mlora_asym_params"]).all()
    assert "more_steps" in (out / "results.md").read_text()
    assert (out / "curve.png").stat().st_size > 0


def hand_psnr(pred: torch.Tensor, image: np.ndarray) -> float:
    """10·log10(1 / MSE) of clamped colours against the uint8 image."""
    truth = torch.from_numpy(image.reshape(-1, 3)).double() / 255
    return 10 * math.log10(1 / float((pred.clamp(0, 1).double() - truth).pow(2).mean()))


@pytest.mark.parametrize("variant,steps", [("first", 6), ("more_steps", 8)])
def test_mlp_score_is_a_fit_of_the_test_images(ran, setup, variant, steps):
    """The MLP needs no base: fit the three test images (o1, o4, o7) by hand with the
    variant's fit section and the study's seed, and score them by hand."""
    out, _ = ran
    d, imgs = setup
    cfg = {**FIT, "steps": steps, "omega0": OMEGA0, "mlp_template_init": True,
           "max_weight_growth": 20.0, "on_failure": "fail"}
    targets = load_targets(d / "t.zarr")
    rep = make_representation("mlp", None, targets, cfg)
    start, template = starting_params(rep, targets, 3, cfg, SEED, CPU)
    assert template == "o0"
    fitted, _ = fit_params(rep, start, targets, [1, 4, 7], cfg, SEED, CPU)
    coords = pixel_grid(5).unsqueeze(0).expand(3, -1, -1)
    with torch.no_grad():
        pred = rep.forward(fitted, coords)
    want = np.mean([hand_psnr(pred[b], imgs[i]) for b, i in enumerate([1, 4, 7])])
    row = pd.read_csv(out / "results.csv").set_index("variant").loc[variant]
    assert row["mlp"] == pytest.approx(want, abs=1e-4)


def test_rerun_keeps_every_row_without_training(ran, setup, monkeypatch):
    out, _ = ran
    d, _ = setup
    before = {p: p.stat().st_mtime_ns for p in (out / "bases").glob("*.pt")}
    csv = (out / "results.csv").read_text()

    def refuse(*_, **__):
        raise AssertionError("a kept variant was run again")

    for name in ("train_base_field", "base_reference", "fit_params"):
        monkeypatch.setattr(study, name, refuse)
    assert study.main(argv(d, out)) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "bases").glob("*.pt")} == before
    assert (out / "results.csv").read_text() == csv


def test_changed_variant_is_rerun_and_replaces_its_row(ran, setup, tmp_path, monkeypatch):
    out, _ = ran
    d, _ = setup
    shutil.copytree(out, tmp_path / "out")
    (tmp_path / "variants.yaml").write_text(yaml.safe_dump(
        {**VARIANTS, "more_steps": {"fit": {"steps": 7}}}, sort_keys=False))
    monkeypatch.setattr(study, "train_base_field", lambda *a, **k: pytest.fail("base retrained"))
    fits = []
    real = study.fit_params
    monkeypatch.setattr(study, "fit_params", lambda *a, **k: fits.append(1) or real(*a, **k))
    old = pd.read_csv(out / "results.csv").set_index("variant")
    assert study.main(argv(d, tmp_path / "out", tmp_path / "variants.yaml")) == 0
    new = pd.read_csv(tmp_path / "out" / "results.csv").set_index("variant")
    assert list(new.index) == list(VARIANTS) and len(fits) == 2   # mlp and mlora_asym
    assert new.loc["more_steps", "config_hash"] != old.loc["more_steps", "config_hash"]
    assert new.loc["more_steps", "mlp"] != old.loc["more_steps", "mlp"]
    pd.testing.assert_series_equal(new.loc["wider"], old.loc["wider"])


@pytest.mark.parametrize("variants,words", [
    ({"ok": {}, "bad": {"base": {"widht": 12}}}, ["'bad'", "base", "widht"]),
    ({"bad": {"fit": {"step": 3}}}, ["'bad'", "fit", "step"]),
    ({"bad": {"base": {}, "schedule": {}}}, ["'bad'", "schedule"]),
])
def test_bad_variants_are_refused_naming_file_variant_and_key(setup, tmp_path, capsys,
                                                               variants, words):
    d, _ = setup
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(variants))
    with pytest.raises(SystemExit):
        study.main(argv(d, tmp_path / "out", path))
    err = capsys.readouterr().err
    assert all(w in err for w in [str(path), *words]), err
    assert not (tmp_path / "out").exists()


def test_missing_targets_and_broken_files_are_refused(setup, tmp_path, capsys):
    d, _ = setup
    with pytest.raises(SystemExit):
        study.main(argv(d, tmp_path / "out", targets=tmp_path / "none.zarr"))
    assert f"{tmp_path / 'none.zarr'}: no such targets store (--targets)" in \
        capsys.readouterr().err
    (tmp_path / "v.yaml").write_text("a: {base: [1\n")
    with pytest.raises(SystemExit):
        study.main(argv(d, tmp_path / "out", tmp_path / "v.yaml"))
    assert f"{tmp_path / 'v.yaml'}:2:1: not valid YAML" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((study.REPO_CONFIG.parent / "workflow" / "studies")
                                        .glob("base_field_*.yaml")), ids=lambda p: p.stem)
def test_shipped_variants_files_only_override_keys_the_config_has(path):
    variants = study.read_variants(path, study.load_config([])["lora"])
    assert variants["default"] == {} and len(variants) > 1
