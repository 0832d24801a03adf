"""Mixture meta-training: one outer step over several gradient estimators at once.

A task family fixes its parameter shapes, so particles of different families cannot share
one ``vmap``. A mixture is therefore a tuple of `ESGradientEstimator` *groups*, one per
family, each with its own particles, persistent inner states, perturbation accumulators
and PRNG key, vmapped within the group. One outer step runs every group's step on the
same ``theta``, combines their estimates with normalised weights ``w_k`` (``sum w_k = 1``)

    g = sum_k w_k g_k,        g_k = 1/(N_k sigma^2) sum_i xi_ki L_ki(theta + eps_ki)

and applies ``g`` with one outer optimizer. The whole step (every group's ask, unrolls and
estimate, the weighted sum, the update) is one ``jax.jit``.

Each group keeps theta as its evosax ``mean``; the groups' own outer updates are discarded
and every mean is overwritten with the mixture's updated theta, so groups are best built
with ``outer_optimizer=NO_OUTER_UPDATE`` (`group_estimator` does), which keeps no
optimizer state. Group 0 is initialised with the mixture's ``key`` itself and group ``k > 0``
with ``jax.random.fold_in(key, k)`` (`group_keys`), so a group run alone with that key
draws exactly the particles it draws inside the mixture, and a one-entry mixture draws
those of the single-family run.

    groups = [group_estimator(system_a, theta, ...), group_estimator(system_b, theta, ...)]
    mixture = MixtureEstimator(groups, weights=[2.0, 1.0], outer_lr=3e-3)
    state = mixture.init(key, theta); state, metrics = mixture.step(state)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from meta_train.pes import (ESGradientEstimator, default_outer_optimizer, jit_init,
                             jit_step, jit_step_and_gradient)

# The outer transform of a group: its update is discarded, so it keeps no state. One
# object, so that groups built from equal settings compare equal (one compilation).
NO_OUTER_UPDATE: optax.GradientTransformation = optax.set_to_zero()


@struct.dataclass
class MixtureState:
    """Everything a mixture's outer step reads and writes (a pytree; checkpoint it whole).

    Attributes:
      groups: one `EstimatorState` per group; every ``es_state.mean`` is the current theta.
      outer_state: state of the mixture's outer optimizer.
      step: number of outer steps taken (i32[]).
    """

    groups: tuple
    outer_state: Any
    step: jax.Array


def group_estimator(system: Any, theta_template: Any, **kwargs: Any) -> ESGradientEstimator:
    """An `ESGradientEstimator` for one mixture group (outer update `NO_OUTER_UPDATE`).

    ``kwargs`` are `ESGradientEstimator`'s (strategy, sigma, num_tasks, ...); the outer
    learning rate and clip belong to the `MixtureEstimator`.
    """
    return ESGradientEstimator(system, theta_template, outer_optimizer=NO_OUTER_UPDATE, **kwargs)


def group_keys(key: jax.Array, num_groups: int) -> list[jax.Array]:
    """The init key of each group: ``key`` for group 0, ``fold_in(key, k)`` for group k."""
    return [key] + [jax.random.fold_in(key, k) for k in range(1, num_groups)]


def normalized_weights(weights: Sequence[float], num_groups: int) -> tuple[float, ...]:
    """``weights / sum(weights)``; raises `ValueError` unless there is one finite
    positive weight per group."""
    weights = list(weights)
    if len(weights) != num_groups:
        raise ValueError(f"need one weight per group: {num_groups} group(s), "
                         f"{len(weights)} weight(s) {weights}.")
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (
                math.isfinite(w) and w > 0):
            raise ValueError(f"weight {i} must be a finite number > 0, got {w!r}.")
    total = float(sum(weights))
    return tuple(float(w) / total for w in weights)


class MixtureEstimator:
    """Weighted combination of `ESGradientEstimator` groups applied by one outer update.

    Args:
      estimators: the groups (at least one); they must share theta's structure and
        shapes. Sharding (`ShardedMixture`) needs equal ``num_tasks`` and ``num_pairs``.
      weights: one positive weight per group (normalised to sum 1).
      outer_lr / outer_clip: settings of `default_outer_optimizer`, used unless
        ``outer_optimizer`` is given.
      labels: names of the groups for metrics (default ``"0"``, ``"1"``, ...).

    Same interface as `ESGradientEstimator`: `init`, `step`, `step_and_gradient`, `theta`.
    """

    def __init__(
        self,
        estimators: Sequence[ESGradientEstimator],
        weights: Sequence[float],
        *,
        outer_lr: float = 3e-3,
        outer_clip: float = 1.0,
        outer_optimizer: optax.GradientTransformation | None = None,
        labels: Sequence[str] | None = None,
    ):
        estimators = tuple(estimators)
        if not estimators:
            raise ValueError("a mixture needs at least one group estimator, got none.")
        for i, est in enumerate(estimators):
            if not isinstance(est, ESGradientEstimator):
                raise TypeError(f"group {i} must be an ESGradientEstimator, got "
                                f"{type(est).__name__}.")
        first = estimators[0]
        for i, est in enumerate(estimators[1:], start=1):
            if _signature(est.es.solution) != _signature(first.es.solution):
                raise ValueError(
                    f"group {i} has meta-parameters of another structure or shape than "
                    "group 0; every group must train the same theta.")
        self.estimators = estimators
        self.weights = normalized_weights(weights, len(estimators))
        self.labels = tuple(str(i) for i in range(len(estimators))) if labels is None else (
            tuple(labels))
        if len(self.labels) != len(estimators):
            raise ValueError(f"need one label per group, got {list(self.labels)}.")
        self.optimizer = outer_optimizer or default_outer_optimizer(outer_lr, outer_clip)
        self.num_tasks = first.num_tasks
        self.num_pairs = first.num_pairs
        self.num_particles = sum(est.num_particles for est in estimators)
        self._identity = (
            estimators, self.weights, self.labels,
            outer_optimizer if outer_optimizer is not None else (outer_lr, outer_clip),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MixtureEstimator) and self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    # ------------------------------------------------------------------ interface
    def init(self, key: jax.Array, theta: Any) -> MixtureState:
        """Fresh `MixtureState`: group k is ``estimators[k].init(group_keys(key, K)[k], theta)``."""
        return jit_init(self, key, theta)

    def step(self, state: MixtureState) -> tuple[MixtureState, dict]:
        """One outer step (jitted): ``(state, metrics)``.

        Metrics: the weighted mean over groups of ``meta_loss`` and
        ``meta_loss_finite_mean``, the sums of ``num_nonfinite`` and ``num_resets``,
        ``grad_norm`` of the combined estimate, ``update_norm``, ``theta_norm``, and per
        group ``meta_loss/LABEL``.
        """
        return jit_step(self, state)

    def step_and_gradient(self, state: MixtureState) -> tuple[MixtureState, dict, jax.Array]:
        """`step` that also returns the combined flat gradient estimate f32[D] it applied."""
        return jit_step_and_gradient(self, state)

    def theta(self, state: MixtureState) -> Any:
        """Current meta-parameters (unravelled pytree)."""
        return self.estimators[0].theta(state.groups[0])

    # ------------------------------------------------------------------ pieces
    def _init(self, key: jax.Array, theta: Any) -> MixtureState:
        keys = group_keys(key, len(self.estimators))
        groups = tuple(est._init(k, theta) for est, k in zip(self.estimators, keys))
        outer_state = self.optimizer.init(groups[0].es_state.mean)
        return _strong(MixtureState(groups=groups, outer_state=outer_state, step=jnp.int32(0)))

    def _step(self, state: MixtureState) -> tuple[MixtureState, dict, jax.Array]:
        theta_flat = state.groups[0].es_state.mean
        groups, grads, group_metrics = [], [], []
        for est, group in zip(self.estimators, state.groups):
            group, metrics, grad = est._step(group)
            groups.append(group)
            grads.append(grad)
            group_metrics.append(metrics)
        grad = sum(w * g for w, g in zip(self.weights, grads))
        updates, outer_state = self.optimizer.update(grad, state.outer_state, theta_flat)
        new_theta = optax.apply_updates(theta_flat, updates)
        groups = tuple(g.replace(es_state=g.es_state.replace(mean=new_theta)) for g in groups)
        metrics = self._metrics(group_metrics, grad, theta_flat, new_theta)
        new_state = _strong(MixtureState(groups=groups, outer_state=outer_state,
                                         step=state.step + 1))
        return new_state, metrics, grad

    def _metrics(self, group_metrics: list[dict], grad: jax.Array, theta: jax.Array,
                 new_theta: jax.Array) -> dict:
        def weighted(name):
            return sum(w * m[name] for w, m in zip(self.weights, group_metrics))

        def total(name):
            return sum(m[name] for m in group_metrics)

        metrics = {
            "meta_loss": weighted("meta_loss"),
            "meta_loss_finite_mean": weighted("meta_loss_finite_mean"),
            "num_nonfinite": total("num_nonfinite"),
            "num_resets": total("num_resets"),
            "grad_norm": jnp.linalg.norm(grad),
            "update_norm": jnp.linalg.norm(new_theta - theta),
            "theta_norm": jnp.linalg.norm(new_theta),
        }
        for label, m in zip(self.labels, group_metrics):
            metrics[f"meta_loss/{label}"] = m["meta_loss"]
        return metrics


def _strong(tree: Any) -> Any:
    """Every leaf cast to its own dtype without weak typing (init and step then return
    the same abstract types, so the step compiles once)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def _signature(theta: Any) -> tuple:
    """Tree structure, shapes and dtypes of ``theta``."""
    shapes = jax.tree.map(lambda x: (tuple(jnp.shape(x)), str(jnp.result_type(x))), theta)
    return jax.tree.structure(theta), tuple(jax.tree.leaves(shapes))
