"""A tiny noisy-quadratic TaskFamily following tasks.base, local to these tests."""

from __future__ import annotations

import functools

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


def quadratic(params, cfg, shift=0.0):
    """0.5 Σ scale (w + b − center + shift)²."""
    diff = params["w"] + params["b"] - cfg["center"] + shift
    return 0.5 * jnp.sum(cfg["scale"] * diff**2)


def _task(cfg, noise: float, init_scale: float):
    def init(key):
        return {"w": init_scale * jax.random.normal(key, (DIM,)), "b": jnp.zeros(())}

    def loss(params, key):
        return quadratic(params, cfg, noise * jax.random.normal(key, (DIM,)))

    def eval_loss(params, key, split):
        del key, split
        return quadratic(params, cfg)

    return Task("toy-quadratic", init, loss, eval_loss, optimum=0.0)


def toy_family(noise: float = 0.1, init_scale: float = 1.0, split: str = "train") -> TaskFamily:
    """Noisy diagonal quadratics in 4 + 1 parameters (deterministic when noise=0 and
    init_scale=0)."""
    return TaskFamily(
        "toy-quadratic", _sample, functools.partial(_task, noise=noise, init_scale=init_scale),
        split,
    )
