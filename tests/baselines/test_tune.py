"""Grid search picks the grid point with the lowest final train loss."""

import jax
import numpy as np
import pytest

from baselines import evaluate as ev
from baselines import registry
from baselines.tune import tail_mean, tune
from helpers.toy_family import toy_family

KEY = jax.random.PRNGKey(7)


def test_tune_picks_the_best_point_and_scores_match_direct_runs():
    family = toy_family()
    spec = registry.get("sgd").with_grid(learning_rate=(1e-3, 0.1, 10.0))
    result = tune(spec, family, steps=25, num_seeds=2, num_tasks=2, key=KEY)
    assert result.best == {"learning_rate": 0.1}
    assert np.isinf(result.scores[2])  # lr=10 diverges on curvatures up to 2·2
    for point, score in zip(result.grid[:2], result.scores[:2]):
        direct = ev.evaluate(spec.make(**point), family, 25, 2, 2, KEY, num_evals=1)
        np.testing.assert_allclose(score, tail_mean(direct.train_loss).mean(), rtol=1e-5)
    assert result.scores[1] < 0.1 * result.scores[0]
    assert not result.best_at_edge
    record = result.to_dict()
    assert record["scores"][2] is None and record["best"] == {"learning_rate": 0.1}


def test_two_axis_grid_and_edge_warning():
    spec = registry.get("lion").with_grid(learning_rate=(1e-4, 1e-2), weight_decay=(0.0, 0.1))
    result = tune(spec, toy_family(), steps=20, num_seeds=1, num_tasks=2, key=KEY)
    assert len(result.grid) == 4 and result.best["learning_rate"] == 1e-2
    assert result.best_at_edge
    assert result.scores[int(np.argmin(result.scores))] == pytest.approx(min(result.scores))


def test_tune_rejects_non_specs():
    with pytest.raises(TypeError, match="BaselineSpec"):
        tune("adam", toy_family(), steps=5)
