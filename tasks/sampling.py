"""Small helpers shared by the task families: checked ranges and config sampling.

Held-out variants draw from the same keys as training variants would, so every family
folds a per-variant salt into the key first (:func:`variant_key`): the same user key
never yields the same task in both variants.
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


def log_uniform(key: jax.Array, bounds: tuple[float, float], shape: tuple[int, ...] = ()) -> jax.Array:
    """Samples ``exp(U[log low, log high])`` of ``shape`` (float32); ``low == high`` is allowed."""
    low, high = bounds
    u = jax.random.uniform(key, shape, jnp.float32)
    return jnp.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def uniform(key: jax.Array, bounds: tuple[float, float], shape: tuple[int, ...] = ()) -> jax.Array:
    """Samples ``U[low, high]`` of ``shape`` (float32)."""
    low, high = bounds
    return jax.random.uniform(key, shape, jnp.float32, low, high)
