"""A tiny noisy-quadratic TaskFamily following tasks.base, local to these tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tasks.base import Task, TaskFamily

DIM = 4


def _sample(key):
    key_scale, key_center = jax.random.split(key)
    return {
        "scale": jax.random.uniform(key_scale, (DIM,), minval=0.5, maxval=2.0),
        "center": jax.random.normal(key_center, (DIM,)),
    }


def _task(cfg, noise: float = 0.1):
    def init(key):
        return {"w": jax.random.normal(key, (DIM,)), "b": jnp.zeros(())}

    def loss(params, key):
        shift = noise * jax.random.normal(key, (DIM,))
        diff = params["w"] + params["b"] - cfg["center"] + shift
        return 0.5 * jnp.sum(cfg["scale"] * diff**2)

    def eval_loss(params, key, split):
        del key, split
        diff = params["w"] + params["b"] - cfg["center"]
        return 0.5 * jnp.sum(cfg["scale"] * diff**2)

    return Task("toy-quadratic", init, loss, eval_loss, optimum=0.0)


def toy_family(split: str = "train") -> TaskFamily:
    """Noisy diagonal quadratics in 4 + 1 parameters."""
    return TaskFamily("toy-quadratic", _sample, _task, split)
