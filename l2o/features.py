"""Per-coordinate input features of the learned optimizers.

Gradient preprocessing (`lstm_preprocess`), training-progress features
(`progress_features`), per-tensor second-moment normalisation of feature columns
(`second_moment_normalize`), the NaN/inf clean-up applied to every input (`sanitize`),
the bias-corrected Adam direction of the nominal terms (`adam_direction`) and the
muP-style fan-in scaling of updates (`fan_in_multiplier`).
They act on the flat (N,) / (N, F) arrays of `l2o.flat`.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from l2o.flat import TreeLayout

# Largest gradient magnitude fed to the optimizers: its square still fits in float32.
GRAD_LIMIT = 1e15


def sanitize(x: jax.Array, limit: float) -> jax.Array:
    """NaN -> 0 and clip to [-limit, limit] (infinities become +-limit).

    One compare, one select and the clip (the clip already maps +-inf to +-limit): fewer
    elementwise ops than ``nan_to_num`` followed by a clip, same values."""
    return jnp.where(jnp.isnan(x), 0.0, jnp.clip(x, -limit, limit)).astype(x.dtype)


def row_sums_of_squares(x: jax.Array) -> jax.Array:
    """Sum of squares of each row of ``x`` (rows on the leading axis, the rest flattened): (R,).

    Written as a batched dot product: XLA's CPU backend runs it as one fused
    multiply-reduce per array, without materialising ``x**2`` or the rows one by one
    (the MLP optimizer's update moves half the bytes it did with per-row reductions,
    `benchmarks/results/engine.md`). Sums in another order than ``jnp.sum``: float32
    rounding."""
    x = x.reshape(x.shape[0], -1)
    return jnp.einsum("rn,rn->r", x, x)


def adam_direction(m: jax.Array, v: jax.Array, t: jax.Array, beta1: float, beta2: float,
                   eps: float) -> jax.Array:
    """Adam's step direction m_hat / (sqrt(v_hat) + eps) at step ``t`` (1-based, float):
    m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)."""
    m_hat = m / (1.0 - beta1**t)
    v_hat = v / (1.0 - beta2**t)
    return m_hat / (jnp.sqrt(v_hat) + eps)


def second_moment_normalize(
    features: jax.Array, layout: TreeLayout, over: str = "tensor", eps: float = 1e-12
) -> jax.Array:
    """Divide each feature column by its root-mean-square.

    ``features`` is (N, F). With ``over="tensor"`` the mean of x^2 is taken over the
    coordinates of each leaf separately:
    x_ij / sqrt(mean_{k in tensor(i)} x_kj^2 + eps). With ``over="all"`` it is taken over
    all N coordinates at once (cheaper, one reduction).

    The per-tensor statistics use static slices of the flat rows (one reduction per
    leaf) and the normalised slices are concatenated back: no scatter or gather.
    """
    if over not in ("tensor", "all"):
        raise ValueError(f"over must be 'tensor' or 'all'; got {over!r}.")

    def normalize(x):
        return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=0, keepdims=True) + eps)

    if over == "all" or len(layout.sizes) == 1:
        return normalize(features)
    # Materialise the features once: otherwise XLA re-fuses their producers into every
    # per-leaf reduction. Concatenating normalised slices (rather than multiplying by a
    # concatenation of broadcast scales) keeps later elementwise fusions fast on CPU.
    features = jax.lax.optimization_barrier(features)
    offsets = np.cumsum((0,) + layout.sizes)
    return jnp.concatenate([normalize(features[a:b]) for a, b in zip(offsets[:-1], offsets[1:])])


def lstm_preprocess(x: jax.Array, p: float = 10.0) -> jax.Array:
    """Andrychowicz et al. (2016) gradient preprocessing, (N,) -> (N, 2).

    (log|x| / p, sign(x)) where |x| >= e^-p, else (-1, e^p x).
    """
    magnitude = jnp.abs(x)
    big = magnitude >= math.exp(-p)
    log_part = jnp.log(jnp.maximum(magnitude, math.exp(-p))) / p
    first = jnp.where(big, log_part, -1.0)
    second = jnp.where(big, jnp.sign(x), math.exp(p) * x)
    return jnp.stack([first, second], axis=-1)


def progress_features(step: jax.Array, num_steps: jax.Array, scales: Sequence[float]) -> jax.Array:
    """Training-progress embedding tanh(s * t / T) for each scale s, shape (len(scales),).

    t is the step counter, T the horizon; large scales saturate early and resolve the
    start of training, small ones are ~linear over the whole horizon.
    """
    fraction = jnp.asarray(step, jnp.float32) / jnp.maximum(jnp.asarray(num_steps, jnp.float32), 1.0)
    return jnp.tanh(jnp.asarray(scales, jnp.float32) * fraction)


# fan_in_scaling -> exponent p of the per-tensor update multiplier fan_in^-p (muLO's
# muP-style scaling of learned optimizers).
FAN_IN_SCALINGS = {"none": 0.0, "inverse_sqrt": 0.5, "inverse": 1.0}


def fan_in(shape: tuple[int, ...]) -> int:
    """Fan-in of a parameter tensor: product of all but the last axis for >= 2-d tensors
    (dense kernels (in, out), convolution kernels (h, w, in, out)), 1 for vectors/scalars."""
    return math.prod(shape[:-1]) if len(shape) >= 2 else 1


def fan_in_multiplier(shape: tuple[int, ...], scaling: str) -> float:
    """``fan_in(shape) ** -p`` for the exponent p of ``scaling`` (`FAN_IN_SCALINGS`)."""
    return float(fan_in(shape)) ** -FAN_IN_SCALINGS[scaling]


def check_fan_in_scaling(scaling: str) -> None:
    """Raise `ValueError` unless ``scaling`` is a key of `FAN_IN_SCALINGS`."""
    if scaling not in FAN_IN_SCALINGS:
        raise ValueError(
            f"fan_in_scaling must be one of {sorted(FAN_IN_SCALINGS)}; got {scaling!r}.")
