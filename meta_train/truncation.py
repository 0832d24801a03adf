"""How a horizon splits into truncations: the one place that checks ``K`` divides ``H``.

Inner runs of ``horizon`` steps are unrolled ``trunc_length`` steps per outer step, and a
run never crosses an unroll boundary, so ``trunc_length`` must divide ``horizon``. With
sampled horizons (`sample_horizon`) every run draws its length log-uniformly from
``[low, high]``, both multiples of ``trunc_length``, and rounds it to such a multiple.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp


def divisors(n: int) -> list[int]:
    """Every positive divisor of the positive int ``n``, ascending."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"divisors needs a positive int, got {n!r}.")
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small) | {n // d for d in small})


def nearest_divisor(n: int, k: int) -> int:
    """The divisor of ``n`` closest to ``k`` (the smaller one on a tie)."""
    return min(divisors(n), key=lambda d: (abs(d - k), d))


def trunc_length_error(horizon: int, trunc_length: int) -> str | None:
    """Why ``trunc_length`` does not fit ``horizon`` (None when it divides it)."""
    if horizon % trunc_length == 0:
        return None
    return (f"trunc_length={trunc_length} must divide horizon={horizon} (divisors of "
            f"{horizon}: {divisors(horizon)}); try trunc_length="
            f"{nearest_divisor(horizon, trunc_length)}")


def check_trunc_length(horizon: int, trunc_length: int) -> None:
    """Raise ``ValueError`` (naming the divisors) unless ``trunc_length`` divides ``horizon``."""
    problem = trunc_length_error(horizon, trunc_length)
    if problem:
        raise ValueError(problem + ".")


def horizon_range_error(horizon_range: Any, trunc_length: int) -> str | None:
    """Why ``horizon_range`` is not a valid ``[low, high]`` of sampled inner horizons for
    ``trunc_length`` (None when it is): two ints, ``trunc_length <= low <= high``, both
    multiples of ``trunc_length``."""
    if (not isinstance(horizon_range, (list, tuple)) or len(horizon_range) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in horizon_range)):
        return (f"horizon_range must be a [min, max] pair of ints (inner steps), got "
                f"{horizon_range!r}")
    low, high = horizon_range
    if low > high:
        return (f"horizon_range {list(horizon_range)} has min {low} > max {high}; give "
                "[min, max] with min <= max")
    if low < trunc_length:
        return (f"horizon_range min {low} is below trunc_length={trunc_length}; a run needs "
                "at least one truncation")
    bad = [v for v in (low, high) if v % trunc_length]
    if bad:
        fixed = [max(trunc_length, low // trunc_length * trunc_length),
                 -(-high // trunc_length) * trunc_length]
        return (f"horizon_range {list(horizon_range)} must hold multiples of trunc_length="
                f"{trunc_length} (runs end at a truncation boundary); try {fixed}")
    return None


def sample_horizon(key: jax.Array, low: int, high: int, multiple: int) -> jax.Array:
    """An inner horizon (i32[]) drawn log-uniformly in ``[low, high]`` and rounded to the
    nearest multiple of ``multiple`` (``low`` and ``high`` are multiples of it)."""
    u = jax.random.uniform(key, (), jnp.float32)
    log_low, log_high = math.log(low), math.log(high)
    value = jnp.exp(log_low + u * (log_high - log_low))
    rounded = jnp.round(value / multiple) * multiple
    return jnp.clip(rounded, low, high).astype(jnp.int32)
