"""Inner training of sampled tasks by a learned optimizer, as an `UnrolledSystem`.

One inner run: draw ``cfg ~ family.sample``, build ``task = family.task(cfg)``, initialise
its params, then ``horizon`` steps of::

    loss, grads = value_and_grad(task.loss)(params, key_t)
    updates, opt_state = lopt.update(theta, grads, opt_state, params, loss)
    params = params + updates

``unroll`` is a ``lax.scan`` of ``length`` such steps; when the run reaches its horizon
the state is replaced by a fresh run drawn with the unroll's key (``reset = True``).
With ``horizon_range = (low, high)`` every run draws its own horizon log-uniformly in that
range (`meta_train.truncation.sample_horizon`, a multiple of ``horizon_multiple``), and the
optimizer is told that horizon as ``num_steps``, so its progress features see many lengths.
Minibatch keys are ``fold_in(data_key, inner_step)`` with one ``data_key`` per run, so an
antithetic pair (same run, same step) sees the same batches, and the key of the *next*
step is known: optimizers with ``needs_next_loss_fn`` (the loss guard) get
``next_loss_fn = lambda p: task.loss(p, key_{t+1})``.

Meta-loss of an unroll: the mean over its steps of `meta_train.objective.meta_loss_term`
of the step's loss (the minibatch training loss before the update, or with
``meta_loss_split`` "train"/"test" the task's ``eval_loss`` after it), normalised by the
run's initial loss. A non-finite step makes the unroll's meta-loss non-finite; the
estimator replaces it with a penalty and counts it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from l2o.base import LearnedOptimizer
from meta_train.objective import (
    TINY_RATIO, check_kind, check_ratio_range, loss_scale, meta_loss_term,
)
from meta_train.truncation import horizon_range_error, sample_horizon

META_LOSS_SPLITS: tuple[str, ...] = ("train_batch", "train", "test")
_HORIZON_SALT = 0x4A11


@struct.dataclass
class InnerState:
    """One inner run in progress.

    Attributes:
      cfg: the task's config pytree (from ``family.sample``).
      params: the task's parameters.
      opt_state: the learned optimizer's state.
      inner_step: i32[] steps taken in this run.
      data_key: PRNG key of this run's minibatches.
      loss_scale: f32[] normaliser (initial loss of the run, see `objective.loss_scale`).
      horizon: i32[] length of this run when horizons are sampled; None (no leaf) when
        every run has the system's fixed ``horizon``.
    """

    cfg: Any
    params: Any
    opt_state: Any
    inner_step: jax.Array
    data_key: jax.Array
    loss_scale: jax.Array
    horizon: Any = None


def _where_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


@dataclasses.dataclass(frozen=True)
class LearnedOptimizerSystem:
    """Tasks of ``family`` trained by ``lopt`` for ``horizon`` steps (an `UnrolledSystem`).

    Attributes:
      family: a `tasks.base.TaskFamily`.
      lopt: a `l2o.base.LearnedOptimizer`.
      horizon: steps per inner run (also the ``num_steps`` the optimizer is told).
      horizon_range: ``(low, high)`` to sample each run's horizon log-uniformly instead
        (multiples of ``horizon_multiple``); None for the fixed ``horizon``.
      horizon_multiple: sampled horizons are multiples of it (the truncation length).
      meta_loss: ``"log"``, ``"normalized"`` or ``"raw"`` (see `meta_train.objective`).
      meta_loss_split: ``"train_batch"`` (free), ``"train"`` or ``"test"`` (one extra
        ``eval_loss`` forward pass per step).
      max_ratio: clip of the loss relative to the run's initial loss.
      min_ratio: floor of the ``"log"`` meta-loss relative to the initial loss.
    """

    family: Any
    lopt: Any
    horizon: int
    meta_loss: str = "log"
    meta_loss_split: str = "train_batch"
    max_ratio: float = 10.0
    min_ratio: float = TINY_RATIO
    horizon_range: tuple[int, int] | None = None
    horizon_multiple: int = 1

    def __post_init__(self):
        if not isinstance(self.lopt, LearnedOptimizer):
            raise TypeError(
                f"lopt must be a LearnedOptimizer (a subclass of l2o.LearnedOptimizer); got "
                f"{type(self.lopt).__name__}. Build one with l2o.registry.get(name) or "
                "subclass l2o.LearnedOptimizer."
            )
        check_kind(self.meta_loss)
        if self.meta_loss_split not in META_LOSS_SPLITS:
            raise ValueError(
                f"unknown meta_loss_split {self.meta_loss_split!r}; expected one of "
                f"{META_LOSS_SPLITS}."
            )
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {self.horizon!r}.")
        if not self.max_ratio > 0:
            raise ValueError(f"max_ratio must be > 0, got {self.max_ratio!r}.")
        check_ratio_range(self.min_ratio, self.max_ratio)
        if self.horizon_range is not None:
            problem = horizon_range_error(self.horizon_range, self.horizon_multiple)
            if problem:
                raise ValueError(problem + ".")
            object.__setattr__(self, "horizon_range", tuple(self.horizon_range))

    # ---------------------------------------------------------------- protocol
    def init(self, key: jax.Array, theta: Any) -> InnerState:
        """A fresh run: new task config (and horizon, if sampled), fresh params and
        optimizer state, step 0."""
        k_cfg, k_init, k_data = jax.random.split(key, 3)
        cfg = self.family.sample(k_cfg)
        task = self.family.task(cfg)
        params = task.init(k_init)
        horizon = None
        if self.horizon_range is not None:
            horizon = sample_horizon(jax.random.fold_in(key, _HORIZON_SALT),
                                     *self.horizon_range, self.horizon_multiple)
        opt_state = self.lopt.init(theta, params, self.horizon if horizon is None else horizon)
        initial_loss = task.loss(params, jax.random.fold_in(k_data, 0))
        return InnerState(
            cfg=cfg, params=params, opt_state=opt_state, inner_step=jnp.int32(0),
            data_key=k_data, loss_scale=loss_scale(initial_loss), horizon=horizon,
        )

    def run_horizon(self, state: InnerState) -> Any:
        """The length of ``state``'s run: its sampled horizon, else the fixed one."""
        return self.horizon if state.horizon is None else state.horizon

    def unroll(
        self, theta: Any, state: InnerState, key: jax.Array, length: int
    ) -> tuple[InnerState, jax.Array, jax.Array]:
        """``length`` inner steps; ``(state, mean meta-loss f32[], reset bool[])``.

        The run restarts (from ``key``) at the end of the unroll if it reached its
        horizon (`run_horizon`); the estimators guarantee ``length`` divides the horizon
        (and sampled horizons are multiples of ``horizon_multiple``) and runs start at
        multiples of ``length``, so a run never crosses an unroll boundary.
        """

        def body(carry, _):
            carry, _, term = self.inner_step(theta, carry)
            return carry, term

        state, terms = jax.lax.scan(body, state, None, length=length)
        reset = state.inner_step >= self.run_horizon(state)
        fresh = self.init(key, theta)
        state = _where_tree(reset, fresh, state)
        return state, jnp.mean(terms), reset

    # ---------------------------------------------------------------- pieces
    def inner_step(
        self, theta: Any, state: InnerState
    ) -> tuple[InnerState, jax.Array, jax.Array]:
        """One optimizer step: ``(new state, minibatch loss before it, meta-loss term)``."""
        task = self.family.task(state.cfg)
        batch_key = jax.random.fold_in(state.data_key, state.inner_step)
        next_key = jax.random.fold_in(state.data_key, state.inner_step + 1)
        loss, grads = jax.value_and_grad(task.loss)(state.params, batch_key)
        if self.lopt.needs_next_loss_fn:
            updates, opt_state = self.lopt.update(
                theta, grads, state.opt_state, state.params, loss,
                next_loss_fn=lambda p: task.loss(p, next_key),
            )
        else:
            updates, opt_state = self.lopt.update(theta, grads, state.opt_state, state.params, loss)
        params = optax.apply_updates(state.params, updates)
        if self.meta_loss_split == "train_batch":
            tracked = loss
        else:
            eval_key = jax.random.fold_in(batch_key, 1)
            tracked = task.eval_loss(params, eval_key, self.meta_loss_split)
        term = meta_loss_term(tracked, state.loss_scale, self.meta_loss, self.max_ratio,
                              self.min_ratio)
        new_state = state.replace(params=params, opt_state=opt_state,
                                  inner_step=state.inner_step + 1)
        return new_state, loss, term
