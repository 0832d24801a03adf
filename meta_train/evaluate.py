"""Held-out evaluation: train fresh tasks for a whole horizon with fixed ``theta``.

Used periodically during meta-training (and for the final report of a run): for each
of ``num_tasks`` tasks drawn from a (held-out) family, run ``num_steps`` steps of the
learned optimizer from fresh parameters and record the training-loss curve and the named
end-of-run losses of `tasks.evaluation` (``final_train_loss``, ``final_test_loss``,
``tail_train_loss``), the same quantities the comparison reports. One ``jit(vmap)`` over
tasks.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from meta_train.inner import LearnedOptimizerSystem
from tasks.evaluation import final_losses, tail_mean


def _run_one(system: LearnedOptimizerSystem, theta: Any, key: jax.Array):
    """One full inner run: ``(losses f32[T], final_train_loss, final_test_loss)``."""
    k_init, k_eval = jax.random.split(key)
    state = system.init(k_init, theta)

    def body(state, _):
        state, loss, _ = system.inner_step(theta, state)
        return state, loss

    state, losses = jax.lax.scan(body, state, None, length=system.horizon)
    final = final_losses(system.family.task(state.cfg), state.params, k_eval)
    return losses, final["final_train_loss"], final["final_test_loss"]


@partial(jax.jit, static_argnames=("family", "lopt", "num_tasks", "num_steps"))
def evaluate_theta(
    family: Any, lopt: Any, theta: Any, key: jax.Array, num_tasks: int, num_steps: int
) -> dict:
    """Train ``num_tasks`` fresh tasks of ``family`` for ``num_steps`` steps with ``theta``.

    Returns a dict of arrays: ``losses`` f32[num_tasks, num_steps] (minibatch training
    losses before each step) and f32[num_tasks] ``final_train_loss``,
    ``final_test_loss`` and ``tail_train_loss`` (`tasks.evaluation`). ``family`` and
    ``lopt`` must be hashable.
    """
    system = LearnedOptimizerSystem(family=family, lopt=lopt, horizon=num_steps)
    keys = jax.random.split(key, num_tasks)
    losses, train, test = jax.vmap(lambda k: _run_one(system, theta, k))(keys)
    return {"losses": losses, "final_train_loss": train, "final_test_loss": test,
            "tail_train_loss": tail_mean(losses)}


def mean_log_loss(losses: Any) -> float:
    """Mean over tasks and steps of ``log(loss)`` of f32[tasks, steps] training curves:
    the area under the log-loss curve, lower for faster training whatever the loss's
    scale; ``inf`` when any loss is non-finite (a diverged run is never the best one)."""
    losses = jnp.asarray(losses)
    if not bool(jnp.all(jnp.isfinite(losses))):
        return float("inf")
    return float(jnp.mean(jnp.log(jnp.maximum(losses, jnp.finfo(losses.dtype).tiny))))


def summarize(result: dict) -> dict:
    """Scalars for logging: means over tasks (non-finite values counted, not averaged),
    and `mean_log_loss` of the training curves."""
    summary = {}
    for name in ("final_train_loss", "final_test_loss", "tail_train_loss"):
        values = jnp.asarray(result[name])
        finite = jnp.isfinite(values)
        summary[name] = float(jnp.sum(jnp.where(finite, values, 0.0)) / max(1, int(finite.sum())))
    last = jnp.asarray(result["losses"])[:, -1]
    summary["last_batch_loss"] = float(jnp.nanmean(last))
    summary["num_nonfinite"] = int(jnp.sum(~jnp.isfinite(jnp.asarray(result["final_test_loss"]))))
    summary["mean_log_loss"] = mean_log_loss(result["losses"])
    return summary
