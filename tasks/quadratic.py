"""Noisy quadratics with a known optimum, and Andrychowicz et al.'s least-squares variant.

``quadratic``:  f(x) = 0.5 (x - x*)^T A (x - x*) + c,  A = Q diag(eig) Q^T,
  Q a random orthogonal matrix, the condition number kappa = max eig / min eig drawn
  log-uniformly from ``condition_range``, the largest eigenvalue from ``scale_range``
  and the others log-uniformly in between. The training loss adds a zero-mean noise term
  ``noise_std * eps . (x - x*)`` with ``eps ~ N(0, I)`` from the loss key, so each
  gradient is ``A (x - x*) + noise_std * eps`` and the loss at x* is exactly ``c``.

``quadratic-lsq``:  f(x) = ||W x - y||^2 with W (rows x dim) and y standard normal
  (Andrychowicz et al. 2016, 10-d); x* is the least-squares solution.

Params are a float32 vector of shape ``(dim,)`` drawn from ``N(0, init_scale^2 I)``;
``Task.optimum`` is the minimum value and ``Task.argmin`` is x* (also ``cfg.x_star``).
``eval_loss`` is the noise-free value (the split is validated, then ignored).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from tasks import registry
from tasks.base import Task, TaskFamily, check_split
from tasks.sampling import (
    check_positive_int, check_range, log_uniform, set_fields, uniform, variant_key,
)


@struct.dataclass
class QuadraticCfg:
    """One quadratic: ``hessian`` (dim, dim), ``x_star`` (dim,), scalars ``noise_std``,
    ``min_value`` (c) and ``init_scale``."""

    hessian: jax.Array
    x_star: jax.Array
    noise_std: jax.Array
    min_value: jax.Array
    init_scale: jax.Array


@struct.dataclass
class LeastSquaresCfg:
    """``matrix`` W (rows, dim), ``target`` y (rows,), derived ``x_star`` and ``min_value``."""

    matrix: jax.Array
    target: jax.Array
    x_star: jax.Array
    noise_std: jax.Array
    min_value: jax.Array
    init_scale: jax.Array


def _make_task(name: str, value_fn: Callable[[jax.Array], jax.Array], cfg) -> Task:
    dim = cfg.x_star.shape[-1]

    def init(key):
        return cfg.init_scale * jax.random.normal(key, (dim,), jnp.float32)

    def loss(params, key):
        offset = params - cfg.x_star
        eps = jax.random.normal(key, offset.shape, offset.dtype)
        return value_fn(params) + cfg.noise_std * jnp.dot(eps, offset)

    def eval_loss(params, key, split="test"):
        check_split(split)
        del key
        return value_fn(params)

    return Task(name=name, init=init, loss=loss, eval_loss=eval_loss,
                optimum=cfg.min_value, argmin=cfg.x_star)


def quadratic_task(cfg: QuadraticCfg) -> Task:
    """Task for ``f(x) = 0.5 (x - x*)^T H (x - x*) + c`` plus key-driven gradient noise."""

    def value(x):
        offset = x - cfg.x_star
        return 0.5 * offset @ (cfg.hessian @ offset) + cfg.min_value

    return _make_task(f"quadratic/d{cfg.x_star.shape[-1]}", value, cfg)


def least_squares_task(cfg: LeastSquaresCfg) -> Task:
    """Task for ``f(x) = ||W x - y||^2`` plus key-driven gradient noise."""

    def value(x):
        return jnp.sum((cfg.matrix @ x - cfg.target) ** 2)

    return _make_task(f"quadratic-lsq/d{cfg.x_star.shape[-1]}", value, cfg)


@dataclasses.dataclass(frozen=True)
class QuadraticConfig:
    """Options of the ``quadratic`` family (ranges are ``(low, high)``, sampled per task)."""

    dim: int = 10
    condition_range: tuple[float, float] = (10.0, 100.0)
    scale_range: tuple[float, float] = (0.5, 2.0)
    noise_range: tuple[float, float] = (0.0, 0.1)
    min_value_range: tuple[float, float] = (0.0, 0.0)
    init_scale: float = 1.0

    def __post_init__(self):
        condition_range = check_range("condition_range", self.condition_range, positive=True)
        if condition_range[0] < 1.0:
            raise ValueError(
                f"condition_range must be >= 1 (max/min eigenvalue), got {self.condition_range}.")
        noise_range = check_range("noise_range", self.noise_range)
        if noise_range[0] < 0:
            raise ValueError(f"noise_range must be >= 0, got {self.noise_range}.")
        set_fields(
            self, dim=check_positive_int("dim", self.dim), condition_range=condition_range,
            scale_range=check_range("scale_range", self.scale_range, positive=True),
            noise_range=noise_range,
            min_value_range=check_range("min_value_range", self.min_value_range),
            init_scale=float(self.init_scale),
        )


def sample_quadratic(key: jax.Array, config: QuadraticConfig) -> QuadraticCfg:
    """Draw ``H = Q diag(eig) Q^T`` with ``max(eig)/min(eig)`` log-uniform in the
    condition range and ``max(eig)`` log-uniform in the scale range; ``x* ~ N(0, I)``."""
    dim = config.dim
    k_gauss, k_unit = jax.random.split(key)
    gauss = jax.random.normal(k_gauss, (dim * dim + dim,), jnp.float32)
    unit = jax.random.uniform(k_unit, (dim + 4,), jnp.float32)
    q, r = jnp.linalg.qr(gauss[: dim * dim].reshape(dim, dim))
    q = q * jnp.sign(jnp.diagonal(r))  # Haar-distributed orthogonal matrix
    kappa = log_uniform(unit[0], config.condition_range)
    top = log_uniform(unit[1], config.scale_range)
    fractions = unit[4:]
    if dim > 1:  # both ends of [top / kappa, top] attained exactly
        fractions = fractions.at[0].set(0.0).at[-1].set(1.0)
    eig = top * jnp.exp((fractions - 1.0) * jnp.log(kappa))
    hessian = (q * eig) @ q.T
    return QuadraticCfg(
        hessian=0.5 * (hessian + hessian.T),
        x_star=gauss[dim * dim:],
        noise_std=uniform(unit[2], config.noise_range),
        min_value=uniform(unit[3], config.min_value_range),
        init_scale=jnp.float32(config.init_scale),
    )


def build_quadratic(config: QuadraticConfig, variant: str = "train") -> TaskFamily:
    """The ``quadratic`` family for ``config``; ``variant`` salts the sampling key."""
    return TaskFamily(
        name="quadratic",
        sample=lambda key: sample_quadratic(variant_key(key, variant), config),
        task=quadratic_task,
        split=variant,
    )


@dataclasses.dataclass(frozen=True)
class LeastSquaresConfig:
    """Options of ``quadratic-lsq``: ``W`` is ``rows x dim`` (``rows`` 0 means ``dim``)."""

    dim: int = 10
    rows: int = 0
    noise_range: tuple[float, float] = (0.0, 0.0)
    init_scale: float = 1.0

    def __post_init__(self):
        dim = check_positive_int("dim", self.dim)
        rows = dim if self.rows == 0 else check_positive_int("rows", self.rows)
        noise_range = check_range("noise_range", self.noise_range)
        if noise_range[0] < 0:
            raise ValueError(f"noise_range must be >= 0, got {self.noise_range}.")
        set_fields(self, dim=dim, rows=rows, noise_range=noise_range,
                   init_scale=float(self.init_scale))


def sample_least_squares(key: jax.Array, config: LeastSquaresConfig) -> LeastSquaresCfg:
    """Draw ``W ~ N(0,1)^(rows x dim)``, ``y ~ N(0,1)^rows``; x* = lstsq(W, y)."""
    k_gauss, k_noise = jax.random.split(key)
    rows, dim = config.rows, config.dim
    gauss = jax.random.normal(k_gauss, (rows * dim + rows,), jnp.float32)
    matrix, target = gauss[: rows * dim].reshape(rows, dim), gauss[rows * dim:]
    x_star = jnp.linalg.lstsq(matrix, target)[0]
    return LeastSquaresCfg(
        matrix=matrix, target=target, x_star=x_star,
        noise_std=uniform(jax.random.uniform(k_noise), config.noise_range),
        min_value=jnp.sum((matrix @ x_star - target) ** 2),
        init_scale=jnp.float32(config.init_scale),
    )


def build_least_squares(config: LeastSquaresConfig, variant: str = "train") -> TaskFamily:
    """The ``quadratic-lsq`` family for ``config``."""
    return TaskFamily(
        name="quadratic-lsq",
        sample=lambda key: sample_least_squares(variant_key(key, variant), config),
        task=least_squares_task,
        split=variant,
    )


HELDOUT_QUADRATIC = QuadraticConfig(
    dim=20, condition_range=(100.0, 1000.0), scale_range=(0.25, 4.0), noise_range=(0.0, 0.2))
HELDOUT_LEAST_SQUARES = LeastSquaresConfig(dim=20, rows=30)

registry.register_config("quadratic", build_quadratic, QuadraticConfig(), HELDOUT_QUADRATIC)
registry.register_config(
    "quadratic-lsq", build_least_squares, LeastSquaresConfig(), HELDOUT_LEAST_SQUARES)
