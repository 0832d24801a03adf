"""Small unrolled systems and task families for the meta-training tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from tasks.base import Task, TaskFamily


def _quadratic_task(cfg) -> Task:
    """f(x) = 0.5 * sum(scales * x^2) + noise * <x, z>, z ~ N(0, I) per minibatch."""

    def loss(params, key):
        x = params["x"]
        z = jax.random.normal(key, x.shape)
        return 0.5 * jnp.sum(cfg["scales"] * x**2) + cfg["noise"] * jnp.dot(x, z) + 1e-3

    def init(key):
        return {"x": cfg["init_scale"] * jax.random.normal(key, cfg["scales"].shape)}

    def eval_loss(params, key, split):
        return 0.5 * jnp.sum(cfg["scales"] * params["x"] ** 2) + 1e-3

    return Task(name="toy-quadratic", init=init, loss=loss, eval_loss=eval_loss)


def _quadratic_sample(key):
    k1, k2 = jax.random.split(key)
    return {
        "scales": jnp.exp(jax.random.uniform(k1, (8,), minval=-1.0, maxval=1.0)),
        "init_scale": jnp.float32(1.0),
        "noise": jnp.float32(0.01),
    }


TOY_FAMILY = TaskFamily(name="toy-quadratic", sample=_quadratic_sample, task=_quadratic_task)


def _matrix_task(cfg) -> Task:
    """f(W, b) = 0.5 * ||W u + b - y||^2 for a fixed u, y (two tensors, other shapes)."""

    def loss(params, key):
        u = jnp.linspace(-1.0, 1.0, 3)
        pred = params["w"] @ u + params["b"]
        noise = 0.01 * jax.random.normal(key, pred.shape)
        return 0.5 * jnp.sum((pred - cfg["target"] + noise) ** 2) + 1e-3

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w": jax.random.normal(k1, (5, 3)), "b": jax.random.normal(k2, (5,))}

    def eval_loss(params, key, split):
        return loss(params, jax.random.PRNGKey(0))

    return Task(name="toy-matrix", init=init, loss=loss, eval_loss=eval_loss)


def _matrix_sample(key):
    return {"target": jax.random.normal(key, (5,))}


# A second family whose parameters have other shapes than TOY_FAMILY's (for mixtures).
TOY_MATRIX_FAMILY = TaskFamily(name="toy-matrix", sample=_matrix_sample, task=_matrix_task)


def _nan_task(cfg) -> Task:
    base = _quadratic_task(cfg)

    def loss(params, key):
        value = base.loss(params, key)
        return jnp.where(cfg["poison"], jnp.nan, value)

    return Task(name="toy-nan", init=base.init, loss=loss, eval_loss=base.eval_loss)


@struct.dataclass
class CounterState:
    inner_step: jax.Array
    poisoned: jax.Array


class PoisonableSystem:
    """theta: f32[2]; loss_t = ||theta - 1||^2 (NaN for tasks whose init key is poisoned).

    Horizon 4 steps of length-1 unrolls; task index ``poison_task`` always returns NaN.
    """

    horizon = 4

    def __init__(self, poison_task: int | None):
        self.poison_task = poison_task
        self._count = 0

    def init(self, key, theta):
        # The task identity is carried by the first word of its key (set by the test).
        poisoned = jnp.asarray(False) if self.poison_task is None else key[0] == jnp.uint32(self.poison_task)
        return CounterState(inner_step=jnp.int32(0), poisoned=poisoned)

    def unroll(self, theta, state, key, length):
        loss = jnp.sum((theta - 1.0) ** 2)
        loss = jnp.where(state.poisoned, jnp.nan, loss)
        step = state.inner_step + length
        reset = step >= self.horizon
        return state.replace(inner_step=jnp.where(reset, 0, step)), loss, reset
