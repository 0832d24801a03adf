"""The last lines of ``l2o meta-train``: which held-out tasks, and how good is the number.

    for line in final_lines(config, heldout_family, result.final_eval, reference="adam"):
        print(line)

Prints the held-out tasks by name (`tasks.describe`), the trained optimizer's final test
loss beside the untrained one's and, unless ``reference`` is None, beside Adam's with the
learning rate tuned on tasks of the same family split and horizon. A final loss that is
non-finite or far above the untrained one is called divergence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BLOWUP = 1e3  # the divergence rule of baselines.evaluate: loss > BLOWUP * (|reference| + 1)


def diverged(summary: dict, untrained: dict) -> bool:
    """True when the trained run's final test loss is non-finite on some task, or its mean
    exceeds ``BLOWUP * (|untrained| + 1)``."""
    loss = summary["final_test_loss"]
    return (summary.get("num_nonfinite", 0) > 0 or not math.isfinite(loss)
            or loss > BLOWUP * (abs(untrained["final_test_loss"]) + 1))


def tuned_adam(heldout: Any, horizon: int, num_tasks: int, seed: int) -> dict:
    """Adam tuned over its learning-rate grid on ``num_tasks`` tasks of ``heldout`` (one seed,
    ``horizon`` steps, picked by tail train loss); ``{"learning_rate", "final_test_loss"}``."""
    import jax

    from baselines.registry import get
    from baselines.tune import grid_scores
    from baselines.evaluate import evaluate_grid

    spec = get("adam")
    grid = spec.grid_points()
    result = evaluate_grid(spec.make, grid, heldout, horizon, 1, num_tasks,
                           jax.random.PRNGKey(seed + 3), spec.eval_params, 1)
    scores = grid_scores(result.train_loss, result.diverged)
    best = int(np.argmin(scores)) if np.isfinite(scores).any() else 0
    final = np.asarray(result.eval_loss[best][..., -1], float)
    final = final[np.isfinite(final)]
    return {"learning_rate": float(grid[best]["learning_rate"]),
            "final_test_loss": float(final.mean()) if final.size else float("nan")}


def final_lines(config: Any, heldout: Any, final_eval: dict, reference: str | None = "adam"):
    """Lines naming the held-out tasks and comparing the final test losses (see module)."""
    from tasks.describe import describe, sentence

    mixture = getattr(config, "mixture", None)
    name = config.heldout_family or (mixture[0]["family"] if mixture else config.family)
    tasks = describe(heldout, name)
    trained, initial = final_eval["trained"], final_eval["initial"]
    lines = [f"held-out tasks: {sentence(tasks)}, {config.eval_tasks} tasks x "
             f"{config.horizon} steps"]
    parts = [f"trained {trained['final_test_loss']:.6g}",
             f"untrained {initial['final_test_loss']:.6g}"]
    if reference is not None:
        adam = tuned_adam(heldout, config.horizon, config.eval_tasks, config.seed)
        parts.append(f"Adam tuned on these tasks (learning_rate {adam['learning_rate']:.3g}) "
                     f"{adam['final_test_loss']:.6g}")
    lines.append("final test loss: " + " | ".join(parts))
    if diverged(trained, initial):
        lines.append(f"DIVERGED: the trained optimizer blows up on these tasks "
                     f"({trained['num_nonfinite']} of {config.eval_tasks} non-finite); "
                     "do not use this theta on them")
    return lines
