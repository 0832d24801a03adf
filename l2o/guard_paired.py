"""The loss guard's paired runs: the learned and the fallback run side by side, the best one followed.

Whole runs share the minibatches of the training loop: the *fallback run* (the fallback
from ``θ^F``, nothing else: the fallback alone), the *learned run* (the learned optimizer
from ``θ^L``, restarted from the fallback run's point when it falls clearly behind) and,
with ``alone_run`` (the default), the *alone run* (the learned optimizer from ``θ^A``,
never restarted while it is finite: the learned optimizer alone). The guard returns updates
that move the caller's params to the point of the run it follows, so the gradient the
caller passes is that run's; every run's point and gradient are kept in the state. Step
``t`` (batch ``t``, comparison batch ``t + 1`` of ``next_loss_fn = L``), for each run
``r`` in F, L, A::

    θ^r ← θ^r + u_r(g^r)                     # u_L = u_A: the learned optimizer, own states
    (ℓ^r, g^r) = (L, ∇L)(θ^r)                # same batch for every run: paired
    m^r ← s·m^r + (1 - s)·ℓ^r                # running means, s = smoothing
    D_t = (m^L - m^F) / (|m^L| + |m^F|)      # running gap of the learned run, in [-1, 1]
    if D_t > reset_gap (learned run clearly behind) or ℓ^L, θ^L not finite:
        θ^L ← θ^F, m^L ← the value that makes D_t = reset_gap     # copy, learned state kept
    if ℓ^A, θ^A not finite: the same copy into the alone run
    follow the run with the lowest m^r if it leads the run followed by more than
    switch_gap (relative gap as D); never a non-finite run while another is finite;
    a run just copied into is left for the fallback run first

``D`` compares running *means* of the losses (all start at 0; the common bias cancels in
the ratio), as the full-split loss the run is judged by is a mean: a running mean of
per-batch ratios (``log ℓ^L - log ℓ^F``) followed learned runs with most batch losses near
0 and a few large ones, 2-3x above the fallback on the full split (``docs/guard.md``).
A non-finite mean counts as the largest gap (±1). ``switch_gap`` is the hysteresis of the
choice, ``reset_gap`` the lead past which the learned run is given up and restarted from
the fallback run's point. After a copy the running gap restarts at ``reset_gap``, not 0:
the restarted learned run is followed again only once it has led on several batches, not
after one lucky step from the fallback's point.

Why three runs. The restarts pay where a learned rule is good locally but unstable
(restarted near the fallback's good point it makes fast local progress), and they throw
away a learned trajectory that is behind early and ahead late (measured: `docs/guard.md`).
The alone run keeps that trajectory, so the guard can follow the learned optimizer alone
whenever it leads, whatever the restarts did.

Consequences. The fallback run is never touched: its points are those of the fallback
alone on the same batches; the caller's gradient is used for a run only when the caller's
params are exactly that run's point (a switch moves them by ``θ - params``, which may round:
then the run takes the gradient the guard computed at its own point). The alone run, while
finite, is the learned optimizer alone, and a learned run that stays ahead is never reset.
The point returned is always that of one of the runs. Cost per step beyond the optimizer
updates (two learned, one fallback; one learned without the alone run): one gradient of
``next_loss_fn`` (value included) per run; state: every run's params and gradients (six
copies of the params; four without the alone run). Measured first with one-rounding
switches instead, the fallback run drifted from the fallback alone after the switches and
ended 1.3% above it on a tanh regression (``docs/guard.md``).
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
# Indices of the runs (`GuardState.following`).
FALLBACK, LEARNED, ALONE = 0, 1, 2


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


def _select(index: jax.Array, values: tuple[jax.Array, ...]) -> jax.Array:
    """``values[index]`` for a traced int ``index`` (a chain of ``jnp.where``)."""
    out = values[0]
    for i, x in enumerate(values[1:], start=1):
        out = jnp.where(index == i, x, out)
    return out


def _move(params: Params, run_params: Params, run_updates: Params, target: Params) -> Params:
    """Updates taking ``params`` to ``target``: a run's own update where the caller is at
    that run's point (exact), else ``target - params``; non-finite entries become 0."""
    def one(p, q, u, t):
        move = jnp.where(q == p, u, t - p)
        return jnp.nan_to_num(move, nan=0.0, posinf=0.0, neginf=0.0).astype(p.dtype)

    return jax.tree.map(one, params, run_params, run_updates, target)


def _step_run(update: RunUpdate, own_grads, own_value, inner_state, run_params, loss_and_grad):
    """One run's step: its update, its new point, and the loss and gradient there."""
    updates, inner_state = update(own_grads, inner_state, run_params, own_value)
    new_params = optax.apply_updates(run_params, updates)
    loss, grads = loss_and_grad(new_params)
    ok = jnp.isfinite(loss) & all_finite(new_params)
    return updates, inner_state, new_params, jnp.where(ok, loss, jnp.inf), grads, ok


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
    """One step of the runs and the choice between them (module doc).

    Args:
      learned_update, fallback_update: ``(grads, inner_state, params, value) -> (updates,
        inner_state)`` of each optimizer, other extra arguments already bound (the learned
        one steps both learned runs).
      grads: gradient at ``params``. It is the followed run's gradient when ``params`` is
        exactly that run's point (always on the first step); otherwise (after a switch,
        ``params + (θ - params)`` may differ from ``θ`` by a rounding) the gradient the
        guard took at the run's own point is used, so each run stays its optimizer alone.
      state: a paired-runs `GuardState` (``fallback_params`` set; ``alone_params`` set
        when the learned optimizer alone is run too).
      params: the caller's current point.
      value: the loss at ``params`` on this step's batch, or None.
      next_loss_fn: ``params -> scalar`` loss on the next step's minibatch.
      scalar_loss: ``(next_loss_fn, params) -> float32 scalar`` (checks the shape).
      smoothing, switch_gap, reset_gap: the rule's constants (module doc).

    Returns:
      ``(updates, state)``: updates move ``params`` to the point of the run followed next.
      Jittable and vmappable (choices are ``jnp.where``).
    """
    first = (state.num_learned + state.num_fallback) == 0  # every run at params
    with_alone = state.alone_params is not None
    following = state.following

    def own(index, run_params, run_grads, run_loss):
        at_run = first | ((following == index) & all_equal(params, run_params))
        g = _pick(at_run, grads, run_grads)
        v = None if value is None else jnp.where(at_run, jnp.asarray(value, jnp.float32),
                                                 run_loss)
        return g, v

    loss_and_grad = jax.value_and_grad(lambda p: scalar_loss(next_loss_fn, p))
    old = [(FALLBACK, fallback_update, state.fallback_state, state.fallback_params,
            state.fallback_grads, state.fallback_loss, state.fallback_mean),
           (LEARNED, learned_update, state.learned_state, state.learned_params,
            state.learned_grads, state.learned_loss, state.learned_mean)]
    if with_alone:
        old.append((ALONE, learned_update, state.alone_state, state.alone_params,
                    state.alone_grads, state.alone_loss, state.alone_mean))
    runs = []
    for index, update, inner, run_params, run_grads, run_loss, run_mean in old:
        updates, inner, new_params, loss, new_grads, ok = _step_run(
            update, *own(index, run_params, run_grads, run_loss), inner, run_params,
            loss_and_grad)
        mean = smoothing * run_mean + (1.0 - smoothing) * loss
        runs.append(dict(inner=inner, params=new_params, loss=loss,
                         grads=new_grads, ok=ok, mean=mean, source=run_params,
                         source_updates=updates, reset=jnp.asarray(False)))

    fallback = runs[FALLBACK]
    # m with (m - m^F) / (|m| + |m^F|) = reset_gap (m^F finite, as a copy needs it).
    restart = fallback["mean"] + 2.0 * reset_gap / (1.0 - reset_gap) * jnp.abs(fallback["mean"])
    running_gap = paired_gap(runs[LEARNED]["mean"], fallback["mean"])
    for index, run in enumerate(runs[1:], start=1):
        behind = running_gap > reset_gap if index == LEARNED else False
        reset = fallback["ok"] & (~run["ok"] | behind)
        for field in ("params", "grads", "source", "source_updates"):
            run[field] = _pick(reset, fallback[field], run[field])
        run["loss"] = jnp.where(reset, fallback["loss"], run["loss"])
        run["ok"] = run["ok"] | reset
        run["mean"] = jnp.where(reset, restart, run["mean"])
        run["reset"] = reset
    running_gap = paired_gap(runs[LEARNED]["mean"], fallback["mean"])

    # The run followed: after a copy into it, the fallback run; then the run with the
    # lowest running mean, if it leads the current one by more than switch_gap. A run that
    # is not finite is never followed while another is.
    current = jnp.where(jnp.stack([r["reset"] for r in runs])[following], FALLBACK, following)
    means = jnp.stack([jnp.where(r["ok"], r["mean"], jnp.inf) for r in runs])
    oks = jnp.stack([r["ok"] for r in runs])
    best = jnp.argmin(means)
    best = jnp.where(oks[best], best, jnp.argmax(oks)).astype(jnp.int32)  # a finite one
    leads = paired_gap(means[best], means[current]) < -switch_gap
    follow = jnp.where((leads & oks[best]) | (~oks[current] & oks[best]), best, current)
    follow = jnp.where(oks.any(), follow, FALLBACK).astype(jnp.int32)

    def chosen(field):
        values = [r[field] for r in runs]
        return jax.tree.map(lambda *xs: _select(follow, xs), *values)

    # Updates to the followed run's new point: its own update where the caller is at its
    # old point (exact; after a copy the run's old point is the fallback run's).
    updates = _move(params, chosen("source"), chosen("source_updates"), chosen("params"))
    on_learned = (follow != FALLBACK).astype(jnp.int32)
    learned, extra = runs[LEARNED], {}
    if with_alone:
        alone = runs[ALONE]
        extra = dict(alone_state=alone["inner"], alone_params=alone["params"],
                     alone_grads=alone["grads"], alone_loss=alone["loss"],
                     alone_mean=jnp.asarray(alone["mean"], jnp.float32),
                     num_alone=state.num_alone + (follow == ALONE).astype(jnp.int32),
                     num_alone_resets=state.num_alone_resets + alone["reset"].astype(jnp.int32))
    new_state = state._replace(
        learned_state=learned["inner"],
        fallback_state=fallback["inner"],
        num_learned=state.num_learned + on_learned,
        num_fallback=state.num_fallback + (1 - on_learned),
        used_learned=follow != FALLBACK,
        learned_loss=learned["loss"],
        fallback_loss=fallback["loss"],
        learned_params=learned["params"],
        fallback_params=fallback["params"],
        learned_grads=learned["grads"],
        fallback_grads=fallback["grads"],
        num_resets=state.num_resets + learned["reset"].astype(jnp.int32),
        reset=learned["reset"],
        running_gap=jnp.asarray(running_gap, jnp.float32),
        learned_mean=jnp.asarray(learned["mean"], jnp.float32),
        fallback_mean=jnp.asarray(fallback["mean"], jnp.float32),
        following=follow,
        **extra,
    )
    return updates, new_state
