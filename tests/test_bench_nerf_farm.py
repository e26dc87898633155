"""The nerf-farm benchmark's statistics, against cases whose answer follows from the definition."""
import numpy as np
import pytest

from nfws.bench.nerf_farm import median_difference_interval


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
