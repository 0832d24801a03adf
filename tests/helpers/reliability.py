"""Small configs, task families and optimizers shared by the reliability tests.

Everything here is module-level and hashable, so jitted functions keyed on these objects
(the estimator step, held-out evaluation) compile once per test session.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import l2o
from meta_train.config import MetaTrainConfig
from tasks.base import Task, TaskFamily

DIM = 6
# Fault kinds drawn by `FAULTY_FAMILY.sample`: a clean task, NaN loss and gradients, or an
# infinite loss with infinite/NaN gradients.
CLEAN, NAN, INF = 0, 1, 2
TIMING_COLUMNS = ("wall_time", "steps_per_s")


def tiny_config(out_dir: str | Path, **overrides: Any) -> MetaTrainConfig:
    """A meta-training run on the registered quadratic family that compiles in seconds.

    4 particles (2 tasks x 1 antithetic pair), horizon 4, truncation 2, MLP optimizer with
    one hidden layer of 4 units, no periodic evaluation, one device.
    """
    fields = dict(
        family="quadratic", lopt="mlp", lopt_config={"hidden_sizes": [4]}, horizon=4,
        trunc_length=2, num_tasks=2, num_pairs=1, outer_steps=6, sigma=0.05, outer_lr=1e-2,
        eval_every=0, eval_tasks=1, ckpt_every=0, log_every=1, shard=False,
        out_dir=str(out_dir),
    )
    fields.update(overrides)
    return MetaTrainConfig(**fields)


def metrics_rows(path: str | Path) -> list[dict]:
    """Rows of a run's ``metrics.csv``."""
    with open(path) as f:
        return list(csv.DictReader(f))


def trajectory(rows: list[dict]) -> list[dict]:
    """Metrics rows without the wall-clock columns (those differ between runs)."""
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def tree_bytes(tree: Any) -> list[bytes]:
    """Raw bytes of every leaf, to compare pytrees bit for bit."""
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


# ----------------------------------------------------------------------- task families
def _quadratic_task(cfg: dict) -> Task:
    """0.5 * sum(scales * x^2) + 1e-3, then poisoned according to ``cfg["fault"]``."""

    def clean(params, key):
        del key
        return 0.5 * jnp.sum(cfg["scales"] * params["x"] ** 2) + 1e-3

    def loss(params, key):
        value = clean(params, key)
        # NaN * sum(x): NaN loss *and* NaN gradient; x^2 * 1e38^2: inf loss, inf gradient.
        nan_term = jnp.where(cfg["fault"] == NAN, jnp.nan, 0.0) * jnp.sum(params["x"])
        inf_factor = jnp.where(cfg["fault"] == INF, jnp.float32(1e38), 1.0)
        return (value + nan_term) * inf_factor * inf_factor

    def init(key):
        return {"x": jax.random.normal(key, (DIM,), jnp.float32)}

    def eval_loss(params, key, split):
        return loss(params, key)

    return Task(name="rel-quadratic", init=init, loss=loss, eval_loss=eval_loss)


def _sample(fault_probs: tuple[float, float, float]):
    def sample(key):
        k_scales, k_fault = jax.random.split(key)
        return {
            "scales": jnp.exp(jax.random.uniform(k_scales, (DIM,), minval=-1.0, maxval=1.0)),
            "fault": jax.random.choice(k_fault, 3, p=jnp.asarray(fault_probs)).astype(jnp.int32),
        }

    return sample


CLEAN_FAMILY = TaskFamily(name="rel-clean", sample=_sample((1.0, 0.0, 0.0)), task=_quadratic_task)
FAULTY_FAMILY = TaskFamily(
    name="rel-faulty", sample=_sample((0.4, 0.3, 0.3)), task=_quadratic_task
)


# ----------------------------------------------------------------------- optimizers
SMALL_MLP = l2o.MLPOptimizer(hidden_sizes=(4,))
SMALL_LSTM = l2o.LSTMOptimizer(hidden_size=4, num_layers=1)


@dataclasses.dataclass(frozen=True, repr=False)
class FlakyOptimizer(l2o.LearnedOptimizer):
    """A learned optimizer whose update is NaN on every ``period``-th step (1-based).

    Delegates everything else to ``inner``; used to check that the loss guard (and the
    estimators without it) contain a learned rule that blows up.
    """

    inner: Any = SMALL_MLP
    period: int = 3

    name = "flaky"

    def feature_names(self):
        """The inner optimizer's inputs."""
        return self.inner.feature_names()

    def init_meta_params(self, key):
        """The inner optimizer's theta."""
        return self.inner.init_meta_params(key)

    def init(self, theta, params, num_steps):
        """The inner optimizer's state."""
        return self.inner.init(theta, params, num_steps)

    def update(self, theta, grads, state, params, loss=None):
        """Inner update, replaced by NaN when ``(state.step + 1) % period == 0``."""
        updates, new_state = self.inner.update(theta, grads, state, params, loss)
        broken = (state.step + 1) % self.period == 0
        updates = jax.tree.map(lambda u: jnp.where(broken, jnp.nan, u), updates)
        return updates, new_state
