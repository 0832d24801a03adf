"""Hand-designed baseline optimizers: Adam, Lion, SGD (optax's own) and Lookahead.

``adam``, ``lion`` and ``sgd`` *are* ``optax.adam``, ``optax.lion`` and ``optax.sgd``:
same arguments, order and defaults (``lion(learning_rate, b1=0.9, b2=0.99, mu_dtype=None,
weight_decay=1e-3)``: pass ``weight_decay`` by keyword). A wrapper would add nothing: they already accept and ignore the
extra keyword arguments the evaluation loop passes to every optimizer (``value=``,
``next_loss_fn=``), so baselines, learned optimizers and the loss guard are
interchangeable in one training loop, and their learning rate may be a traced scalar (a
grid is ``vmap``ped).

Lookahead (Zhang et al. 2019) is written here, with optax's argument names
(``lookahead(fast_optimizer, sync_period, slow_step_size)``), because ``optax.lookahead``
works on a ``LookaheadParams(fast, slow)`` pair: this one is a plain transform over plain
parameter pytrees. The parameters the caller holds are the *fast* weights, the optimizer
state keeps the *slow* weights, and :func:`lookahead_slow_params` / :func:`eval_params`
return the slow weights, which the paper uses for evaluation.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Params = Any

adam = optax.adam
lion = optax.lion
sgd = optax.sgd


class LookaheadState(NamedTuple):
    """State of :func:`lookahead`.

    Attributes:
      inner_state: state of the fast optimizer; kept across synchronisations.
      slow_params: slow weights φ, same pytree as the params.
      count: int32 number of fast steps taken so far.
    """

    inner_state: Any
    slow_params: Params
    count: jax.Array


def lookahead(
    fast_optimizer=None,
    sync_period: int = 5,
    slow_step_size: float | jax.Array = 0.5,
    *,
    inner=None,
    k: int | None = None,
    alpha: float | jax.Array | None = None,
):
    """Lookahead around any fast optimizer, on plain parameter pytrees.

    The caller's params are the fast weights θ. Each call takes one fast step
    θ' = θ + u. On every ``sync_period``-th call the slow weights move toward the fast
    ones, φ ← φ + slow_step_size·(θ' − φ), and the fast weights restart from the new φ
    (the returned update is then φ − θ). The fast optimizer's state is not reset at a
    sync (optax's ``reset_state=False``).

    Args:
      fast_optimizer: an optax transform (plain or extra-args).
      sync_period: fast steps between synchronisations (static positive int; paper: 5).
      slow_step_size: slow-weight step size in (0, 1] (paper: 0.5).
      inner, k, alpha: deprecated names of the three arguments above.

    Returns:
      ``optax.GradientTransformationExtraArgs`` whose state is a :class:`LookaheadState`;
      extra args (``value=``, ...) are forwarded to the fast optimizer.
    """
    for old, new, value in (("inner", "fast_optimizer", inner), ("k", "sync_period", k),
                            ("alpha", "slow_step_size", alpha)):
        if value is not None:
            warnings.warn(f"lookahead({old}=...) is deprecated; use {new}=... (optax's name).",
                          DeprecationWarning, stacklevel=2)
    fast_optimizer = fast_optimizer if inner is None else inner
    if fast_optimizer is None:
        raise TypeError("lookahead needs fast_optimizer, e.g. lookahead(optax.adam(1e-3)).")
    sync_period = sync_period if k is None else k
    slow_step_size = slow_step_size if alpha is None else alpha
    if not isinstance(sync_period, int) or isinstance(sync_period, bool) or sync_period < 1:
        raise ValueError(
            f"sync_period must be a positive int, got {sync_period!r}; the paper uses 5.")
    if isinstance(slow_step_size, (int, float)) and not 0.0 < slow_step_size <= 1.0:
        raise ValueError(
            f"slow_step_size must lie in (0, 1], got {slow_step_size!r}; the paper uses 0.5.")
    inner = optax.with_extra_args_support(fast_optimizer)

    def init_fn(params):
        return LookaheadState(
            inner_state=inner.init(params),
            slow_params=jax.tree.map(jnp.asarray, params),
            count=jnp.zeros([], jnp.int32),
        )

    def update_fn(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("lookahead needs params: call update(grads, state, params).")
        inner_updates, inner_state = inner.update(
            updates, state.inner_state, params, **extra_args
        )
        count = state.count + 1
        sync = count % sync_period == 0
        fast = jax.tree.map(lambda p, u: p + u, params, inner_updates)
        slow = jax.tree.map(
            lambda s, f: jnp.where(sync, s + slow_step_size * (f - s), s), state.slow_params, fast
        )
        new_updates = jax.tree.map(
            lambda u, s, p: jnp.where(sync, s - p, u).astype(u.dtype),
            inner_updates,
            slow,
            params,
        )
        return new_updates, LookaheadState(inner_state, slow, count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lookahead_slow_params(state: LookaheadState) -> Params:
    """The slow weights φ held in a :class:`LookaheadState`."""
    if not isinstance(state, LookaheadState):
        raise TypeError(
            f"expected a LookaheadState, got {type(state).__name__}; pass the state "
            "returned by baselines.optimizers.lookahead(...).init/update."
        )
    return state.slow_params


def eval_params(opt_state: Any, params: Params) -> Params:
    """Parameters to evaluate: the slow weights for Lookahead, ``params`` otherwise."""
    if isinstance(opt_state, LookaheadState):
        return opt_state.slow_params
    return params
