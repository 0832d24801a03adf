"""Loss-guarded learned optimizer (LGL2O, Prémont-Schwarz, Vítků & Feyereisl 2022).

Rule (our reading of "A Simple Guard for Learned Optimizers", arXiv:2201.12426). At the
current point ``θ_t`` with gradient ``g_t`` (one gradient per step, nothing extra):

    θ_L = θ_t + u_learned(g_t)          θ_F = θ_t + u_fallback(g_t)
    θ_{t+1} = θ_L   if  L(θ_L) <= L(θ_F)   else   θ_F

where ``L = next_loss_fn`` is the loss on one minibatch shared by both candidates — the
*next* step's minibatch, so the loss of the chosen candidate is exactly the next step's
training loss. (The name is not optax's ``value_fn``: optax's line searches read that as
the loss of the *current* batch. ``value_fn=`` is still accepted for ``next_loss_fn``,
with a DeprecationWarning, when ``next_loss_fn`` is not given.) Cost: two extra forward passes per step, no extra gradient (unlike
Heaton et al.'s GL2O). Ties go to the learned rule. The learned candidate is rejected
when its update or its loss is non-finite; it is taken when it is finite and the
fallback's loss is not. A non-finite coordinate left in the chosen update is set to 0.

Optimizer states. Both optimizers advance every step from the gradient at the true point
``θ_t``, whichever candidate wins: the learned optimizer's state (momenta, LSTM memory,
step counter) follows the trajectory actually taken, and the fallback's moments (Adam's
m, v) are averages of true gradients, so they stay valid when it takes over. Neither
state is rewound or reset.

Guarantee. Let ``f`` be μ-strongly convex and L-smooth, the fallback GD
``optax.sgd(α)`` with ``0 < α <= 1/L``, and ``next_loss_fn = f``. The descent lemma gives
``f(θ_F) <= f(θ_t) - α/2 ||∇f(θ_t)||²``, and the guard gives ``f(θ_{t+1}) <= f(θ_F)``,
so ``f(θ_{t+1}) - f* <= (1 - αμ)(f(θ_t) - f*)``: the loss never increases and converges
linearly whatever the learned rule proposes (NaN included). With SGD and a minibatch
``next_loss_fn`` the same argument bounds, in expectation over that minibatch, its loss at
the chosen point by the fallback candidate's expected loss. Deviation from the paper's
stochastic setting: the comparison uses one minibatch, not the expected loss, and that
minibatch is also the next gradient's; the bound is on that minibatch loss (the training
loss the loop sees), which is biased low relative to the population loss at ``θ_{t+1}``.
The same noise lets a harmful rule win some comparisons; the shadow run below bounds the
whole run instead (measurements: ``docs/guard.md``). Other fallbacks (Adam, Lion) keep the
per-step property "never worse than the fallback candidate on the comparison batch" but
have no convergence theorem.

Shadow trajectory (our addition, ``shadow=True``, the default). The rule above bounds
each step against the fallback's step *from the same point*; it does not bound the whole
run against the fallback run alone: a learned rule can win the one-step comparisons and
still lead somewhere the fallback makes slow progress from (``docs/guard.md`` has a
measured case). With ``shadow=True`` the guard also runs the fallback alone on its own
copy of the parameters ``θ^S`` and resets to it when the guarded point falls behind::

    (ℓ_S, g_S) = value_and_grad(L)(θ^S_t)           # the shadow's step, on the same batch
    θ^S_{t+1} = θ^S_t + u_fallback(g_S)             # (fallback state of the shadow)
    d_t = L(θ_{t+1}) - ℓ_S                          # > 0: the guarded point is behind
    D_t = s·D_{t-1} + (1 - s)·d_t                   # running gap, s = ``smoothing``
    if d_t > 0 and D_t > 0 (or L(θ_{t+1}) is not finite):
        θ_{t+1} = θ^S_{t+1}, fallback state = the shadow's, D_t = 0

``ℓ_S`` is the shadow's loss *before* its step (the test is lenient by one step) and both
losses are unbiased estimates, as the shadow's params never saw that batch. With
``smoothing=0`` the guarded point is never behind the fallback-alone run by more than one
step on the comparison batch. Minibatch noise then triggers resets even when the learned
run is ahead on average, so by default (``smoothing=0.5``) a reset also needs the running
gap to be positive: a guarded run that was clearly ahead over the last few batches may
trail on one noisy batch. Cost: one extra gradient of ``next_loss_fn`` per step and a
second copy of the parameters and fallback state; ``next_loss_fn`` must be differentiable.

``shadow=False`` is the paper's rule alone. `GuardedOptimizer` (`l2o.guarded`) is the
same guard as a `LearnedOptimizer`, for meta-training with the guard in the loop.

Training loop (``loss_fn(params, key)`` draws the minibatch of ``key``)::

    tx = loss_guarded(learned_tx, optax.sgd(0.1))
    state = tx.init(params)
    for t in range(num_steps):
        loss, grads = jax.value_and_grad(loss_fn)(params, keys[t])
        updates, state = tx.update(
            grads, state, params, value=loss,
            next_loss_fn=lambda p: loss_fn(p, keys[t + 1]))
        params = optax.apply_updates(params, updates)
    guard_stats(state)["learned_fraction"], guard_stats(state)["num_resets"]
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from l2o.guard_state import GuardState, guard_stats, init_guard_state  # noqa: F401

Params = Any
UpdateFn = Callable[[Params, Any, Params], tuple[Params, Any]]


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


def _all_finite(tree: Params) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def guarded_update(
    learned_update: UpdateFn,
    fallback_update: UpdateFn,
    grads: Params,
    state: GuardState,
    params: Params,
    next_loss_fn: Callable[[Params], jax.Array],
    smoothing: float = 0.5,
) -> tuple[Params, GuardState]:
    """One LGL2O step (plus the shadow check), shared by `loss_guarded` and `GuardedOptimizer`.

    Args:
      learned_update, fallback_update: ``(grads, inner_state, params) -> (updates,
        inner_state)`` for each optimizer (extra arguments already bound);
        ``fallback_update`` also takes an optional fourth argument, the loss at the point
        it is called at (the shadow run's), replacing the bound current loss.
      grads: gradient at ``params`` (pytree like ``params``).
      state: a `GuardState`.
      params: the current point ``θ_t``.
      next_loss_fn: ``params -> scalar`` loss on the comparison (next) minibatch.
      smoothing: decay of the running gap a reset to the shadow also needs (module doc).

    Returns:
      ``(updates, state)``: ``updates = u_L`` if the learned candidate wins, else
      ``u_F``, or ``θ^S_{t+1} - θ_t`` on a reset to the shadow (pytree like ``params``,
      in its dtypes, non-finite entries set to 0); inner states advanced, counters and
      last losses recorded. Jittable and vmappable (choices are ``jnp.where``, no Python
      branching on values).
    """
    learned_updates, learned_state = learned_update(grads, state.learned_state, params)
    fallback_updates, fallback_state = fallback_update(grads, state.fallback_state, params)
    learned_loss = _scalar_loss(next_loss_fn, optax.apply_updates(params, learned_updates))
    fallback_loss = _scalar_loss(next_loss_fn, optax.apply_updates(params, fallback_updates))
    learned_ok = jnp.isfinite(learned_loss) & _all_finite(learned_updates)
    # `not (L_L > L_F)` is also true when L_F is NaN: a finite learned loss beats it.
    use_learned = learned_ok & ~(learned_loss > fallback_loss)

    def select(p, a, b):
        chosen = jnp.where(use_learned, a, b)
        return jnp.nan_to_num(chosen, nan=0.0, posinf=0.0, neginf=0.0).astype(p.dtype)

    updates = jax.tree.map(select, params, learned_updates, fallback_updates)
    chosen_loss = jnp.where(use_learned, learned_loss, fallback_loss)
    reset = jnp.asarray(False)
    shadow_params, shadow_state, shadow_loss = None, None, state.shadow_loss
    running_gap = jnp.zeros((), jnp.float32)
    if state.shadow_params is not None:
        shadow_loss, shadow_grads = jax.value_and_grad(
            lambda p: _scalar_loss(next_loss_fn, p))(state.shadow_params)
        shadow_updates, shadow_state = fallback_update(
            shadow_grads, state.shadow_state, state.shadow_params, shadow_loss)
        shadow_params = optax.apply_updates(state.shadow_params, shadow_updates)
        shadow_ok = _all_finite(shadow_params)
        # Behind the shadow (or non-finite while the shadow is fine): jump to it.
        gap = chosen_loss - shadow_loss
        running_gap = smoothing * state.running_gap + (1.0 - smoothing) * gap
        reset = shadow_ok & jnp.isfinite(shadow_loss) & (
            ~jnp.isfinite(chosen_loss) | ((gap > 0) & (running_gap > 0)))
        running_gap = jnp.where(reset | ~jnp.isfinite(running_gap), 0.0, running_gap)

        def jump(p, u, target):
            return jnp.where(reset, (target - p).astype(p.dtype), u)

        updates = jax.tree.map(jump, params, updates, shadow_params)
        fallback_state = jax.tree.map(
            lambda shadow, own: jnp.where(reset, shadow, own), shadow_state, fallback_state)
    taken = (use_learned & ~reset).astype(jnp.int32)
    new_state = GuardState(
        learned_state=learned_state,
        fallback_state=fallback_state,
        num_learned=state.num_learned + taken,
        num_fallback=state.num_fallback + (~use_learned & ~reset).astype(jnp.int32),
        used_learned=use_learned,
        learned_loss=learned_loss,
        fallback_loss=fallback_loss,
        shadow_params=shadow_params,
        shadow_state=shadow_state,
        num_resets=state.num_resets + reset.astype(jnp.int32),
        shadow_loss=jnp.asarray(shadow_loss, jnp.float32),
        reset=reset,
        running_gap=jnp.asarray(running_gap, jnp.float32),
    )
    return updates, new_state


def check_smoothing(smoothing: Any) -> None:
    """Raise unless ``smoothing`` is a real number in ``[0, 1)``."""
    if not isinstance(smoothing, numbers.Real) or not 0.0 <= smoothing < 1.0:
        raise ValueError(
            f"smoothing must be a float in [0, 1) (decay of the running loss gap; 0 resets "
            f"on every step the guarded run is behind), got {smoothing!r}."
        )


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
    smoothing: float = 0.5,
) -> optax.GradientTransformationExtraArgs:
    """Guard ``learned`` with ``fallback``: each step take the candidate of lower loss.

    Args:
      learned: any optax transform (typically ``lopt.as_optax(theta)``).
      fallback: any optax transform (``optax.sgd(lr)`` for the convergence guarantee of
        the module doc; Adam, Lion, ... also work). Plain transforms are wrapped with
        ``optax.with_extra_args_support``.
      shadow: also run ``fallback`` alone and reset to it when the guarded point falls
        behind (module doc; one extra gradient of ``next_loss_fn`` per step). ``False``: the
        paper's per-step rule only.
      smoothing: decay in ``[0, 1)`` of the running gap between the guarded run's
        comparison loss and the shadow's; a reset needs both the step's gap and the
        running gap to be positive. ``0``: reset whenever the guarded point is behind.

    Returns:
      A transform with ``init(params) -> GuardState`` and ``update(grads, state, params,
      *, value=None, next_loss_fn, **extra) -> (updates, GuardState)``. ``value`` (the
      loss at ``params``), ``next_loss_fn`` and ``**extra`` go to both inner optimizers;
      ``next_loss_fn(p) -> scalar`` is the loss on the next minibatch, used to compare
      ``θ_t + u_learned`` with ``θ_t + u_fallback``. Both inner states always advance
      (module doc).
    """
    check_transform(learned, "learned")
    check_transform(fallback, "fallback")
    check_smoothing(smoothing)
    learned = optax.with_extra_args_support(learned)
    fallback = optax.with_extra_args_support(fallback)

    def init_fn(params):
        return init_guard_state(
            learned.init(params), fallback.init(params), params if shadow else None)

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
        if value is not None:
            kwargs["value"] = value

        def learned_update(g, s, p):
            return learned.update(g, s, p, **kwargs)

        def fallback_update(g, s, p, at_value=None):
            return fallback.update(
                g, s, p, **(kwargs if at_value is None else dict(kwargs, value=at_value)))

        return guarded_update(learned_update, fallback_update, updates, state, params,
                              next_loss_fn, smoothing)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def __getattr__(name: str) -> Any:
    if name == "GuardedOptimizer":  # its home before it moved to l2o.guarded
        from l2o.guarded import GuardedOptimizer

        warnings.warn("l2o.guard.GuardedOptimizer moved: import it from l2o or l2o.guarded.",
                      DeprecationWarning, stacklevel=2)
        return GuardedOptimizer
    raise AttributeError(f"module 'l2o.guard' has no attribute {name!r}")
