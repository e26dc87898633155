"""The nerf-farm benchmark: its statistics, against cases whose answer follows from the
definition, and its worker processes, against the same shards trained in this process."""
import numpy as np
import pytest
import torch

from nfws.bench.nerf_farm import SEED, fit_in_workers, median_difference_interval
from nfws.data.synthetic_views import synthetic_views
from nfws.fields.spec import ArchSpec
from nfws.farm.train import FarmConfig, fit_stack
from nfws.config_files import repo_section


def test_constant_shift_gives_a_point_interval():
    # every resample's two medians differ by exactly the shift
    base = np.array([20.0, 21.5, 23.0, 24.0, 26.5, 30.0])
    lo, hi = median_difference_interval(base, base + 0.25, seed=0)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(0.25)


def test_interval_covers_the_sample_difference_and_widens_with_spread():
    rng = np.random.default_rng(1)
    base = rng.normal(24.0, 1.0, 64)
    ours = base + 0.3 + rng.normal(0.0, 0.5, 64)
    lo, hi = median_difference_interval(base, ours, seed=0)
    assert lo < np.median(ours) - np.median(base) < hi
    narrow = median_difference_interval(base, base + rng.normal(0.0, 0.1, 64), seed=0)
    wide = median_difference_interval(base, base + rng.normal(0.0, 2.0, 64), seed=0)
    assert wide[1] - wide[0] > 3 * (narrow[1] - narrow[0])


def test_two_nerfs_give_the_four_resample_extremes():
    # with 2 NeRFs a resample is (a, a) with probability 1/4 (difference 21 - 20 = 1),
    # (b, b) with 1/4 (27 - 30 = -3) or both (medians 24 - 25 = -1) with 1/2: the 2.5 %
    # and 97.5 % quantiles are -3 and 1
    base, ours = np.array([20.0, 30.0]), np.array([21.0, 27.0])
    lo, hi = median_difference_interval(base, ours, seed=0, resamples=4000)
    assert lo == pytest.approx(-3.0) and hi == pytest.approx(1.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal 1-D arrays"):
        median_difference_interval(np.zeros(4), np.zeros(5), seed=0)
    with pytest.raises(ValueError, match=">= 2"):
        median_difference_interval(np.zeros(1), np.zeros(1), seed=0)


def test_workers_train_each_shard_as_this_process_does():
    # every NeRF draws from streams of its own, so where a shard is trained (which worker,
    # which process) must not change its NeRFs; PSNRs come back in shard order
    views = synthetic_views(4, resolution=16, n_views=5, seed=0)
    spec = ArchSpec.from_dict("MLP", {"family": "MLP", "hidden_layers": 1, "width": 16, "n_freqs": 2})
    cfg = FarmConfig.from_dict({**repo_section("nerf", "fit"), "steps": 6, "rays_per_step": 32, "samples_per_ray": 8,
                                "eval_samples_per_ray": 8, "log_every": 3, "checkpoint_every": 6,
                                "heldout_views": [0], "psnr_floor": -1e9, "carve_resolution": 8,
                                "precision": "fp32"})
    shards = [[2, 3], [0], [1]]
    psnr, seconds, cpu_seconds = fit_in_workers(views, spec, cfg, shards, workers=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = np.concatenate([fit_stack(views.select(s), spec, cfg, "cpu", SEED, progress=False).psnr
                               for s in shards])
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(psnr, here, atol=1e-5)
    assert len(set(np.round(psnr, 3))) == 4        # four different NeRFs, not one repeated
    assert 0 < seconds and 0 < cpu_seconds
