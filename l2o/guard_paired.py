"""The loss guard's paired runs: the learned and the fallback run side by side, the better one followed.

Two whole runs share the minibatches of the training loop: the *learned run* (the learned
optimizer from its own point ``θ^L``) and the *fallback run* (the fallback from ``θ^F``,
nothing else: the fallback alone). The guard returns updates that move the caller's params
to the point of the run it follows, so the gradient the caller passes is that run's; both
runs' points and gradients are kept in the state. Step ``t`` (batch ``t``, comparison
batch ``t + 1`` of ``next_loss_fn = L``)::

    θ^L ← θ^L + u_learned(g^L)      θ^F ← θ^F + u_fallback(g^F)        # both runs step
    (ℓ^L, g^L) = (L, ∇L)(θ^L)    (ℓ^F, g^F) = (L, ∇L)(θ^F)          # same batch: paired
    m^L ← s·m^L + (1 - s)·ℓ^L      m^F ← s·m^F + (1 - s)·ℓ^F         # running means, s = smoothing
    D_t = (m^L - m^F) / (|m^L| + |m^F|)                               # running gap, in [-1, 1]
    if D_t > reset_gap (learned run clearly behind) or ℓ^L, θ^L not finite:
        θ^L ← θ^F, m^L ← the value that makes D_t = reset_gap         # copy, learned state kept
    follow the learned run  iff  D_t < -switch_gap, or D_t <= switch_gap while following it
    (never a non-finite run while the other is finite; after a copy, the fallback run)

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
alone on the same batches: both runs' points, gradients and losses are kept in the state,
and the caller's gradient is used for a run only when the caller's params are exactly that
run's point (a switch moves them by ``θ - params``, which may round: then the run takes
the gradient the guard computed at its own point). A learned run that stays ahead is never
reset and is followed: it is the learned optimizer alone. The point returned is always
that of one of the two runs. Cost per step beyond the two optimizer updates: two
gradients of ``next_loss_fn`` (values included); state: both runs' params and gradients
(four copies of the params). Measured first with one-rounding switches instead, the
fallback run drifted from the fallback alone after the switches and ended 1.3% above it
on a tanh regression (``docs/guard.md``).
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


def all_equal(a: Params, b: Params) -> jax.Array:
    """Whether two pytrees of the same structure are equal entry for entry (bool scalar)."""
    leaves = [jnp.all(x == y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


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
      grads: gradient at ``params``. It is the followed run's gradient when ``params`` is
        exactly that run's point (always on the first step); otherwise (after a switch,
        ``params + (θ - params)`` may differ from ``θ`` by a rounding) the gradient the
        guard took at the run's own point is used, so each run stays its optimizer alone.
      state: a paired-runs `GuardState` (``fallback_params`` set).
      params: the caller's current point.
      value: the loss at ``params`` on this step's batch, or None.
      next_loss_fn: ``params -> scalar`` loss on the next step's minibatch.
      scalar_loss: ``(next_loss_fn, params) -> float32 scalar`` (checks the shape).
      smoothing, switch_gap, reset_gap: the rule's constants (module doc).

    Returns:
      ``(updates, state)``: updates move ``params`` to the point of the run followed next.
      Jittable and vmappable (choices are ``jnp.where``).
    """
    first = (state.num_learned + state.num_fallback) == 0  # both runs at params

    def own(at_run, run_params, run_grads, run_loss):
        at_run = first | (at_run & all_equal(params, run_params))
        g = _pick(at_run, grads, run_grads)
        v = None if value is None else jnp.where(at_run, jnp.asarray(value, jnp.float32),
                                                 run_loss)
        return g, v

    learned_params, fallback_params = state.learned_params, state.fallback_params
    g_l, v_l = own(state.used_learned, learned_params, state.learned_grads, state.learned_loss)
    g_f, v_f = own(~state.used_learned, fallback_params, state.fallback_grads,
                   state.fallback_loss)
    learned_updates, learned_state = learned_update(g_l, state.learned_state, learned_params, v_l)
    fallback_updates, fallback_state = fallback_update(
        g_f, state.fallback_state, fallback_params, v_f)
    new_learned = optax.apply_updates(learned_params, learned_updates)
    new_fallback = optax.apply_updates(fallback_params, fallback_updates)
    loss_and_grad = jax.value_and_grad(lambda p: scalar_loss(next_loss_fn, p))
    learned_loss, learned_grads = loss_and_grad(new_learned)
    fallback_loss, fallback_grads = loss_and_grad(new_fallback)
    learned_ok = jnp.isfinite(learned_loss) & all_finite(new_learned)
    fallback_ok = jnp.isfinite(fallback_loss) & all_finite(new_fallback)
    learned_loss = jnp.where(learned_ok, learned_loss, jnp.inf)
    fallback_loss = jnp.where(fallback_ok, fallback_loss, jnp.inf)

    learned_mean = smoothing * state.learned_mean + (1.0 - smoothing) * learned_loss
    fallback_mean = smoothing * state.fallback_mean + (1.0 - smoothing) * fallback_loss
    running_gap = paired_gap(learned_mean, fallback_mean)
    reset = fallback_ok & (~learned_ok | (running_gap > reset_gap))
    new_learned = _pick(reset, new_fallback, new_learned)
    learned_grads = _pick(reset, fallback_grads, learned_grads)
    learned_loss = jnp.where(reset, fallback_loss, learned_loss)
    learned_ok = learned_ok | reset
    # m^L with (m^L - m^F) / (|m^L| + |m^F|) = reset_gap (m^F finite, as reset needs it).
    restart = fallback_mean + 2.0 * reset_gap / (1.0 - reset_gap) * jnp.abs(fallback_mean)
    learned_mean = jnp.where(reset, restart, learned_mean)
    running_gap = jnp.where(reset, paired_gap(learned_mean, fallback_mean), running_gap)
    follow_learned = jnp.where(state.used_learned, running_gap <= switch_gap,
                               running_gap < -switch_gap)
    follow_learned = (follow_learned & ~reset & learned_ok) | (learned_ok & ~fallback_ok)

    # Updates to the followed run's new point: its own update where the caller is at its
    # old point (exact; after a copy the learned run's old point is the fallback run's).
    from_fallback = ~follow_learned | reset
    updates = _move(params, _pick(from_fallback, fallback_params, learned_params),
                    _pick(from_fallback, fallback_updates, learned_updates),
                    _pick(follow_learned, new_learned, new_fallback))
    taken = follow_learned.astype(jnp.int32)
    new_state = GuardState(
        learned_state=learned_state,
        fallback_state=fallback_state,
        num_learned=state.num_learned + taken,
        num_fallback=state.num_fallback + (1 - taken),
        used_learned=follow_learned,
        learned_loss=learned_loss,
        fallback_loss=fallback_loss,
        learned_params=new_learned,
        fallback_params=new_fallback,
        learned_grads=learned_grads,
        fallback_grads=fallback_grads,
        num_resets=state.num_resets + reset.astype(jnp.int32),
        reset=reset,
        running_gap=jnp.asarray(running_gap, jnp.float32),
        learned_mean=jnp.asarray(learned_mean, jnp.float32),
        fallback_mean=jnp.asarray(fallback_mean, jnp.float32),
    )
    return updates, new_state
