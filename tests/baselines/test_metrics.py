"""Curve metrics against brute-force definitions and hand-worked examples."""

import numpy as np
import pytest

from baselines import metrics
from baselines.tune import grid_scores, tail_mean


def test_smooth_is_a_trailing_mean():
    rng = np.random.default_rng(0)
    curves = rng.normal(size=(2, 3, 17))
    window = 4
    smoothed = metrics.smooth(curves, window)
    for t in range(17):
        np.testing.assert_allclose(smoothed[..., t], curves[..., max(0, t - window + 1): t + 1].mean(-1))
    assert metrics.smoothing_window(100) == 10 and metrics.smoothing_window(5) == 1
    with pytest.raises(ValueError, match="window must be >= 1"):
        metrics.smooth(curves, 0)


def test_tail_mean_and_smoothed_end_agree():
    curves = np.arange(40.0).reshape(2, 20)
    np.testing.assert_allclose(tail_mean(curves), [18.5, 38.5])  # last 2 of 20
    smoothed = metrics.smooth(curves, metrics.smoothing_window(20))
    np.testing.assert_allclose(smoothed[:, -1], tail_mean(curves))


def test_steps_to_target_and_speedups():
    curves = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [5.0, np.nan, np.nan, np.nan, np.nan]])
    steps = metrics.steps_to_target(curves, np.array([3.0, 3.0]))
    np.testing.assert_array_equal(steps, [3.0, np.inf])
    np.testing.assert_allclose(metrics.speedups(np.array([6.0, 6.0]), steps), [2.0, 0.0])


def test_win_rate_counts_ties_half_and_nan_as_loss():
    losses = np.array([1.0, 2.0, np.nan, 3.0])
    reference = np.array([2.0, 2.0, 1.0, 1.0])
    assert metrics.win_rate(losses, reference) == pytest.approx((1 + 0.5 + 0 + 0) / 4)


def test_performance_profile_hand_example():
    times = np.array([[10.0, 20.0, np.inf], [20.0, 10.0, np.inf], [15.0, np.inf, 30.0]])
    taus = np.array([1.0, 1.5, 2.0])
    profile = metrics.performance_profile(times, taus)
    # best per task: 10, 10, 30
    np.testing.assert_allclose(profile, [[1 / 3, 1 / 3, 2 / 3], [1 / 3, 1 / 3, 2 / 3], [1 / 3, 2 / 3, 2 / 3]])


def test_grid_scores_penalise_divergence():
    train_loss = np.ones((3, 2, 2, 10)) * np.array([3.0, 1.0, 0.5])[:, None, None, None]
    diverged = np.zeros((3, 2, 2), bool)
    diverged[2, 1, 0] = True
    np.testing.assert_allclose(grid_scores(train_loss, diverged), [3.0, 1.0, np.inf])
