"""Influence balancing: the linear toy system on which truncated estimators fail.

From Tallec & Ollivier's UORO paper, used as a sanity task in the PES paper. A state
``s`` in R^n is driven by one scalar meta-parameter ``theta``::

    s_{t+1}[i] = a * s_t[i] + (1 - a) * s_t[i+1] + c_i * theta      (s_t[n] := 0)
    loss_t     = 0.5 * (s_{t+1}[0] - target)^2
    c_i        = +1 for i < num_positive, -1 otherwise

``theta`` raises ``s[0]`` within a few steps (the positive coordinates are close to
``s[0]``) but lowers it in the long run (influence travels from the far, negative
coordinates down the chain). A truncated estimator only sees the short-term effect and
pushes ``theta`` the wrong way; the full-horizon gradient (and PES, unbiased for it)
does not. Every loss is quadratic in ``theta``, so `full_horizon_loss` differentiated
with `jax.grad` is the exact target of an unbiased estimator.

The state also counts the inner step; the run restarts from ``s = 0`` after
``horizon`` steps (``reset`` is reported by the unroll that reaches it).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ToyState:
    """``s``: f32[n] linear state; ``inner_step``: i32[] steps into the current run."""

    s: jax.Array
    inner_step: jax.Array


@dataclasses.dataclass(frozen=True)
class InfluenceBalancing:
    """Influence-balancing system (``theta``: f32[1]); see the module docstring.

    Attributes:
      horizon: inner run length ``H`` (steps until the state restarts).
      num_dims: ``n``, length of the chain.
      num_positive: how many coordinates nearest ``s[0]`` theta pushes up.
      decay: ``a`` in (0, 1), how much a coordinate keeps of itself.
      target: value ``s[0]`` should track.
    """

    horizon: int = 40
    num_dims: int = 23
    num_positive: int = 10
    decay: float = 0.5
    target: float = 1.0

    def __post_init__(self):
        if not (0 < self.num_positive < self.num_dims):
            raise ValueError(
                f"num_positive must be in (0, num_dims={self.num_dims}), got "
                f"{self.num_positive}; pick fewer positive coordinates."
            )
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}.")

    def _signs(self) -> jax.Array:
        i = jnp.arange(self.num_dims)
        return jnp.where(i < self.num_positive, 1.0, -1.0)

    def _step(self, theta: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One transition: ``(s_{t+1}, loss_t)``."""
        shifted = jnp.concatenate([s[1:], jnp.zeros((1,), s.dtype)])
        s_next = self.decay * s + (1.0 - self.decay) * shifted + self._signs() * theta[0]
        return s_next, 0.5 * jnp.square(s_next[0] - self.target)

    def init(self, key: jax.Array, theta: jax.Array) -> ToyState:
        """Fresh run: ``s = 0`` at inner step 0 (``key`` and ``theta`` unused)."""
        del key, theta
        return ToyState(s=jnp.zeros((self.num_dims,), jnp.float32), inner_step=jnp.int32(0))

    def unroll(
        self, theta: jax.Array, state: ToyState, key: jax.Array, length: int
    ) -> tuple[ToyState, jax.Array, jax.Array]:
        """``length`` transitions; mean loss; restart when ``inner_step`` hits ``horizon``."""
        del key

        def body(s, _):
            return self._step(theta, s)

        s, losses = jax.lax.scan(body, state.s, None, length=length)
        inner_step = state.inner_step + length
        reset = inner_step >= self.horizon
        s = jnp.where(reset, jnp.zeros_like(s), s)
        inner_step = jnp.where(reset, 0, inner_step).astype(jnp.int32)
        return ToyState(s=s, inner_step=inner_step), jnp.mean(losses), reset

    def full_horizon_loss(self, theta: jax.Array) -> jax.Array:
        """Mean loss over one whole run from ``s = 0``: ``(1/H) sum_t loss_t`` (f32[])."""
        s0 = jnp.zeros((self.num_dims,), jnp.float32)
        _, losses = jax.lax.scan(lambda s, _: self._step(theta, s), s0, None, length=self.horizon)
        return jnp.mean(losses)

    def truncated_loss(self, theta: jax.Array, s: jax.Array, length: int) -> jax.Array:
        """Mean loss of ``length`` steps from a fixed state ``s`` (what truncated ES sees)."""
        _, losses = jax.lax.scan(lambda x, _: self._step(theta, x), s, None, length=length)
        return jnp.mean(losses)
