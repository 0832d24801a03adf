"""Hand-designed baseline optimizers: Adam, Lion, SGD and Lookahead.

Every constructor returns an ``optax.GradientTransformationExtraArgs`` that accepts
(and ignores) the extra keyword arguments the evaluation loop passes to every
optimizer (``value=``, ``next_loss_fn=``), so baselines, learned optimizers and the loss
guard are interchangeable in one training loop.

Lookahead (Zhang et al. 2019) is written as a plain transform over plain parameter
pytrees: the parameters the caller holds are the *fast* weights, the optimizer state
keeps the *slow* weights, and :func:`lookahead_slow_params` / :func:`eval_params`
return the slow weights, which the paper uses for evaluation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Params = Any


def _check_positive(name: str, value: Any) -> None:
    """Raise if a Python-number hyper-parameter is not a positive finite float."""
    if isinstance(value, (int, float)) and not (value > 0 and value < float("inf")):
        raise ValueError(
            f"{name} must be a positive finite number, got {value!r}; "
            f"pass e.g. {name}=1e-3."
        )


def adam(lr: float | jax.Array, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """Adam (Kingma & Ba 2015) with bias correction.

    m ← b1·m + (1−b1)·g,  v ← b2·v + (1−b2)·g²,
    θ ← θ − lr · m̂ / (√v̂ + eps)  with  m̂ = m/(1−b1^t), v̂ = v/(1−b2^t).

    ``lr`` may be a traced scalar (so a learning-rate grid can be ``vmap``ped).
    """
    _check_positive("lr", lr)
    return optax.with_extra_args_support(optax.adam(lr, b1=b1, b2=b2, eps=eps))


def lion(
    lr: float | jax.Array,
    weight_decay: float | jax.Array = 0.0,
    b1: float = 0.9,
    b2: float = 0.99,
):
    """Lion (Chen et al. 2023), decoupled weight decay scaled by ``lr``.

    c = b1·m + (1−b1)·g,   θ ← θ − lr·(sign(c) + weight_decay·θ),
    m ← b2·m + (1−b2)·g.
    """
    _check_positive("lr", lr)
    if isinstance(weight_decay, (int, float)) and weight_decay < 0:
        raise ValueError(
            f"weight_decay must be >= 0, got {weight_decay!r}; pass e.g. weight_decay=1e-2."
        )
    return optax.with_extra_args_support(
        optax.lion(lr, b1=b1, b2=b2, weight_decay=weight_decay)
    )


def sgd(lr: float | jax.Array, momentum: float = 0.0):
    """SGD with optional heavy-ball momentum: μ ← momentum·μ + g, θ ← θ − lr·μ."""
    _check_positive("lr", lr)
    return optax.with_extra_args_support(
        optax.sgd(lr, momentum=momentum if momentum > 0 else None)
    )


class LookaheadState(NamedTuple):
    """State of :func:`lookahead`.

    Attributes:
      inner_state: state of the fast (inner) optimizer; kept across synchronisations.
      slow_params: slow weights φ, same pytree as the params.
      count: int32 number of fast steps taken so far.
    """

    inner_state: Any
    slow_params: Params
    count: jax.Array


def lookahead(inner, k: int = 5, alpha: float | jax.Array = 0.5):
    """Lookahead around any inner optimizer, on plain parameter pytrees.

    The caller's params are the fast weights θ. Each call takes one inner step
    θ' = θ + u. On every k-th call the slow weights move toward the fast ones,
    φ ← φ + alpha·(θ' − φ), and the fast weights restart from the new φ (the returned
    update is then φ − θ). The inner optimizer's state is not reset at a sync.

    Args:
      inner: an optax transform (plain or extra-args).
      k: number of fast steps between synchronisations (static positive int).
      alpha: slow-weight step size in (0, 1].

    Returns:
      ``optax.GradientTransformationExtraArgs`` whose state is a :class:`LookaheadState`;
      extra args (``value=``, ...) are forwarded to the inner optimizer.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}; the paper uses k=5.")
    if isinstance(alpha, (int, float)) and not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must lie in (0, 1], got {alpha!r}; the paper uses 0.5.")
    inner = optax.with_extra_args_support(inner)

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
        sync = count % k == 0
        fast = jax.tree.map(lambda p, u: p + u, params, inner_updates)
        slow = jax.tree.map(
            lambda s, f: jnp.where(sync, s + alpha * (f - s), s), state.slow_params, fast
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
