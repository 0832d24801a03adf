"""IQM and bootstrap intervals against hand-computed values."""

import numpy as np
import pytest
import scipy.stats

from baselines import stats


def test_iqm_hand_computed():
    # n = 8: drop 2 from each end -> mean(3, 4, 5, 6)
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    # n = 10: drop 2 from each end -> mean(2, 3, 4, 5, 6, 100)
    assert stats.iqm([0, 0, 2, 3, 4, 5, 6, 100, 1000, 1000]) == pytest.approx(120 / 6)
    # n = 3: nothing dropped
    assert stats.iqm([1.0, 2.0, 6.0]) == 3.0
    # along an axis, and scipy's trimmed mean agrees
    rows = np.random.default_rng(0).normal(size=(5, 9))
    np.testing.assert_allclose(stats.iqm(rows, axis=1), scipy.stats.trim_mean(rows, 0.25, axis=1))
    assert np.isnan(stats.iqm([]))


def test_bootstrap_two_values():
    # Resamples of [0, 1] are {00, 01, 10, 11} with probabilities 1/4, 1/2, 1/4; their
    # medians 0, 0.5, 1: the 2.5% quantile is 0 and the 97.5% one is 1.
    assert stats.bootstrap_ci([0.0, 1.0], np.median, num_resamples=4000) == (0.0, 1.0)
    # with 20% mass the interval is the 0.4 and 0.6 quantiles, both inside the mass at 0.5
    assert stats.bootstrap_ci([0.0, 1.0], np.median, 4000, confidence=0.2) == (0.5, 0.5)


def test_bootstrap_constant_deterministic_and_covering():
    assert stats.bootstrap_ci([2.0] * 7, stats.iqm) == (2.0, 2.0)
    values = np.random.default_rng(1).lognormal(size=12)
    first = stats.bootstrap_ci(values, stats.iqm, seed=3)
    assert first == stats.bootstrap_ci(values, stats.iqm, seed=3)
    assert first != stats.bootstrap_ci(values, stats.iqm, seed=4)
    low, high = first
    assert values.min() <= low < stats.iqm(values) < high <= values.max()


def test_summarize():
    out = stats.summarize([1.0, 2.0, 3.0, 10.0])
    assert out["n"] == 4 and out["median"] == 2.5 and out["iqm"] == 2.5 and out["mean"] == 4.0
    assert out["median_ci"][0] <= 2.5 <= out["median_ci"][1]
    assert out["mean_ci"][1] <= 10.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(values=[1.0, np.nan]), "bootstrap_ci needs finite values, got [1.0, nan]."),
    (dict(values=[1.0], confidence=1.0), "confidence must lie in (0, 1), got 1.0."),
    (dict(values=[1.0], num_resamples=0), "num_resamples must be >= 1, got 0."),
])
def test_bootstrap_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        stats.bootstrap_ci(**kwargs)
    assert str(info.value) == message
