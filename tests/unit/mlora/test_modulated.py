"""Modulated base field: demodulation by hand and the auto-decoder trainer."""

import numpy as np
import pytest
import torch

from nfws.mlora.modulated import ModulatedField, ModulatedLinear, demodulate

ARCH = dict(coord_dim=2, out_dim=3, d_z=8, mapping_layers=2, mapping_width=16,
            n_blocks=2, width=12, enc_width=10, omega0=5.0)


def test_demodulate_hand_computed():
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    d = demodulate(w)
    assert torch.allclose(d[0], torch.tensor([0.6, 0.8]))
    assert torch.allclose(d[1], torch.tensor([1.0, 0.0]))
    assert torch.equal(d[2], torch.zeros(2))        # ε keeps a zero row finite


def test_modulated_rows_unit_norm_and_style_applied_per_column():
    torch.manual_seed(0)
    layer = ModulatedLinear(3, 4, style_dim=5)
    style = torch.randn(2, 5)
    w = layer.modulated_weight(style)
    assert torch.allclose(w.norm(dim=-1), torch.ones(2, 4), atol=1e-6)
    s = layer.affine(style)[0]
    expect = layer.weight * s
    expect = expect / expect.norm(dim=1, keepdim=True)
    assert torch.allclose(w[0], expect, atol=1e-6)


def test_field_shapes_and_instances_differ_by_latent():
    torch.manual_seed(0)
    f = ModulatedField(ARCH)
    p = torch.rand(1, 7, 2).expand(2, -1, -1)
    out = f(p, torch.randn(2, 8))
    assert out.shape == (2, 7, 3)
    assert not torch.allclose(out[0], out[1])


def test_missing_config_key_is_named():
    bad = dict(ARCH)
    del bad["width"]
    with pytest.raises(ValueError, match=r"lora.base: missing keys \[.width.\]"):
        ModulatedField(bad)


def test_base_training_reduces_loss(tmp_path):
    from nfws.mlora.base_field import load_base, train_base_field
    from nfws.store import write_zarr

    yy, xx = np.mgrid[0:8, 0:8] / 8
    imgs = np.stack([np.stack([xx, yy, xx * 0 + k / 4], -1) for k in range(4)])
    write_zarr(tmp_path / "t.zarr", {"images": (imgs * 255).astype(np.uint8),
                                     "object_ids": np.array(list("abcd")),
                                     "labels": np.zeros(4, np.int64)}, attrs={"kind": "image"})
    cfg = {k: v for k, v in ARCH.items() if k not in ("coord_dim", "out_dim")}
    cfg.update(stages=[dict(steps=40, batch=4, points=32, lr=3e-3),
                       dict(steps=20, batch=2, points=64, lr=1e-3)],
               lambda_r=1e-4, ema_decay=0.9, latent_init_std=0.01, checkpoint_every=25, curve_every=25)
    info = train_base_field(tmp_path / "t.zarr", cfg, tmp_path / "base.pt", seed=0,
                            device=torch.device("cpu"))
    ck = torch.load(tmp_path / "base.pt", weights_only=True)
    curve = ck["loss_curve"]
    assert info["steps"] == 60 and len(curve) == 60
    assert curve[-10:].mean() < curve[:5].mean()
    assert ck["latents"].shape == (4, 8)
    assert not (tmp_path / "base.pt.progress.pt").exists()
    base = load_base(tmp_path / "base.pt", "zero")
    assert all(torch.allclose(w.norm(dim=1), torch.ones(len(w)), atol=1e-5)
               for w in base["weights"])
