"""The named end-of-run losses that every harness reports, defined once.

Meta-training's held-out evaluation (`meta_train.evaluate`) and the comparison
(`baselines.evaluate` / `baselines.compare`) report the same quantities under the same
names; none of them is called plain "final loss":

- ``final_train_loss``: ``task.eval_loss(params, k_train, "train")`` after the last step
  (the whole train split when it fits the task's evaluation batch);
- ``final_test_loss``: ``task.eval_loss(params, k_test, "test")`` after the last step;
- ``tail_train_loss``: mean minibatch training loss over the last ``ceil(10%)`` of the
  steps (available every step without extra evaluation; tuning selects on it and speedups
  and win rates compare it).

``k_train, k_test = jax.random.split(key)`` for the evaluation ``key``.
"""

from __future__ import annotations

import math
from typing import Any

import jax

TAIL_FRACTION = 0.1
DEFINITIONS: dict[str, str] = {
    "final_train_loss": "loss on the train split after the last step",
    "final_test_loss": "loss on the test split after the last step",
    "tail_train_loss": "mean minibatch training loss over the last 10% of steps",
}


def final_losses(task: Any, params: Any, key: jax.Array) -> dict[str, jax.Array]:
    """``final_train_loss`` and ``final_test_loss`` of ``task`` at ``params`` (module doc)."""
    k_train, k_test = jax.random.split(key)
    return {"final_train_loss": task.eval_loss(params, k_train, "train"),
            "final_test_loss": task.eval_loss(params, k_test, "test")}


def final_test_metrics(task: Any, params: Any, key: jax.Array) -> dict[str, jax.Array]:
    """The task's test-split ``metrics`` after the last step, loss left out (``{}`` for a
    task without metrics); drawn with the same key as ``final_test_loss``."""
    if task.metrics is None:
        return {}
    metrics = task.metrics(params, jax.random.split(key)[1], "test")
    return {name: value for name, value in metrics.items() if name != "loss"}


def tail_width(steps: int, fraction: float = TAIL_FRACTION) -> int:
    """Steps in the tail of a ``steps``-long run: ``ceil(fraction * steps)`` (>= 1)."""
    return max(1, math.ceil(fraction * steps))


def tail_mean(curves: Any, fraction: float = TAIL_FRACTION) -> Any:
    """``tail_train_loss`` of ``curves[..., steps]`` (NumPy or JAX; NaN propagates)."""
    steps = curves.shape[-1]
    return curves[..., steps - tail_width(steps, fraction):].mean(-1)
