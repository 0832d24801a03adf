"""Shifted, scaled N-d Rosenbrock functions (minimum 0 at a known point).

    f(x) = s * sum_{i<N-1} [ b (z_{i+1} - z_i^2)^2 + (1 - z_i)^2 ],   z = x - shift

The minimiser is ``x* = shift + 1`` with ``f(x*) = 0``. Per task the curvature ``b``
(classically 100) and the scale ``s`` are drawn log-uniformly and the shift uniformly.
Params are a float32 vector ``(dim,)`` initialised at ``x* + U[-init_radius, init_radius]``
per coordinate, away from the valley floor. The loss is deterministic (the key is unused).

``rosenbrock`` is the 2-d function, ``rosenbrock-nd`` the 10-d chained one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from tasks import registry
from tasks.base import Task, TaskFamily, check_split
from tasks.sampling import (
    check_positive_int, check_range, log_uniform, set_fields, uniform, variant_key,
)


@struct.dataclass
class RosenbrockCfg:
    """``shift`` (dim,), scalars ``curvature`` (b), ``scale`` (s) and ``init_radius``."""

    shift: jax.Array
    curvature: jax.Array
    scale: jax.Array
    init_radius: jax.Array


def rosenbrock_value(x: jax.Array, curvature=100.0, scale=1.0) -> jax.Array:
    """Unshifted Rosenbrock ``s * sum b (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`` of ``x`` (dim,)."""
    head, tail = x[:-1], x[1:]
    return scale * jnp.sum(curvature * (tail - head**2) ** 2 + (1.0 - head) ** 2)


def rosenbrock_task(cfg: RosenbrockCfg) -> Task:
    """Task for the shifted, scaled Rosenbrock function of ``cfg``."""
    dim = cfg.shift.shape[-1]
    argmin = cfg.shift + 1.0

    def init(key):
        offset = jax.random.uniform(key, (dim,), jnp.float32, -1.0, 1.0)
        return argmin + cfg.init_radius * offset

    def value(params):
        return rosenbrock_value(params - cfg.shift, cfg.curvature, cfg.scale)

    def loss(params, key):
        del key
        return value(params)

    def eval_loss(params, key, split="test"):
        check_split(split)
        del key
        return value(params)

    return Task(name=f"rosenbrock/d{dim}", init=init, loss=loss, eval_loss=eval_loss,
                optimum=jnp.zeros((), jnp.float32), argmin=argmin)


@dataclasses.dataclass(frozen=True)
class RosenbrockConfig:
    """Options: ``dim`` >= 2; ``(low, high)`` ranges for b, s and each shift coordinate."""

    dim: int = 2
    curvature_range: tuple[float, float] = (50.0, 150.0)
    scale_range: tuple[float, float] = (0.5, 2.0)
    shift_range: tuple[float, float] = (-1.0, 1.0)
    init_radius: float = 2.0

    def __post_init__(self):
        dim = check_positive_int("dim", self.dim)
        if dim < 2:
            raise ValueError(f"Rosenbrock needs dim >= 2, got dim={dim}.")
        if not float(self.init_radius) > 0:
            raise ValueError(f"init_radius must be > 0, got {self.init_radius!r}.")
        set_fields(
            self, dim=dim,
            curvature_range=check_range("curvature_range", self.curvature_range, positive=True),
            scale_range=check_range("scale_range", self.scale_range, positive=True),
            shift_range=check_range("shift_range", self.shift_range),
            init_radius=float(self.init_radius),
        )


def sample_rosenbrock(key: jax.Array, config: RosenbrockConfig) -> RosenbrockCfg:
    """Draw one Rosenbrock config from ``config``'s ranges."""
    unit = jax.random.uniform(key, (config.dim + 2,), jnp.float32)
    return RosenbrockCfg(
        shift=uniform(unit[2:], config.shift_range),
        curvature=log_uniform(unit[0], config.curvature_range),
        scale=log_uniform(unit[1], config.scale_range),
        init_radius=jnp.float32(config.init_radius),
    )


def build_rosenbrock(config: RosenbrockConfig, variant: str = "train", name: str = "rosenbrock"):
    """The Rosenbrock family for ``config``; ``variant`` salts the sampling key."""
    return TaskFamily(
        name=name,
        sample=lambda key: sample_rosenbrock(variant_key(key, variant), config),
        task=rosenbrock_task,
        split=variant,
    )


def _build_nd(config: RosenbrockConfig, variant: str = "train") -> TaskFamily:
    return build_rosenbrock(config, variant, name="rosenbrock-nd")


registry.register_config(
    "rosenbrock", build_rosenbrock, RosenbrockConfig(),
    RosenbrockConfig(dim=3, curvature_range=(150.0, 400.0), shift_range=(-2.0, 2.0)),
)
registry.register_config(
    "rosenbrock-nd", _build_nd, RosenbrockConfig(dim=10),
    RosenbrockConfig(dim=20, curvature_range=(150.0, 400.0), shift_range=(-2.0, 2.0)),
)
