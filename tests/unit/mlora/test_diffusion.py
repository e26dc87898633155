"""DDPM forward process, DDIM / DDPM samplers, normaliser, training loop and sampling."""
import numpy as np
import pytest
import torch

from nfws.config_files import repo_section
from nfws.mlora.diffusion import load_weight_shards, sample, train_diffusion
from nfws.mlora.ddpm import GaussianDiffusion, WeightNormaliser
from nfws.store import load_torch, write_parquet
from weight_shards import fake_weight_shard


def test_alpha_bar_by_hand_for_first_two_steps():
    d = GaussianDiffusion(500, 1e-4, 2e-2)
    beta1 = 1e-4
    beta2 = 1e-4 + (2e-2 - 1e-4) / 499
    assert d.alpha_bar[0].item() == pytest.approx(1 - beta1, rel=1e-12)
    assert d.alpha_bar[1].item() == pytest.approx((1 - beta1) * (1 - beta2), rel=1e-12)
    assert d.betas[-1].item() == pytest.approx(2e-2)


def test_forward_noising_matches_closed_form_moments():
    d = GaussianDiffusion(500)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.tensor([[2.0, -1.0, 0.5]]).expand(200_000, -1)
    for idx in (0, 99, 499):
        noise = torch.randn(x0.shape, generator=gen)
        xt = d.q_sample(x0, torch.full((len(x0),), idx), noise)
        ab = float(np.prod(1 - np.linspace(1e-4, 2e-2, 500)[: idx + 1]))
        np.testing.assert_allclose(xt.mean(0), np.sqrt(ab) * x0[0].numpy(), atol=0.01)
        np.testing.assert_allclose(xt.var(0), np.full(3, 1 - ab), rtol=0.02, atol=2e-4)


def oracle(d: GaussianDiffusion, x0: torch.Tensor):
    """The exact noise predictor for a data set with a single point x0."""
    def eps(xt, i):
        ab = d.alpha_bar[i].float().unsqueeze(-1)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()
    return eps


def test_ddim_one_step_with_oracle_recovers_x0():
    d = GaussianDiffusion(500)
    x0 = torch.tensor([[0.3, -2.0, 1.5, 0.0]])
    out = d.ddim_sample(oracle(d, x0), (5, 4), steps=1, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x0.expand(5, -1), atol=1e-4, rtol=0)


def test_ddim_many_steps_with_oracle_recovers_x0_and_is_deterministic():
    d = GaussianDiffusion(500)
    x0 = torch.tensor([[1.0, -1.0]])
    a = d.ddim_sample(oracle(d, x0), (3, 2), 100, torch.Generator().manual_seed(2))
    b = d.ddim_sample(oracle(d, x0), (3, 2), 100, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, x0.expand(3, -1), atol=1e-4, rtol=0)
    assert torch.equal(a, b)


def test_ddim_schedule_runs_from_last_to_first_index():
    d = GaussianDiffusion(500)
    sched = d.ddim_schedule(100)
    assert sched[0] == 499 and sched[-1] == 0 and len(sched) == 100
    assert all(a > b for a, b in zip(sched, sched[1:]))
    with pytest.raises(ValueError, match="sampling steps"):
        d.ddim_schedule(501)


def test_ddpm_ancestral_with_oracle_lands_near_x0():
    d = GaussianDiffusion(500)
    x0 = torch.tensor([[0.5, -0.5]])
    out = d.ddpm_sample(oracle(d, x0), (64, 2), torch.Generator().manual_seed(3))
    # last step adds no noise; the step before leaves noise of std sqrt(beta_2) ~ 0.01
    assert (out - x0).abs().max() < 0.1


def test_normaliser_round_trip_and_constant_coordinates():
    w = torch.tensor([[1.0, 5.0, 0.0], [3.0, 5.0, 2.0], [2.0, 5.0, 4.0]])
    n = WeightNormaliser.fit(w)
    z = n.normalise(w)
    torch.testing.assert_close(z[:, 0], torch.tensor([-1.0, 1.0, 0.0]))  # mean 2, std 1
    assert torch.all(z[:, 1] == 0)  # constant coordinate maps to 0
    torch.testing.assert_close(n.denormalise(z), w)
    again = WeightNormaliser.from_state_dict(n.state_dict())
    torch.testing.assert_close(again.denormalise(z), w)


def lora_layout(rank=2, dims=((6, 8), (8, 8))):
    out = []
    for l, (d_in, d_out) in enumerate(dims):
        out += [{"name": f"layer{l}.A", "shape": [rank, d_in], "layer": l, "role": "A"},
                {"name": f"layer{l}.B", "shape": [d_out, rank], "layer": l, "role": "B"}]
    return out


@pytest.fixture
def shard(tmp_path):
    layout = lora_layout()
    P = sum(int(np.prod(e["shape"])) for e in layout)
    rng = np.random.default_rng(0)
    w = (rng.normal(size=(40, P)) * 0.1 + 3.0).astype(np.float32)
    ids = np.array([f"o{i}" for i in range(40)])
    fake_weight_shard(tmp_path / "w.zarr", w, ids, layout)
    split = np.where(np.arange(40) < 30, "train", "test")
    import pandas as pd
    write_parquet(pd.DataFrame({"object_id": ids, "class_name": "c", "class_index": 0,
                                "split": split, "source": ""}), tmp_path / "manifest.parquet")
    return tmp_path, w


CFG = {**repo_section("diffusion", "model"), "hidden": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "steps": 6, "batch_size": 8,
       "checkpoint_every": 3, "sampling_steps": 5, "device": "cpu"}


def test_train_keeps_train_split_and_samples_in_data_scale(shard):
    tmp, w = shard
    out = tmp / "model.pt"
    info = train_diffusion(tmp / "w.zarr", CFG, out, seed=0, manifest_path=tmp / "manifest.parquet")
    assert info["n_train"] == 30 and info["denoiser"] == "lora_encoder" and info["steps"] == 6
    state = load_torch(out)
    torch.testing.assert_close(state["normaliser"]["mean"], torch.from_numpy(w[:30]).mean(0))
    assert not (tmp / "model.pt.progress.pt").exists()
    s1, s2 = sample(out, 5, seed=4), sample(out, 5, seed=4)
    assert s1.shape == (5, w.shape[1]) and np.array_equal(s1, s2)
    assert abs(s1.mean() - 3.0) < 1.0  # de-normalised back to the data's scale
    assert not np.array_equal(s1, sample(out, 5, seed=5))
    assert sample(out, 3, seed=4, sampler="ddpm").shape == (3, w.shape[1])


def test_resume_continues_from_checkpoint(shard, monkeypatch):
    tmp, _ = shard
    full = tmp / "full.pt"
    train_diffusion(tmp / "w.zarr", CFG, full, seed=0, manifest_path=tmp / "manifest.parquet")
    part = tmp / "part.pt"
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def failing_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(tmp / "w.zarr", CFG, part, seed=0, manifest_path=tmp / "manifest.parquet")
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert (tmp / "part.pt.progress.pt").exists() and not part.exists()
    train_diffusion(tmp / "w.zarr", CFG, part, seed=0, manifest_path=tmp / "manifest.parquet")
    a, b = load_torch(full), load_torch(part)
    torch.testing.assert_close(a["losses"], b["losses"])
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k])


def test_bad_inputs_name_the_problem(shard, tmp_path):
    tmp, w = shard
    with pytest.raises(ValueError, match=r"config diffusion.model: missing keys \['hidden'\], unknown keys \['hiden'\]"):
        cfg = {**CFG, "hiden": 3}
        del cfg["hidden"]
        train_diffusion(tmp / "w.zarr", cfg, tmp / "m.pt", 0, tmp / "manifest.parquet")
    fake_weight_shard(tmp / "short.zarr", w[:, :-1], np.arange(40).astype(str), lora_layout())
    with pytest.raises(ValueError, match=r"short\.zarr: weights shape \(40, 59\) does not match "
                                         r"40 object ids x 60 layout values"):
        load_weight_shards(tmp / "short.zarr")
    bad = w.copy()
    bad[3, 0] = np.nan
    fake_weight_shard(tmp / "nan.zarr", bad, np.arange(40).astype(str), lora_layout())
    with pytest.raises(ValueError, match=r"nan\.zarr: weights of objects \['3'\] contain NaN"):
        load_weight_shards(tmp / "nan.zarr")
    with pytest.raises(ValueError, match=r"manifest\.parquet: 0 of the 40 objects of the weight "
                                         r"shards are in split 'val'"):
        load_weight_shards(tmp / "w.zarr", tmp / "manifest.parquet", "val")


def test_train_refuses_a_backbone_narrower_than_a_lora_layer(shard):
    tmp, _ = shard
    # lora_layout(), rank 2: layer0 (6 -> 8) needs 2 × (6 + 8) = 28 values, layer1 (8 -> 8) 32
    with pytest.raises(ValueError, match=r"diffusion.model.hidden = 16 is narrower than LoRA "
                                         r"layer layer0.A/layer0.B .* = 28 values.*at least 32"):
        train_diffusion(tmp / "w.zarr", {**CFG, "hidden": 16}, tmp / "narrow.pt", 0,
                        tmp / "manifest.parquet")
    assert not (tmp / "narrow.pt").exists()
    info = train_diffusion(tmp / "w.zarr", {**CFG, "hidden": 16}, tmp / "dit.pt", 0,
                           tmp / "manifest.parquet", denoiser="dit")
    assert info["denoiser"] == "dit"  # tensor tokens are chunked: no width is too narrow
