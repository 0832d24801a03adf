"""The loss guard's paired runs: the learned and the fallback run side by side, the better one followed.

Two whole runs share the minibatches of the training loop: the *learned run* (the learned
optimizer from its own point ``θ^L``) and the *fallback run* (the fallback from ``θ^F``,
nothing else: the fallback alone). The guard returns updates that move the caller's params
to the point of the run it follows, so the gradient the caller passes is that run's; the
other run's point and gradient are kept in the state. Step ``t`` (batch ``t``, comparison
batch ``t + 1`` of ``next_loss_fn = L``)::

    θ^L ← θ^L + u_learned(g^L)      θ^F ← θ^F + u_fallback(g^F)        # both runs step
    ℓ^L = L(θ^L)    ℓ^F = L(θ^F)                                      # same batch: paired
    m^L ← s·m^L + (1 - s)·ℓ^L      m^F ← s·m^F + (1 - s)·ℓ^F         # running means, s = smoothing
    D_t = (m^L - m^F) / (|m^L| + |m^F|)                               # running gap, in [-1, 1]
    if D_t > reset_gap (learned run clearly behind) or ℓ^L, θ^L not finite:
        θ^L ← θ^F, m^L ← the value that makes D_t = reset_gap         # copy, learned state kept
    follow the learned run  iff  D_t < -switch_gap, or D_t <= switch_gap while following it
    (never a non-finite run while the other is finite; after a copy, the fallback run)
    g^other = ∇L(θ^other)                                             # for its next step

``D`` compares running *means* of the losses (both start at 0; the common bias cancels in
the ratio), as the full-split loss the run is judged by is a mean: a running mean of
per-batch ratios (``log ℓ^L - log ℓ^F``) followed learned runs with most batch losses near
0 and a few large ones, 2-3x above the fallback on the full split (``docs/guard.md``).
A non-finite mean counts as the largest gap (±1). ``switch_gap`` is the hysteresis of the
choice, ``reset_gap`` the lead past which the learned run is given up and restarted from
the fallback run's point. After a copy the running gap restarts at ``reset_gap``, not 0:
the restarted learned run is followed again only once it has led on several batches, not
after one lucky step from the fallback's point.

Consequences. The fallback run is never touched: its points are those of the fallback
alone on the same batches (up to one rounding of ``θ + (θ^F - θ)`` after the guard
switches to it from the learned run). A learned run that stays ahead is never reset and
is followed: it is the learned optimizer alone. The point returned is always that of one
of the two runs. Cost per step beyond the two optimizer updates: two forward passes of
``next_loss_fn`` and one gradient; state: the other run's params and gradient.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from l2o.guard_state import GuardState

Params = Any
# (grads, inner_state, params, value) -> (updates, inner_state); value may be None.
RunUpdate = Callable[[Params, Any, Params, Any], tuple[Params, Any]]


def all_finite(tree: Params) -> jax.Array:
    """Whether every entry of every leaf of ``tree`` is finite (bool scalar)."""
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def paired_gap(learned_loss: jax.Array, fallback_loss: jax.Array) -> jax.Array:
    """``(a - b) / (|a| + |b|)`` in ``[-1, 1]`` for ``a, b = learned_loss, fallback_loss``
    (for positive losses ``tanh(½ log(a / b))``): 1 when only ``a`` is not finite, -1 when
    only ``b`` is not, 0 when both are equal (or both zero, or both non-finite)."""
    ok_l, ok_f = jnp.isfinite(learned_loss), jnp.isfinite(fallback_loss)
    a, b = jnp.where(ok_l, learned_loss, 0.0), jnp.where(ok_f, fallback_loss, 0.0)
    # Divided by max(|a|, |b|) first, so that losses near the float range do not overflow.
    top = jnp.maximum(jnp.abs(a), jnp.abs(b))
    a, b = a / jnp.where(top > 0, top, 1.0), b / jnp.where(top > 0, top, 1.0)
    scale = jnp.abs(a) + jnp.abs(b)
    gap = jnp.where(scale > 0, (a - b) / jnp.where(scale > 0, scale, 1.0), 0.0)
    gap = jnp.where(ok_l & ~ok_f, -1.0, jnp.where(~ok_l & ok_f, 1.0, gap))
    return jnp.where(~ok_l & ~ok_f, 0.0, gap).astype(jnp.float32)


def _pick(flag: jax.Array, a: Params, b: Params) -> Params:
    return jax.tree.map(lambda x, y: jnp.where(flag, x, y), a, b)


def _move(params: Params, run_params: Params, run_updates: Params, target: Params) -> Params:
    """Updates taking ``params`` to ``target``: a run's own update where the caller is at
    that run's point (exact), else ``target - params``; non-finite entries become 0."""
    def one(p, q, u, t):
        move = jnp.where(q == p, u, t - p)
        return jnp.nan_to_num(move, nan=0.0, posinf=0.0, neginf=0.0).astype(p.dtype)

    return jax.tree.map(one, params, run_params, run_updates, target)


def paired_update(
    learned_update: RunUpdate,
    fallback_update: RunUpdate,
    grads: Params,
    state: GuardState,
    params: Params,
    value: jax.Array | None,
    next_loss_fn: Callable[[Params], jax.Array],
    scalar_loss: Callable[[Callable, Params], jax.Array],
    smoothing: float,
    switch_gap: float,
    reset_gap: float,
) -> tuple[Params, GuardState]:
    """One step of both runs and the choice between them (module doc).

    Args:
      learned_update, fallback_update: ``(grads, inner_state, params, value) -> (updates,
        inner_state)`` of each optimizer, other extra arguments already bound.
      grads: gradient at ``params``, the point of the run followed (``state.used_learned``).
      state: a paired-runs `GuardState` (``other_params`` set).
      params: the caller's current point.
      value: the loss at ``params`` on this step's batch, or None.
      next_loss_fn: ``params -> scalar`` loss on the next step's minibatch.
      scalar_loss: ``(next_loss_fn, params) -> float32 scalar`` (checks the shape).
      smoothing, switch_gap, reset_gap: the rule's constants (module doc).

    Returns:
      ``(updates, state)``: updates move ``params`` to the point of the run followed next.
      Jittable and vmappable (choices are ``jnp.where``).
    """
    first = (state.num_learned + state.num_fallback) == 0  # both runs at the same point
    on_learned = state.used_learned
    other_grads = _pick(first, grads, state.other_grads)
    other_value = None
    if value is not None:
        value = jnp.asarray(value, jnp.float32)
        other_loss = jnp.where(on_learned, state.fallback_loss, state.learned_loss)
        other_value = jnp.where(first, value, other_loss)
    learned_params = _pick(on_learned, params, state.other_params)
    fallback_params = _pick(on_learned, state.other_params, params)
    learned_updates, learned_state = learned_update(
        _pick(on_learned, grads, other_grads), state.learned_state, learned_params,
        None if value is None else jnp.where(on_learned, value, other_value))
    fallback_updates, fallback_state = fallback_update(
        _pick(on_learned, other_grads, grads), state.fallback_state, fallback_params,
        None if value is None else jnp.where(on_learned, other_value, value))
    new_learned = optax.apply_updates(learned_params, learned_updates)
    new_fallback = optax.apply_updates(fallback_params, fallback_updates)
    learned_loss = scalar_loss(next_loss_fn, new_learned)
    fallback_loss = scalar_loss(next_loss_fn, new_fallback)
    learned_ok = jnp.isfinite(learned_loss) & all_finite(new_learned)
    fallback_ok = jnp.isfinite(fallback_loss) & all_finite(new_fallback)
    learned_loss = jnp.where(learned_ok, learned_loss, jnp.inf)
    fallback_loss = jnp.where(fallback_ok, fallback_loss, jnp.inf)

    learned_mean = smoothing * state.learned_mean + (1.0 - smoothing) * learned_loss
    fallback_mean = smoothing * state.fallback_mean + (1.0 - smoothing) * fallback_loss
    running_gap = paired_gap(learned_mean, fallback_mean)
    reset = fallback_ok & (~learned_ok | (running_gap > reset_gap))
    new_learned = _pick(reset, new_fallback, new_learned)
    learned_loss = jnp.where(reset, fallback_loss, learned_loss)
    learned_ok = learned_ok | reset
    # m^L with (m^L - m^F) / (|m^L| + |m^F|) = reset_gap (m^F finite, as reset needs it).
    restart = fallback_mean + 2.0 * reset_gap / (1.0 - reset_gap) * jnp.abs(fallback_mean)
    learned_mean = jnp.where(reset, restart, learned_mean)
    running_gap = jnp.where(reset, paired_gap(learned_mean, fallback_mean), running_gap)
    follow_learned = jnp.where(on_learned, running_gap <= switch_gap, running_gap < -switch_gap)
    follow_learned = (follow_learned & ~reset & learned_ok) | (learned_ok & ~fallback_ok)

    target = _pick(follow_learned, new_learned, new_fallback)
    run_params = _pick(follow_learned, learned_params, fallback_params)
    run_updates = _pick(follow_learned, learned_updates, fallback_updates)
    # After a copy the learned run sits on the fallback run's point, not its own update.
    run_updates = _pick(follow_learned & reset, fallback_updates, run_updates)
    run_params = _pick(follow_learned & reset, fallback_params, run_params)
    updates = _move(params, run_params, run_updates, target)

    other = _pick(follow_learned, new_fallback, new_learned)
    _, new_other_grads = jax.value_and_grad(lambda p: scalar_loss(next_loss_fn, p))(other)
    taken = follow_learned.astype(jnp.int32)
    new_state = GuardState(
        learned_state=learned_state,
        fallback_state=fallback_state,
        num_learned=state.num_learned + taken,
        num_fallback=state.num_fallback + (1 - taken),
        used_learned=follow_learned,
        learned_loss=learned_loss,
        fallback_loss=fallback_loss,
        other_params=other,
        other_grads=new_other_grads,
        num_resets=state.num_resets + reset.astype(jnp.int32),
        reset=reset,
        running_gap=jnp.asarray(running_gap, jnp.float32),
        learned_mean=jnp.asarray(learned_mean, jnp.float32),
        fallback_mean=jnp.asarray(fallback_mean, jnp.float32),
    )
    return updates, new_state
