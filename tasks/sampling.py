"""Small helpers shared by the task families: checked ranges and config sampling.

Held-out variants draw from the same keys as training variants would, so every family
folds a per-variant salt into the key first (:func:`variant_key`): the same user key
never yields the same task in both variants.

Samplers draw all their random numbers in one or two ``jax.random`` calls and map
uniforms to ranges with the helpers below: every random op costs compile time (about
0.25 s each on a CPU), and a family's sampler is compiled into every meta-training step.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

_VARIANT_SALT = {"train": 0, "heldout": 1_000_003}


def variant_key(key: jax.Array, variant: str) -> jax.Array:
    """``key`` folded with a constant that depends on ``variant`` ("train"/"heldout")."""
    return jax.random.fold_in(key, _VARIANT_SALT[variant])


def check_range(
    name: str, value: Sequence[float], *, positive: bool = False
) -> tuple[float, float]:
    """Validate a ``(low, high)`` pair with ``low <= high`` (and ``low > 0`` if ``positive``).

    Returns the pair as floats; raises ``ValueError`` saying what was given otherwise.
    """
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}.") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}.")
    if positive and low <= 0:
        raise ValueError(f"{name} must be positive (it is sampled log-uniformly), got {value!r}.")
    return low, high


def set_fields(config: object, **values: object) -> None:
    """Normalise fields of a frozen dataclass inside its ``__post_init__``."""
    for name, value in values.items():
        object.__setattr__(config, name, value)


def check_positive_int(name: str, value: object) -> int:
    """Validate a positive integer option; returns it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def log_uniform(u: jax.Array, bounds: tuple[float, float]) -> jax.Array:
    """Maps ``u ~ U[0, 1)`` to ``exp(log low + u (log high - log low))`` (log-uniform)."""
    low, high = bounds
    return jnp.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def uniform(u: jax.Array, bounds: tuple[float, float]) -> jax.Array:
    """Maps ``u ~ U[0, 1)`` to ``low + u (high - low)``."""
    low, high = bounds
    return low + u * (high - low)


def categorical_index(u: jax.Array, num: int) -> jax.Array:
    """Maps ``u ~ U[0, 1)`` to a uniform int32 index in ``[0, num)``."""
    return jnp.clip(jnp.floor(u * num), 0, num - 1).astype(jnp.int32)
