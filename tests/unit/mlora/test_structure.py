"""Weight-space structure: λ = 0 reproduces the first fit exactly; λ > 0 moves away."""
import numpy as np
import pandas as pd
import pytest
import torch

from nfws.mlora.structure import plot_structure, weight_space_structure
from nfws.store import write_zarr
from hand_built import tiny_lora_fit

FIT = tiny_lora_fit(steps=15, points=32, lr_end=0.0001, log_every=5, omega0=4.0,
                    mc_resolution=16, n_chamfer=300, eval_chunk=1024)


def _sphere_targets(path, n=3):
    rng = np.random.default_rng(0)
    pts, occ, surf = [], [], []
    for i in range(n):
        r = 0.25 + 0.05 * i
        p = rng.uniform(-0.5, 0.5, (400, 3)).astype(np.float32)
        u = rng.normal(size=(200, 3))
        pts.append(p), occ.append(np.linalg.norm(p, axis=1) < r)
        surf.append((r * u / np.linalg.norm(u, axis=1, keepdims=True)).astype(np.float32))
    write_zarr(path, {"points": np.stack(pts), "occupancy": np.stack(occ).astype(np.uint8),
                      "surface": np.stack(surf), "object_ids": np.array(["a", "b", "c"][:n]),
                      "labels": np.arange(n)}, attrs={"kind": "occupancy", "class_names": []})


def test_structure_lambda_zero_is_identical_and_large_lambda_differs(tmp_path):
    _sphere_targets(tmp_path / "t.zarr")
    df = weight_space_structure("mlp_asym", None, tmp_path / "t.zarr", FIT,
                                {"n_instances": 2, "lambdas": [0.0, 1.0]},
                                tmp_path / "s.csv", seed=0, device=torch.device("cpu"))
    assert len(df) == 4 and set(df["lambda"]) == {0.0, 1.0}
    zero = df[df["lambda"] == 0.0]
    assert np.allclose(zero.cosine, 1.0, atol=1e-6)
    ok = zero.dropna(subset=["barrier"])
    assert np.allclose(ok.barrier, ok.error_a) and np.allclose(ok.barrier_excess, 0, atol=1e-12)
    assert (df[df["lambda"] == 1.0].cosine < 0.999).all()
    assert pd.read_csv(tmp_path / "s.csv").shape == df.shape
    plot_structure([tmp_path / "s.csv"], tmp_path / "s.png", "test")
    assert (tmp_path / "s.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="lambdas"):
        weight_space_structure("mlp", None, tmp_path / "t.zarr", FIT,
                               {"n_instances": 1, "lambdas": [1.5]}, tmp_path / "x.csv", 0)


def test_structure_resumes_from_its_progress_checkpoint(tmp_path, monkeypatch):
    import nfws.mlora.train as inst

    _sphere_targets(tmp_path / "t.zarr")
    cfg = dict(FIT, checkpoint_every=5)
    args = ("mlp", None, tmp_path / "t.zarr", cfg, {"n_instances": 2, "lambdas": [0.5]})
    full = weight_space_structure(*args, tmp_path / "full.csv", seed=0, device=torch.device("cpu"))
    real = inst.cosine_lr

    def failing(step, *a):
        if step == 12:
            raise KeyboardInterrupt
        return real(step, *a)

    monkeypatch.setattr(inst, "cosine_lr", failing)
    with pytest.raises(KeyboardInterrupt):
        weight_space_structure(*args, tmp_path / "part.csv", seed=0, device=torch.device("cpu"))
    monkeypatch.setattr(inst, "cosine_lr", real)
    progress = tmp_path / "part.csv.progress.pt"
    assert torch.load(progress, weights_only=True)["state"]["step"] == 10 and not (tmp_path / "part.csv").exists()
    resumed = weight_space_structure(*args, tmp_path / "part.csv", seed=0, device=torch.device("cpu"))
    assert np.allclose(resumed.cosine, full.cosine, atol=1e-6) and not progress.exists()
