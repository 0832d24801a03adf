"""Grid-search a baseline's hyper-parameters on train tasks of a family.

Every grid point runs the same step budget on the same tasks, initialisations and
minibatches (common random numbers), all points in one ``jit(vmap)`` call. The score
of a point is the mean over tasks × seeds of the ``tail_train_loss`` (mean minibatch
train loss over the last 10% of steps, `tasks.evaluation`); a point with any diverged run
scores +inf. The lowest score wins (ties: the
first point in grid order).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from baselines.evaluate import evaluate_grid
from baselines.registry import BaselineSpec
from tasks.evaluation import TAIL_FRACTION, tail_mean  # noqa: F401  (re-exported)

@dataclasses.dataclass(frozen=True)
class TuneResult:
    """Outcome of :func:`tune`.

    Attributes:
      name: baseline name.
      best: the winning hyper-parameters.
      grid: every grid point tried, in order.
      scores: ``[len(grid)]`` score of each point (+inf when any run diverged).
      steps, num_seeds, num_tasks: the budget every point got.
    """

    name: str
    best: dict[str, float]
    grid: list[dict[str, float]]
    scores: np.ndarray
    steps: int
    num_seeds: int
    num_tasks: int

    @property
    def best_at_edge(self) -> bool:
        """True when the winning learning rate is the smallest or largest one tried
        (the grid should probably be widened in that direction)."""
        for name, value in self.best.items():
            if name != "learning_rate":
                continue
            values = sorted({p[name] for p in self.grid})
            if len(values) > 1 and value in (values[0], values[-1]):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (inf scores written as None)."""
        return {
            "name": self.name,
            "best": self.best,
            "grid": self.grid,
            "scores": [float(s) if np.isfinite(s) else None for s in self.scores],
            "steps": self.steps,
            "num_seeds": self.num_seeds,
            "num_tasks": self.num_tasks,
            "best_at_edge": self.best_at_edge,
        }


def grid_scores(train_loss: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """Score per grid point from ``train_loss[grid, task, seed, steps]``; lower is better."""
    finals = tail_mean(train_loss)
    scores = finals.reshape(finals.shape[0], -1).mean(-1)
    bad = diverged.reshape(diverged.shape[0], -1).any(-1) | ~np.isfinite(scores)
    return np.where(bad, np.inf, scores)


def tune(
    spec: BaselineSpec,
    family,
    steps: int,
    num_seeds: int = 2,
    num_tasks: int = 4,
    key: jax.Array | None = None,
    num_evals: int = 1,
) -> TuneResult:
    """Pick ``spec``'s best grid point by final train loss on ``family``'s tasks.

    Args:
      spec: a :class:`baselines.registry.BaselineSpec` (its ``grid`` is searched).
      family: the *train* ``TaskFamily``.
      steps, num_seeds, num_tasks: budget per grid point (the same for all).
      key: PRNG key for tasks/inits/batches (default ``PRNGKey(1)``, distinct from the
        evaluation default so tuning and reporting use different tasks).

    Returns:
      :class:`TuneResult`. If every point diverged, ``best`` is the first point.
    """
    if not isinstance(spec, BaselineSpec):
        raise TypeError(
            f"tune expects a BaselineSpec, got {type(spec).__name__}; use "
            "baselines.registry.get('adam')."
        )
    grid = spec.grid_points()
    key = jax.random.PRNGKey(1) if key is None else key
    result = evaluate_grid(
        spec.make, grid, family, steps, num_seeds, num_tasks, key, spec.eval_params, num_evals
    )
    scores = grid_scores(result.train_loss, result.diverged)
    best_index = int(np.argmin(scores)) if np.isfinite(scores).any() else 0
    return TuneResult(spec.name, grid[best_index], grid, scores, steps, num_seeds, num_tasks)
