"""Loss-guarded learned optimizer: a learned rule that ends no worse than its fallback.

Two rules, both taking the gradient the training loop computes at its current point and
``next_loss_fn = L``, the loss on the *next* step's minibatch (so the comparison loss of
the point taken is exactly the next step's training loss). The name is not optax's
``value_fn``: optax's line searches read that as the loss of the *current* batch.
``value_fn=`` is still accepted for ``next_loss_fn``, with a DeprecationWarning, when
``next_loss_fn`` is not given.

Paired runs (``shadow=True``, the default; `l2o.guard_paired` has the rule and its
constants). The learned optimizer and the fallback each train their own copy of the
params on the same minibatches, in full; the guard follows the run whose running mean of
``next_loss_fn`` on the shared batches is lowest, with hysteresis, and copies the fallback
run's point into the learned run when the learned run falls clearly behind or stops being
finite. With ``alone_run`` (the default) a third run of the learned optimizer is never
restarted while finite, so a learned trajectory that is behind early and ahead late is
kept. The fallback run is the fallback alone, so the followed point is never behind it
for long; the alone run is the learned optimizer alone; the point returned is always one
of the runs'. Cost: one extra gradient of ``next_loss_fn`` per run and step (at its new
point), every run's params and gradients in the state (one optimizer state per run);
``next_loss_fn`` must be differentiable.

Per-step rule (``shadow=False``; LGL2O, Prémont-Schwarz, Vítků & Feyereisl 2022, "A
Simple Guard for Learned Optimizers", arXiv:2201.12426, our reading). At ``θ_t`` with
gradient ``g_t``::

    θ_L = θ_t + u_learned(g_t)          θ_F = θ_t + u_fallback(g_t)
    θ_{t+1} = θ_L   if  L(θ_L) <= L(θ_F)   else   θ_F

Cost: two extra forward passes per step, no extra gradient (unlike Heaton et al.'s GL2O).
Ties go to the learned rule. The learned candidate is rejected when its update or its loss
is non-finite; it is taken when it is finite and the fallback's loss is not. A non-finite
coordinate left in the chosen update is set to 0. Both optimizers advance every step from
the gradient at ``θ_t``, whichever candidate wins; neither state is rewound or reset.

Guarantee of the per-step rule. Let ``f`` be μ-strongly convex and L-smooth, the fallback
GD ``optax.sgd(α)`` with ``0 < α <= 1/L``, and ``next_loss_fn = f``. The descent lemma
gives ``f(θ_F) <= f(θ_t) - α/2 ||∇f(θ_t)||²``, and the guard gives ``f(θ_{t+1}) <=
f(θ_F)``, so ``f(θ_{t+1}) - f* <= (1 - αμ)(f(θ_t) - f*)``: the loss never increases and
converges linearly whatever the learned rule proposes (NaN included). With a minibatch
``next_loss_fn`` the bound is on that minibatch's loss (the training loss the loop sees),
which is biased low relative to the population loss at ``θ_{t+1}``; the same noise lets a
harmful rule win some comparisons, and a rule can win every one-step comparison and still
lead where the fallback is slow (measurements: ``docs/guard.md``). The paired runs bound
the whole run against the fallback run instead.

Training loop (``loss_fn(params, key)`` draws the minibatch of ``key``)::

    tx = loss_guarded(learned_tx, optax.adam(1e-3))
    state = tx.init(params)
    for t in range(num_steps):
        loss, grads = jax.value_and_grad(loss_fn)(params, keys[t])
        updates, state = tx.update(
            grads, state, params, value=loss,
            next_loss_fn=lambda p: loss_fn(p, keys[t + 1]))
        params = optax.apply_updates(params, updates)
    guard_stats(state)["learned_fraction"], guard_stats(state)["num_resets"]

`GuardedOptimizer` (`l2o.guarded`) is the same guard as a `LearnedOptimizer`, for
meta-training with the guard in the loop.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from l2o.guard_paired import RunUpdate, all_finite, paired_update
from l2o.guard_state import GuardState, guard_stats, init_guard_state  # noqa: F401

Params = Any
# Constants of the paired runs (`l2o.guard_paired`); measured choice: docs/guard.md.
DEFAULT_SETTINGS: dict[str, float] = {"smoothing": 0.97, "switch_gap": 0.0025, "reset_gap": 0.1}
# Whether the paired runs include the learned optimizer alone (docs/guard.md measures both).
DEFAULT_ALONE_RUN = True


def resolve_next_loss_fn(next_loss_fn: Any, value_fn: Any, caller: str) -> Any:
    """``next_loss_fn``, or the deprecated ``value_fn`` (with a warning) when it is missing.

    Raises unless the result is a callable (the comparison loss the guard needs).
    """
    if next_loss_fn is None and value_fn is not None:
        warnings.warn(
            f"{caller}: value_fn= is deprecated for the guard's comparison loss (optax's line "
            "searches read value_fn as the current batch's loss); pass next_loss_fn=.",
            DeprecationWarning, stacklevel=3)
        next_loss_fn = value_fn
    if next_loss_fn is None:
        raise ValueError(
            f"{caller} needs next_loss_fn, the loss of candidate params on the next "
            "minibatch: call update(grads, state, params, value=loss, next_loss_fn=lambda p: "
            "loss_fn(p, next_batch)) where next_batch is the batch the next gradient is "
            "taken on."
        )
    if not callable(next_loss_fn):
        raise TypeError(
            f"{caller}: next_loss_fn must be a callable params -> scalar loss; got "
            f"{type(next_loss_fn).__name__}. Pass e.g. next_loss_fn=lambda p: "
            "loss_fn(p, next_batch)."
        )
    return next_loss_fn


def _scalar_loss(loss_fn: Callable[[Params], jax.Array], params: Params) -> jax.Array:
    loss = jnp.asarray(loss_fn(params))
    if loss.shape != ():
        raise ValueError(
            f"next_loss_fn must return a scalar loss; got an array of shape {loss.shape}. "
            "Reduce it (e.g. mean over the minibatch) inside next_loss_fn."
        )
    return loss.astype(jnp.float32)


def per_step_update(
    learned_update: RunUpdate,
    fallback_update: RunUpdate,
    grads: Params,
    state: GuardState,
    params: Params,
    value: jax.Array | None,
    next_loss_fn: Callable[[Params], jax.Array],
) -> tuple[Params, GuardState]:
    """One step of the per-step rule (module doc), shared by both forms of the guard.

    Args:
      learned_update, fallback_update: ``(grads, inner_state, params, value) -> (updates,
        inner_state)`` for each optimizer (other extra arguments already bound).
      grads: gradient at ``params`` (pytree like ``params``).
      state: a `GuardState` without paired runs.
      params: the current point ``θ_t``.
      value: the loss at ``params``, or None; passed to both optimizers.
      next_loss_fn: ``params -> scalar`` loss on the comparison (next) minibatch.

    Returns:
      ``(updates, state)``: ``updates = u_L`` if the learned candidate wins, else ``u_F``
      (in the dtypes of ``params``, non-finite entries set to 0); inner states advanced,
      counters and last losses recorded. Jittable and vmappable.
    """
    learned_updates, learned_state = learned_update(grads, state.learned_state, params, value)
    fallback_updates, fallback_state = fallback_update(
        grads, state.fallback_state, params, value)
    learned_loss = _scalar_loss(next_loss_fn, optax.apply_updates(params, learned_updates))
    fallback_loss = _scalar_loss(next_loss_fn, optax.apply_updates(params, fallback_updates))
    learned_ok = jnp.isfinite(learned_loss) & all_finite(learned_updates)
    # `not (L_L > L_F)` is also true when L_F is NaN: a finite learned loss beats it.
    use_learned = learned_ok & ~(learned_loss > fallback_loss)

    def select(p, a, b):
        chosen = jnp.where(use_learned, a, b)
        return jnp.nan_to_num(chosen, nan=0.0, posinf=0.0, neginf=0.0).astype(p.dtype)

    updates = jax.tree.map(select, params, learned_updates, fallback_updates)
    return updates, state._replace(
        learned_state=learned_state,
        fallback_state=fallback_state,
        num_learned=state.num_learned + use_learned.astype(jnp.int32),
        num_fallback=state.num_fallback + (~use_learned).astype(jnp.int32),
        used_learned=use_learned,
        learned_loss=learned_loss,
        fallback_loss=fallback_loss,
    )


def guarded_update(
    learned_update: RunUpdate,
    fallback_update: RunUpdate,
    grads: Params,
    state: GuardState,
    params: Params,
    value: jax.Array | None,
    next_loss_fn: Callable[[Params], jax.Array],
    settings: dict[str, float] | None = None,
) -> tuple[Params, GuardState]:
    """One guarded step: the paired runs when ``state`` has them, else the per-step rule.

    ``settings`` holds the paired runs' ``smoothing``, ``switch_gap`` and ``reset_gap``
    (defaults of `loss_guarded` where missing); other arguments as in `per_step_update`.
    """
    if state.fallback_params is None:
        return per_step_update(learned_update, fallback_update, grads, state, params, value,
                               next_loss_fn)
    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    return paired_update(learned_update, fallback_update, grads, state, params, value,
                         next_loss_fn, _scalar_loss, **settings)


def check_settings(smoothing: Any, switch_gap: Any, reset_gap: Any) -> dict[str, Any]:
    """The paired runs' constants as a dict; raise unless ``smoothing`` is in ``[0, 1)``
    and ``0 <= switch_gap < reset_gap < 1`` (gaps are relative, in ``[-1, 1]``).

    Traced values (a grid of settings under ``vmap``) are passed through unchecked.
    """
    values = {"smoothing": smoothing, "switch_gap": switch_gap, "reset_gap": reset_gap}
    if any(isinstance(v, jax.core.Tracer) for v in values.values()):
        return values
    if not isinstance(smoothing, numbers.Real) or not 0.0 <= smoothing < 1.0:
        raise ValueError(
            f"smoothing must be a float in [0, 1) (decay of the running loss gap between the "
            f"learned and the fallback run; 0 uses the last batch only), got {smoothing!r}."
        )
    for name in ("switch_gap", "reset_gap"):
        gap = values[name]
        if not isinstance(gap, numbers.Real) or not 0.0 <= gap < 1.0:
            raise ValueError(
                f"{name} must be a float in [0, 1) (a relative loss gap (a - b) / (|a| + |b|);"
                f" a reset_gap near 1 copies only when the learned run stops being finite), "
                f"got {gap!r}.")
    if not switch_gap < reset_gap:
        raise ValueError(
            f"switch_gap must be below reset_gap (the guard switches to the fallback run "
            f"before it gives up the learned run), got switch_gap={switch_gap!r}, "
            f"reset_gap={reset_gap!r}.")
    return {name: float(v) for name, v in values.items()}


def check_alone_run(alone_run: Any) -> bool:
    """``alone_run`` itself; raise unless it is a bool."""
    if not isinstance(alone_run, bool):
        raise TypeError(
            f"alone_run must be True or False (run the learned optimizer alone as a third "
            f"run of the guard), got {alone_run!r}.")
    return alone_run


def check_transform(tx: Any, role: str) -> None:
    """Raise unless ``tx`` looks like an optax transform (callable ``init`` and ``update``)."""
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"loss_guarded: {role} must be an optax GradientTransformation (with init and "
            f"update); got {type(tx).__name__}. For a LearnedOptimizer pass "
            "lopt.as_optax(theta), or use GuardedOptimizer(lopt, fallback)."
        )


def loss_guarded(
    learned: optax.GradientTransformationExtraArgs,
    fallback: optax.GradientTransformation = optax.adam(1e-3),
    *,
    shadow: bool = True,
    smoothing: float = DEFAULT_SETTINGS["smoothing"],
    switch_gap: float = DEFAULT_SETTINGS["switch_gap"],
    reset_gap: float = DEFAULT_SETTINGS["reset_gap"],
    alone_run: bool = DEFAULT_ALONE_RUN,
) -> optax.GradientTransformationExtraArgs:
    """Guard ``learned`` with ``fallback`` (module doc).

    Args:
      learned: any optax transform (typically ``lopt.as_optax(theta)``).
      fallback: any optax transform (Adam, Lion, ...; ``optax.sgd(lr)`` for the per-step
        rule's convergence guarantee). Plain transforms are wrapped with
        ``optax.with_extra_args_support``.
      shadow: run the learned optimizer and the fallback alone side by side and follow
        the one ahead (`l2o.guard_paired`). ``False``: the paper's per-step rule.
      smoothing: decay in ``[0, 1)`` of the running means of both runs' losses on the
        shared batches (paired runs only).
      switch_gap: hysteresis of the choice of run, a relative gap in ``[0, reset_gap)``.
      reset_gap: running gap past which the learned run restarts from the fallback run's
        point, in ``(switch_gap, 1)`` (near 1: only when it stops being finite).
      alone_run: with ``shadow``, also run the learned optimizer alone, never restarted
        while finite, and follow it when it leads (`l2o.guard_paired`): a learned
        trajectory the restarts would throw away is kept. Costs one more learned update
        and gradient per step and a third copy of the params and gradients.

    Returns:
      A transform with ``init(params) -> GuardState`` and ``update(grads, state, params,
      *, value=None, next_loss_fn, **extra) -> (updates, GuardState)``. ``value`` is the
      loss at ``params`` (each optimizer gets the loss at its own point), ``next_loss_fn``
      (the loss on the next minibatch) and ``**extra`` go to both inner optimizers.
    """
    check_transform(learned, "learned")
    check_transform(fallback, "fallback")
    settings = check_settings(smoothing, switch_gap, reset_gap)
    check_alone_run(alone_run)
    learned = optax.with_extra_args_support(learned)
    fallback = optax.with_extra_args_support(fallback)

    def init_fn(params):
        return init_guard_state(learned.init(params), fallback.init(params),
                                params if shadow else None, alone_run)

    def update_fn(updates, state, params=None, *, value=None, next_loss_fn=None,
                  value_fn=None, **extra):
        if value_fn is not None:  # forwarded to the inner optimizers as given
            extra["value_fn"] = value_fn
        next_loss_fn = resolve_next_loss_fn(next_loss_fn, value_fn, "loss_guarded update")
        if params is None:
            raise ValueError(
                "loss_guarded update needs the current params to form the candidates: call "
                "update(grads, state, params, value=loss, next_loss_fn=next_loss)."
            )
        kwargs = dict(extra, next_loss_fn=next_loss_fn)

        def bind(tx):
            def run_update(g, s, p, at_value):
                return tx.update(g, s, p, **(kwargs if at_value is None
                                             else dict(kwargs, value=at_value)))
            return run_update

        return guarded_update(bind(learned), bind(fallback), updates, state, params, value,
                              next_loss_fn, settings)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def __getattr__(name: str) -> Any:
    if name == "GuardedOptimizer":  # its home before it moved to l2o.guarded
        from l2o.guarded import GuardedOptimizer

        warnings.warn("l2o.guard.GuardedOptimizer moved: import it from l2o or l2o.guarded.",
                      DeprecationWarning, stacklevel=2)
        return GuardedOptimizer
    raise AttributeError(f"module 'l2o.guard' has no attribute {name!r}")
