"""Statistics of timed runs: known samples, and agreement with numpy's percentiles."""
from __future__ import annotations

import numpy as np
import pytest

from mfpi_deploy.bench.stats import paired_ratios, percentile, summarize


def test_summary_of_known_samples():
    s = summarize([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])  # 1..10, shuffled
    assert s.n == 10
    assert s.median == pytest.approx(5.5)
    # Linear interpolation: position (n - 1) * q -> 0.9 and 8.1 between order statistics.
    assert s.p10 == pytest.approx(1.9)
    assert s.p90 == pytest.approx(9.1)
    assert (s.mean, s.min, s.max) == (pytest.approx(5.5), 1.0, 10.0)


def test_odd_count_median_is_middle_sample():
    s = summarize([3.0, 100.0, 1.0])
    assert s.median == 3.0 and s.p10 == pytest.approx(1.4) and s.p90 == pytest.approx(80.6)


def test_single_sample():
    s = summarize([0.25])
    assert (s.median, s.p10, s.p90, s.min, s.max) == (0.25,) * 5


@pytest.mark.parametrize("n", [2, 7, 50, 101])
def test_agrees_with_numpy(n):
    x = np.random.default_rng(n).lognormal(size=n)
    s = summarize(list(x))
    assert s.median == pytest.approx(np.median(x))
    assert s.p10 == pytest.approx(np.percentile(x, 10))
    assert s.p90 == pytest.approx(np.percentile(x, 90))
    for q in (0, 25, 99, 100):
        assert percentile(x, q) == pytest.approx(np.percentile(x, q))


def test_scaled_and_dict():
    s = summarize([1.0, 2.0, 3.0]).scaled(1000)
    assert s.median == pytest.approx(2000) and s.p90 == pytest.approx(2800)
    assert set(s.to_dict()) == {"n", "median", "p10", "p90", "mean", "min", "max"}


def test_bad_input():
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_paired_ratios_are_per_round():
    deepz = [10.0, 20.0, 40.0]  # a machine getting slower...
    mfpi = [0.5, 1.0, 2.0]  # ...slows both runs of a round alike
    assert paired_ratios(deepz, mfpi) == [20.0, 20.0, 20.0]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        paired_ratios([1.0], [0.0])
