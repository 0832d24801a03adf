"""Per-tensor learning-rate adaptation from the hypergradient (Baydin et al. 2018).

The derivative of the loss after step t-1 with respect to that step's log learning rate is
-lr * <g_t, d_{t-1}>, with g_t the new gradient and d_{t-1} the previous step direction. So
when the new gradient still points along the previous step (positive agreement) a larger
step would have helped, and when it points back (overshoot, oscillation) a smaller one.
Each tensor keeps a log learning-rate offset s and moves it by the normalised agreement::

    a_t = <g_t, d_{t-1}> / (|g_t| |d_{t-1}|)          in [-1, 1]; 0 at the first step
    s_t = clip(s_{t-1} + rate * a_t, -LIMIT, LIMIT)    the step's learning rate x exp(s_t)

The cosine makes the rule free of the gradient's and the parameters' scale; ``rate`` is the
change of log learning rate per step at full agreement. Used by `l2o.mlp.MLPOptimizer`
(``lr_adapt``) on its nominal Adam term, so a learned optimizer can find each problem's
step size within a run instead of carrying one meta-learned rate for every problem.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# e^7 ~ 1100: the offset can move the base learning rate by three decades either way.
LIMIT = 7.0


def agreement(grad: jax.Array, previous: jax.Array) -> jax.Array:
    """Cosine between ``grad`` and the ``previous`` step direction over the whole tensor
    (float32 scalar); 0 when either is all zeros (the first step)."""
    dot = jnp.sum(grad * previous)
    norms = jnp.sum(jnp.square(grad)) * jnp.sum(jnp.square(previous))
    return jnp.where(norms > 0.0, dot * jax.lax.rsqrt(jnp.maximum(norms, 1e-38)), 0.0)


def adapt(offset: jax.Array, agree: jax.Array, rate: float) -> jax.Array:
    """The new log learning-rate offset ``clip(offset + rate * agree, -LIMIT, LIMIT)``;
    a non-finite agreement leaves the offset unchanged."""
    agree = jnp.where(jnp.isfinite(agree), agree, 0.0)
    return jnp.clip(offset + rate * agree, -LIMIT, LIMIT)


def check_rate(rate: float, nominal: bool) -> None:
    """Raise `ValueError` unless ``rate`` is a number in [0, 10) and, when it is not 0,
    the optimizer has a nominal term (``nominal``) to adapt."""
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0.0 <= rate < 10.0):
        raise ValueError(f"lr_adapt must be a number in [0, 10) (0: off); got {rate!r}.")
    if rate and not nominal:
        raise ValueError("lr_adapt adapts the nominal Adam term's learning rate; it needs "
                         "the nominal term (or set lr_adapt=0).")


def adapt_flat(offsets: jax.Array, grad: jax.Array, previous: jax.Array,
               sizes: tuple[int, ...], rate: float) -> tuple[jax.Array, jax.Array]:
    """`adapt` for tensors stored end to end in flat ``(N,)`` vectors of the given
    ``sizes``: returns the new ``(len(sizes),)`` offsets and the ``(N,)`` per-coordinate
    multiplier exp(offset of its tensor)."""
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    agree = jnp.stack([agreement(grad[a:b], previous[a:b]) for a, b in zip(bounds, bounds[1:])])
    offsets = adapt(offsets, agree, rate)
    multiplier = jnp.repeat(jnp.exp(offsets), jnp.asarray(sizes), total_repeat_length=bounds[-1])
    return offsets, multiplier
