"""The loss guard's state and the statistics read from it (`l2o.guard` has the rules)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Params = Any


class GuardState(NamedTuple):
    """State of the guard: both inner states plus the record of the last decision.

    Attributes:
      learned_state: the learned optimizer's state.
      fallback_state: the fallback optimizer's state.
      num_learned: int32 scalar, steps after which the learned point was taken (per-step
        rule: the learned candidate won; paired runs: the learned run was followed).
      num_fallback: int32 scalar, steps after which the fallback point was taken.
      used_learned: bool scalar, whether the last step took the learned point (paired
        runs: whether the learned run is the one followed now).
      learned_loss: float32 scalar, ``next_loss_fn`` at the learned point of the last step
        (paired runs: at the learned run's point after a copy, if any; inf before any).
      fallback_loss: float32 scalar, ``next_loss_fn`` at the fallback point of the last
        step (paired runs: the fallback run's; inf before any).
      learned_params, fallback_params: paired runs only (else None): each run's point
        (the caller's params are the followed run's, up to one rounding after a switch).
      learned_grads, fallback_grads: paired runs only: the gradient of ``next_loss_fn`` at
        each run's point, the gradient it steps with when the caller's is not its own.
      num_resets: int32 scalar, steps on which the fallback run's point was copied into
        the learned run (paired runs only).
      reset: bool scalar, whether the last step made such a copy.
      running_gap: float32 scalar, relative gap ``(m^L - m^F) / (|m^L| + |m^F|)`` of the
        running means below (``reset_gap`` after a copy; 0 for the per-step rule).
      learned_mean, fallback_mean: float32 scalars, running means of each run's
        ``next_loss_fn`` (paired runs; 0 at the start and for the per-step rule).
      following: int32 scalar, the run followed now (paired runs): 0 the fallback run,
        1 the learned run (restarted from the fallback run when behind), 2 the alone run.
      alone_state, alone_params, alone_grads, alone_loss, alone_mean: the *alone run*
        (paired runs with ``alone_run``, else None / unused): the learned optimizer alone,
        never restarted unless it stops being finite; fields as for the learned run.
      num_alone: int32 scalar, steps after which the alone run was followed (counted in
        ``num_learned`` too).
      num_alone_resets: int32 scalar, copies of the fallback run into the alone run (only
        when the alone run stopped being finite).
    """

    learned_state: Any
    fallback_state: Any
    num_learned: jax.Array
    num_fallback: jax.Array
    used_learned: jax.Array
    learned_loss: jax.Array
    fallback_loss: jax.Array
    learned_params: Any = None
    fallback_params: Any = None
    learned_grads: Any = None
    fallback_grads: Any = None
    num_resets: jax.Array | int = 0
    reset: jax.Array | bool = False
    running_gap: jax.Array | float = 0.0
    learned_mean: jax.Array | float = 0.0
    fallback_mean: jax.Array | float = 0.0
    following: jax.Array | int = 0
    alone_state: Any = None
    alone_params: Any = None
    alone_grads: Any = None
    alone_loss: jax.Array | float = float("inf")
    alone_mean: jax.Array | float = 0.0
    num_alone: jax.Array | int = 0
    num_alone_resets: jax.Array | int = 0


def init_guard_state(
    learned_state: Any, fallback_state: Any, params: Params | None = None,
    alone_run: bool = False,
) -> GuardState:
    """A `GuardState` around fresh inner states, counters at zero.

    With ``params`` (the initial params) the state is the paired runs' (every run starts
    at ``params``, the fallback run followed), with ``alone_run`` a third run of the
    learned optimizer alone (its state starts as ``learned_state``); without ``params``,
    the per-step rule's.
    """
    inf = jnp.asarray(jnp.inf, jnp.float32)
    zero = jnp.zeros((), jnp.int32)
    no = jnp.asarray(False)
    zeros = None if params is None else jax.tree.map(jnp.zeros_like, params)
    zero_f = jnp.zeros((), jnp.float32)
    state = GuardState(learned_state, fallback_state, zero, zero, no, inf, inf,
                       params, params, zeros, zeros, zero, no, zero_f, zero_f, zero_f, zero,
                       alone_loss=inf, alone_mean=zero_f, num_alone=zero, num_alone_resets=zero)
    if params is not None and alone_run:
        state = state._replace(alone_state=learned_state, alone_params=params, alone_grads=zeros)
    return state


def _find_guard_state(state: Any) -> GuardState:
    if isinstance(state, GuardState):
        return state
    found = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, GuardState))
    found = [s for s in found if isinstance(s, GuardState)]
    if len(found) != 1:
        raise ValueError(
            f"guard_stats expects a state holding exactly one GuardState (from loss_guarded "
            f"or GuardedOptimizer); found {len(found)} in a {type(state).__name__}. Pass the "
            "guard's own state."
        )
    return found[0]


def guard_stats(state: Any) -> dict[str, jax.Array]:
    """How often each branch was taken, from a `GuardState` (or a state containing one).

    Returns ``num_learned``, ``num_fallback`` and ``num_steps`` (their sum), ``num_resets``
    (copies of the fallback run into the learned run) (int32), ``learned_fraction =
    num_learned / max(num_steps, 1)`` and ``reset_fraction`` (float32), ``used_learned``
    (last step), ``chosen_loss`` (``next_loss_fn`` at the point taken last, i.e. the next
    step's minibatch loss; inf before any step), ``running_gap`` (learned vs fallback
    run), ``following`` (the run followed: 0 fallback, 1 learned, 2 alone), ``num_alone``
    (steps following the alone run), ``alone_fraction`` and ``num_alone_resets``. Works inside ``jit``
    and on batched states (every entry then has the batch shape); use ``jax.device_get``
    for a report.
    """
    state = _find_guard_state(state)
    num_resets = jnp.asarray(state.num_resets, jnp.int32)
    num_steps = state.num_learned + state.num_fallback
    denominator = jnp.maximum(num_steps, 1)
    return {
        "num_learned": state.num_learned,
        "num_fallback": state.num_fallback,
        "num_resets": num_resets,
        "num_steps": num_steps,
        "learned_fraction": (state.num_learned / denominator).astype(jnp.float32),
        "reset_fraction": (num_resets / denominator).astype(jnp.float32),
        "used_learned": state.used_learned,
        "chosen_loss": jnp.where(
            jnp.asarray(state.following) == 2, jnp.asarray(state.alone_loss, jnp.float32),
            jnp.where(state.used_learned, state.learned_loss, state.fallback_loss)),
        "running_gap": jnp.asarray(state.running_gap, jnp.float32),
        "following": jnp.asarray(state.following, jnp.int32),
        "num_alone": jnp.asarray(state.num_alone, jnp.int32),
        "alone_fraction": (state.num_alone / denominator).astype(jnp.float32),
        "num_alone_resets": jnp.asarray(state.num_alone_resets, jnp.int32),
    }
