"""The loss guard's state and the statistics read from it (`l2o.guard` has the rule)."""

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
      num_learned: int32 scalar, steps on which the learned candidate was taken.
      num_fallback: int32 scalar, steps on which the fallback candidate was taken.
      used_learned: bool scalar, whether the last step's comparison chose the learned
        candidate (even if a reset to the shadow then replaced it).
      learned_loss: float32 scalar, ``next_loss_fn(θ_L)`` at the last step (inf before any).
      fallback_loss: float32 scalar, ``next_loss_fn(θ_F)`` at the last step (inf before any).
      shadow_params: the fallback-alone parameters ``θ^S`` (None without a shadow).
      shadow_state: the fallback's state along the shadow run (None without a shadow).
      num_resets: int32 scalar, steps that ended with a reset to the shadow (these count
        neither as learned nor as fallback steps).
      shadow_loss: float32 scalar, ``next_loss_fn(θ^S)`` before the shadow's last step (inf
        before any, or without a shadow).
      reset: bool scalar, whether the last step reset to the shadow.
      running_gap: float32 scalar, running mean of the guarded run's comparison loss
        minus the shadow's (0 after a reset, or without a shadow).
    """

    learned_state: Any
    fallback_state: Any
    num_learned: jax.Array
    num_fallback: jax.Array
    used_learned: jax.Array
    learned_loss: jax.Array
    fallback_loss: jax.Array
    shadow_params: Any = None
    shadow_state: Any = None
    num_resets: jax.Array | int = 0
    shadow_loss: jax.Array | float = float("inf")
    reset: jax.Array | bool = False
    running_gap: jax.Array | float = 0.0


def init_guard_state(
    learned_state: Any, fallback_state: Any, shadow_params: Params | None = None
) -> GuardState:
    """A `GuardState` around two fresh inner states, counters at zero.

    With ``shadow_params`` (the initial params) the shadow run starts there, from a copy
    of ``fallback_state``; without, the guard has no shadow.
    """
    inf = jnp.asarray(jnp.inf, jnp.float32)
    zero = jnp.zeros((), jnp.int32)
    no = jnp.asarray(False)
    shadow_state = None if shadow_params is None else fallback_state
    return GuardState(learned_state, fallback_state, zero, zero, no, inf, inf,
                      shadow_params, shadow_state, zero, inf, no,
                      jnp.zeros((), jnp.float32))


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

    Returns ``num_learned``, ``num_fallback``, ``num_resets`` (to the shadow run) and
    ``num_steps`` (their sum) (int32), ``learned_fraction = num_learned / max(num_steps,
    1)`` and ``reset_fraction`` (float32), ``used_learned`` (last comparison) and
    ``chosen_loss`` (the comparison loss of the candidate taken last, i.e. the next
    step's minibatch loss, or the shadow's loss before its step after a reset; inf
    before any step). Works inside ``jit`` and on batched states (every entry then has
    the batch shape); use ``jax.device_get`` for a report.
    """
    state = _find_guard_state(state)
    num_resets = jnp.asarray(state.num_resets, jnp.int32)
    num_steps = state.num_learned + state.num_fallback + num_resets
    denominator = jnp.maximum(num_steps, 1)
    chosen = jnp.where(state.used_learned, state.learned_loss, state.fallback_loss)
    chosen = jnp.where(state.reset, state.shadow_loss, chosen)
    return {
        "num_learned": state.num_learned,
        "num_fallback": state.num_fallback,
        "num_resets": num_resets,
        "num_steps": num_steps,
        "learned_fraction": (state.num_learned / denominator).astype(jnp.float32),
        "reset_fraction": (num_resets / denominator).astype(jnp.float32),
        "used_learned": state.used_learned,
        "chosen_loss": chosen,
    }
