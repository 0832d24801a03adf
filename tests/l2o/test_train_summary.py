"""The last lines of ``l2o meta-train``: held-out tasks by name, references, divergence."""

from __future__ import annotations

import math

import jax
import numpy as np

from l2o.app.train_summary import diverged, final_lines, tuned_adam
from meta_train.config import MetaTrainConfig
from tasks import registry
from tasks.describe import describe


def test_divergence_is_non_finite_or_a_blow_up_over_the_untrained_loss():
    untrained = {"final_test_loss": 0.123851}
    assert diverged({"final_test_loss": 4.27534e7, "num_nonfinite": 0}, untrained)
    assert diverged({"final_test_loss": 0.1, "num_nonfinite": 1}, untrained)
    assert diverged({"final_test_loss": math.nan, "num_nonfinite": 0}, untrained)
    assert not diverged({"final_test_loss": 1e3 * 1.123851 - 1, "num_nonfinite": 0}, untrained)


def test_describe_names_family_split_architecture_and_dataset():
    heldout = describe(registry.get("mlp-digits", split="heldout"))
    assert heldout == {"family": "mlp-digits", "split": "heldout",
                       "architecture": "64-64-64-10/relu", "dataset": "digits",
                       "example_task": "mlp-digits/64-64-64-10/relu"}
    assert describe(registry.get("quadratic"))["dataset"] == "synthetic"


def test_final_lines_name_the_tasks_and_flag_divergence():
    config = MetaTrainConfig(family="quadratic", horizon=4, trunc_length=2, eval_tasks=2)
    heldout = registry.get("quadratic", split="heldout")
    final_eval = {"trained": {"final_test_loss": 4.2e7, "num_nonfinite": 0},
                  "initial": {"final_test_loss": 0.12, "num_nonfinite": 0}}
    lines = final_lines(config, heldout, final_eval, reference=None)
    assert lines[0] == "held-out tasks: quadratic, heldout split (d20, synthetic data), 2 tasks x 4 steps"
    assert lines[1] == "final test loss: trained 4.2e+07 | untrained 0.12"
    assert lines[2].startswith("DIVERGED: the trained optimizer blows up on these tasks")


def test_tuned_adam_reference_is_the_best_grid_point():
    from baselines.evaluate import evaluate_grid
    from baselines.registry import get
    from baselines.tune import grid_scores

    heldout = registry.get("quadratic", split="heldout")
    adam = tuned_adam(heldout, horizon=6, num_tasks=2, seed=0)
    spec = get("adam")
    grid = spec.grid_points()
    result = evaluate_grid(spec.make, grid, heldout, 6, 1, 2, jax.random.PRNGKey(3),
                           spec.eval_params, 1)
    best = int(np.argmin(grid_scores(result.train_loss, result.diverged)))
    assert adam["learning_rate"] == grid[best]["learning_rate"]
    np.testing.assert_allclose(adam["final_test_loss"], result.eval_loss[best][..., -1].mean(),
                               rtol=1e-6)
