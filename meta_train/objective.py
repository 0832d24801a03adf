"""Meta-objective helpers: per-family normalisation of inner losses and NaN guards.

Inner losses of different tasks live on different scales (a quadratic starts at 1e3, a
classifier at log(10)); the meta-loss therefore compares each loss with the initial loss
of its own inner run, ``ratio = loss / loss_scale``:

* ``"log"``        term = log(ratio), clipped to [log(min_ratio), log(max_ratio)]
* ``"normalized"`` term = ratio, clipped to [0, max_ratio]
* ``"raw"``        term = loss, clipped to [-max_ratio, max_ratio]

``min_ratio`` (default `TINY_RATIO`) floors the log: with a floor such as 1e-4 a run that
has fallen to 1e-4 of its initial loss scores the same as one at 1e-9, so tasks that
memorise their training set (losses falling towards 0) stop dominating the estimate while
every relative improvement above the floor counts equally. The other kinds ignore it.

Non-finite terms stay non-finite here on purpose: `sanitize` (applied once per particle
by the estimators) replaces them with a penalty and counts them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

META_LOSS_KINDS: tuple[str, ...] = ("log", "normalized", "raw")
TINY_RATIO = 1e-12


def check_kind(kind: str) -> None:
    """Raise `ValueError` unless ``kind`` is one of `META_LOSS_KINDS`."""
    if kind not in META_LOSS_KINDS:
        raise ValueError(f"unknown meta-loss kind {kind!r}; expected one of {META_LOSS_KINDS}.")


def check_ratio_range(min_ratio: float, max_ratio: float) -> None:
    """`ValueError` unless ``0 < min_ratio < max_ratio``."""
    if not 0.0 < min_ratio < max_ratio:
        raise ValueError(
            f"min_ratio must be in (0, max_ratio={max_ratio!r}); got {min_ratio!r}.")


def meta_loss_bounds(kind: str, max_ratio: float,
                     min_ratio: float = TINY_RATIO) -> tuple[float, float]:
    """``(low, high)`` clip bounds of one meta-loss term of ``kind``."""
    check_kind(kind)
    check_ratio_range(min_ratio, max_ratio)
    if kind == "log":
        return math.log(min_ratio), math.log(max_ratio)
    if kind == "normalized":
        return 0.0, float(max_ratio)
    return -float(max_ratio), float(max_ratio)


def loss_scale(initial_loss: jax.Array) -> jax.Array:
    """Normaliser of a run: ``|initial_loss|`` if finite and > 1e-8, else 1 (f32[])."""
    magnitude = jnp.abs(initial_loss)
    usable = jnp.isfinite(magnitude) & (magnitude > 1e-8)
    return jnp.where(usable, magnitude, 1.0).astype(jnp.float32)


def meta_loss_term(loss: jax.Array, scale: jax.Array, kind: str, max_ratio: float,
                   min_ratio: float = TINY_RATIO) -> jax.Array:
    """One step's meta-loss (see module docstring); NaN/inf losses stay non-finite.

    Args:
      loss: inner loss, any shape.
      scale: positive normaliser broadcastable to ``loss`` (see `loss_scale`).
      kind: one of `META_LOSS_KINDS` (static).
      max_ratio: upper clip, in units of the initial loss (static float > 0).
      min_ratio: floor of the ``"log"`` kind, in units of the initial loss (static float
        in ``(0, max_ratio)``).
    """
    low, high = meta_loss_bounds(kind, max_ratio, min_ratio)
    if kind == "log":
        value = jnp.log(jnp.maximum(loss / scale, min_ratio))
    elif kind == "normalized":
        value = loss / scale
    else:
        value = loss
    clipped = jnp.clip(value, low, high)
    return jnp.where(jnp.isfinite(loss), clipped, jnp.nan)


def sanitize(values: jax.Array, clip: float, nan_value: float) -> tuple[jax.Array, jax.Array]:
    """``(clip(values, -clip, clip) with NaN/inf -> nan_value, count of non-finite)``."""
    finite = jnp.isfinite(values)
    safe = jnp.where(finite, jnp.clip(values, -clip, clip), nan_value)
    return safe, jnp.sum(~finite).astype(jnp.int32)
