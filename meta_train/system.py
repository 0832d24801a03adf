"""The `UnrolledSystem` protocol: what meta-training optimises.

An unrolled system is any (differentiable or not) dynamical system driven by
meta-parameters ``theta``: inner training of a task by a learned optimizer, or a toy
linear system. The gradient estimators in `meta_train.pes` only ever call two pure,
jittable, vmappable functions::

    state = system.init(key, theta)
    state, mean_loss, reset = system.unroll(theta, state, key, length)

``unroll`` advances the system by ``length`` (static) inner steps and returns the mean
per-step meta-loss over those steps (a scalar; lower is better) and ``reset`` (a
boolean scalar): whether the system finished its inner run and restarted a fresh one
at the end of this unroll. Persistent estimators use ``reset`` to zero the
accumulated perturbation of exactly that particle.

Conventions that the estimators rely on:

* ``key`` passed to ``unroll`` drives every random choice (minibatches, the next
  inner run's task on reset). The estimators hand the *same* key to the two members
  of an antithetic pair (and to all pairs of one task), so the pair sees the same
  data and resets together.
* The system may report non-finite losses; estimators sanitise them.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

SystemState = Any
MetaParams = Any


@runtime_checkable
class UnrolledSystem(Protocol):
    """Structural type of a system that gradient estimators can meta-train."""

    def init(self, key: jax.Array, theta: MetaParams) -> SystemState:
        """State at the start of a fresh inner run (inner step 0)."""

    def unroll(
        self, theta: MetaParams, state: SystemState, key: jax.Array, length: int
    ) -> tuple[SystemState, jax.Array, jax.Array]:
        """Advance ``length`` steps: ``(state, mean_loss: f32[], reset: bool[])``."""


def check_system(system: Any) -> None:
    """Raise a `TypeError` if ``system`` lacks callable ``init``/``unroll`` methods."""
    missing = [m for m in ("init", "unroll") if not callable(getattr(system, m, None))]
    if missing:
        raise TypeError(
            f"{type(system).__name__} is not an UnrolledSystem: missing {missing}. "
            "Implement init(key, theta) -> state and "
            "unroll(theta, state, key, length) -> (state, mean_loss, reset)."
        )
