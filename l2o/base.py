"""The `LearnedOptimizer` protocol shared by every learned optimizer in l2o.

A learned optimizer is a pair of pure functions parameterised by meta-parameters
``theta`` (a pytree): ``init(theta, params, num_steps) -> state`` and
``update(theta, grads, state, params, loss) -> (updates, state)``. Both are jittable
and vmappable over ``theta`` (a population) and over tasks. ``num_steps`` is the
training horizon the optimizer is told about (for its progress features).

``as_optax(theta)`` turns one (learned optimizer, theta) pair into an
``optax.GradientTransformationExtraArgs``; the current loss is passed as the keyword
extra argument ``value`` (optax's convention)::

    tx = lopt.as_optax(theta, num_steps=1000)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)

Extra keyword arguments that an optimizer does not use (e.g. ``value_fn``, which the
loss guard needs) are accepted and ignored, so a training loop may pass the same
extra args to every optimizer.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

Params = Any
MetaParams = Any
OptState = Any


@runtime_checkable
class LearnedOptimizer(Protocol):
    """Structural type of every learned optimizer (LSTM, MLP, ...)."""

    name: str

    def init_meta_params(self, key: jax.Array) -> MetaParams:
        """Fresh meta-parameters ``theta``."""

    def init(self, theta: MetaParams, params: Params, num_steps: int | jax.Array) -> OptState:
        """Optimizer state for ``params`` over a horizon of ``num_steps`` steps."""

    def update(
        self,
        theta: MetaParams,
        grads: Params,
        state: OptState,
        params: Params,
        loss: jax.Array,
    ) -> tuple[Params, OptState]:
        """Updates (same pytree as ``params``; add them) and the next state."""

    def as_optax(self, theta: MetaParams, num_steps: int = 1000) -> Any:
        """This optimizer with fixed ``theta`` as an optax transform taking ``value=``."""
