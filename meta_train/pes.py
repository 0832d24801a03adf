"""Evolution-strategies gradient estimators for unrolled systems: PES, truncated ES, NRES.

All three share one outer step: perturb ``theta`` for every particle, unroll each
particle's system ``trunc_length`` steps, and estimate the gradient of the meta-loss

    g = 1/(N sigma^2) * sum_i xi_i * L_i(theta + eps_i)          (N particles)

with antithetic pairs ``(+eps, -eps)``. Only ``xi`` differs:

* ``"pes"``  (Vicol et al. 2021): ``xi_i += eps_i`` every truncation, reset to 0 when
  particle i's inner run restarts -- unbiased for the full-horizon loss;
* ``"tes"``  (truncated ES): ``xi_i = eps_i`` -- biased toward short horizons;
* ``"nres"`` (Li et al. 2023): one ``eps_i`` reused for a whole inner run, ``xi_i = eps_i``.

Built on evosax 0.3.2: `evosax.algorithms.PersistentES` (pes, tes) and `NoiseReuseES`
(nres) do the antithetic sampling (`ask`), the estimate, the optax outer update, the
fitness shaping and the reset of accumulators (`tell`). What they lack, and how this
module extends them without copying them:

* evosax keeps one scalar ``inner_step_counter`` shared by all particles, so every
  particle resets at once (no staggered truncations, no per-task resets). Its reset logic
  is written with ``jnp.where``, so we store a per-particle counter of shape ``(N, 1)``
  and drive it from the system's own ``reset`` flags with ``Params(T=2, K=1)``: a particle
  whose run restarted gets counter 1 before `tell` (1 + K >= T: its accumulator is zeroed,
  and NRES samples fresh noise at the next `ask`), every other particle gets 0 (kept).
  Truncated ES sets every counter to 1 (reset after every truncation: ``xi = eps``).
* evosax has no notion of tasks. Particles are laid out as evosax's antithetic population
  ``[+eps; -eps]``, each half reshaped to ``(num_tasks, num_pairs)``; a task's pairs get
  the same system key, so both members of a pair see the same data and reset together.
  Tasks start at staggered inner steps (task t at ``round(t * H / num_tasks)`` rounded to
  a multiple of the truncation) by unrolling them with the unperturbed ``theta`` at init,
  so resets spread over outer steps.
* one NaN fitness would poison evosax's mean forever. Fitness is clipped and non-finite
  values are replaced by a penalty before `tell` (and counted); the default outer optimizer
  also zeroes non-finite gradients and clips the global norm.

The whole outer step (ask, ``2 * num_tasks * num_pairs`` unrolls of ``trunc_length`` steps,
tell) is one ``jax.jit``. On one CPU device the particles are unrolled in groups of
``particle_batch`` (``lax.map`` over vmapped groups; `CPU_PARTICLE_BATCH` by default): with
all 128 particles of the default layout in one vmap, every per-coordinate intermediate of
the learned optimizer (e.g. (128, 32, n) activations) streams through memory, while a
group's fit in cache (``benchmarks/engine.py``). The estimate does not depend on the
grouping. Particles are a leading axis everywhere and the estimate is a
mean over it, so that axis can be sharded over devices while ``theta`` stays replicated.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from evosax.algorithms import NoiseReuseES, PersistentES
from evosax.core import fitness_shaping
from flax import struct

from meta_train.objective import sanitize
from meta_train.system import check_system
from meta_train.truncation import check_trunc_length

STRATEGIES: tuple[str, ...] = ("pes", "tes", "nres")
# Particles unrolled together on one CPU device (see `ESGradientEstimator`'s particle_batch).
CPU_PARTICLE_BATCH = 8
FITNESS_SHAPINGS: dict[str, Callable] = {
    "identity": fitness_shaping.identity_fitness_shaping_fn,
    "standardize": fitness_shaping.standardize_fitness_shaping_fn,
    "centered_rank": fitness_shaping.centered_rank_fitness_shaping_fn,
}


@struct.dataclass
class EstimatorState:
    """Everything an outer step reads and writes (a pytree; checkpoint it whole).

    Attributes:
      es_state: evosax state: ``mean`` (flat theta, f32[D]), outer optimizer state,
        ``pert_accum`` / ``pert`` (f32[N, D]) and the per-particle counter (i32[N, 1]).
      system_state: the systems' states, leading axes ``(2, num_tasks, num_pairs)``.
      key: PRNG key of the next outer step.
      step: number of outer steps taken (i32[]).
    """

    es_state: Any
    system_state: Any
    key: jax.Array
    step: jax.Array


def default_outer_optimizer(learning_rate: float, clip_norm: float) -> optax.GradientTransformation:
    """``zero_nans -> clip_by_global_norm(clip_norm) -> adam(learning_rate)``."""
    return optax.chain(
        optax.zero_nans(), optax.clip_by_global_norm(clip_norm), optax.adam(learning_rate)
    )


def stagger_offsets(num_tasks: int, horizon: int, trunc_length: int) -> list[int]:
    """Starting inner step of each task: ``round(t * H / num_tasks)`` in multiples of K.

    Offsets lie in ``[0, H)`` and are multiples of ``trunc_length``; with ``num_tasks``
    equal to ``H / K`` every truncation index is covered exactly once.
    """
    num_truncs = horizon // trunc_length
    return [(round(t * num_truncs / num_tasks) % num_truncs) * trunc_length for t in range(num_tasks)]


class ESGradientEstimator:
    """PES / truncated ES / NRES over ``num_tasks x num_pairs`` antithetic pairs.

    Args:
      system: an `UnrolledSystem`.
      theta_template: a pytree with the shapes of ``theta`` (values unused).
      strategy: ``"pes"``, ``"tes"`` or ``"nres"``.
      sigma: perturbation standard deviation in theta-space.
      num_tasks, num_pairs: batch layout; ``N = 2 * num_tasks * num_pairs`` particles.
      trunc_length: ``K``, inner steps per outer step.
      horizon: ``H``, the system's inner run length (for staggering); a multiple of K.
      outer_optimizer: optax transform on the flat gradient; default
        `default_outer_optimizer(outer_lr, outer_clip)`.
      fitness_shaping_fn: a key of `FITNESS_SHAPINGS` ("identity" keeps PES unbiased).
      fitness_clip: meta-losses are clipped to ``[-fitness_clip, fitness_clip]``.
      nan_fitness: penalty replacing a non-finite meta-loss (default ``fitness_clip``).
      stagger: start tasks at staggered inner steps (else all at step 0).
      particle_batch: particles unrolled together. ``None``: `CPU_PARTICLE_BATCH` on a
        single CPU device, else all of them (one vmap). A smaller batch runs the particles
        group by group (``lax.map``), so each group's per-coordinate activations stay in
        the CPU cache; ``0`` means all at once. The estimate does not depend on it.
    """

    def __init__(
        self,
        system: Any,
        theta_template: Any,
        *,
        strategy: str = "pes",
        sigma: float = 0.01,
        num_tasks: int = 8,
        num_pairs: int = 8,
        trunc_length: int = 20,
        horizon: int = 200,
        outer_lr: float = 3e-3,
        outer_clip: float = 1.0,
        outer_optimizer: optax.GradientTransformation | None = None,
        fitness_shaping_fn: str = "identity",
        fitness_clip: float = 1e4,
        nan_fitness: float | None = None,
        stagger: bool = True,
        particle_batch: int | None = None,
    ):
        check_system(system)
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}.")
        if fitness_shaping_fn not in FITNESS_SHAPINGS:
            raise ValueError(
                f"unknown fitness shaping {fitness_shaping_fn!r}; "
                f"expected one of {sorted(FITNESS_SHAPINGS)}."
            )
        for name, value in (("num_tasks", num_tasks), ("num_pairs", num_pairs),
                            ("trunc_length", trunc_length), ("horizon", horizon)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        check_trunc_length(horizon, trunc_length)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}.")
        if particle_batch is not None and (not isinstance(particle_batch, int) or particle_batch < 0):
            raise ValueError(
                f"particle_batch must be None or an int >= 0 (0: all particles at once), got "
                f"{particle_batch!r}.")
        self.system = system
        self.strategy = strategy
        self.sigma = float(sigma)
        self.num_tasks, self.num_pairs = num_tasks, num_pairs
        self.trunc_length, self.horizon = trunc_length, horizon
        self.num_particles = 2 * num_tasks * num_pairs
        self.particle_batch = _resolve_particle_batch(particle_batch, self.num_particles)
        self.fitness_clip = float(fitness_clip)
        self.nan_fitness = float(fitness_clip if nan_fitness is None else nan_fitness)
        self.offsets = (
            stagger_offsets(num_tasks, horizon, trunc_length) if stagger else [0] * num_tasks
        )
        optimizer = outer_optimizer or default_outer_optimizer(outer_lr, outer_clip)
        algorithm = NoiseReuseES if strategy == "nres" else PersistentES
        self.es = algorithm(
            population_size=self.num_particles,
            solution=theta_template,
            optimizer=optimizer,
            std_schedule=optax.constant_schedule(self.sigma),
            fitness_shaping_fn=FITNESS_SHAPINGS[fitness_shaping_fn],
        )
        # Two-state counter machine, see the module docstring.
        self.es_params = self.es.default_params.replace(T=2, K=1)
        shapes = jax.tree.map(lambda x: (tuple(jnp.shape(x)), str(jnp.result_type(x))),
                              theta_template)
        self._identity = (
            system, strategy, self.sigma, num_tasks, num_pairs, trunc_length, horizon,
            outer_optimizer if outer_optimizer is not None else (outer_lr, outer_clip),
            fitness_shaping_fn, self.fitness_clip, self.nan_fitness, tuple(self.offsets),
            self.particle_batch,
            jax.tree.structure(theta_template), tuple(jax.tree.leaves(shapes)),
        )

    # Estimators built from equal settings compare equal, so the module-level jitted
    # functions below reuse one compilation across instances (e.g. a resumed run).
    def __eq__(self, other: object) -> bool:
        return isinstance(other, ESGradientEstimator) and self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    def init(self, key: jax.Array, theta: Any) -> EstimatorState:
        """Fresh `EstimatorState` for meta-parameters ``theta`` (jitted).

        Draws ``num_tasks`` systems with ``system.init``, advances task t by its
        `stagger_offsets` with the unperturbed ``theta``, and copies it to the task's
        ``2 * num_pairs`` particles (accumulators start at zero).
        """
        return jit_init(self, key, theta)

    def step(self, state: EstimatorState) -> tuple[EstimatorState, dict]:
        """One outer step (jitted): ``(state, metrics)``, metrics a dict of scalars.

        Metrics: ``meta_loss`` (mean sanitised meta-loss over particles),
        ``meta_loss_finite_mean``, ``num_nonfinite`` (particles whose meta-loss was NaN/inf),
        ``num_resets``, ``grad_norm``, ``update_norm``, ``theta_norm``.
        """
        return jit_step(self, state)

    def step_and_gradient(self, state: EstimatorState) -> tuple[EstimatorState, dict, jax.Array]:
        """`step` that also returns the flat gradient estimate f32[D] it applied."""
        return jit_step_and_gradient(self, state)

    # ------------------------------------------------------------------ init
    def _init(self, key: jax.Array, theta: Any) -> EstimatorState:
        k_es, k_sys, k_stagger, k_next = jax.random.split(key, 4)
        es_state = self.es.init(k_es, theta, self.es_params)
        es_state = es_state.replace(
            inner_step_counter=jnp.zeros((self.num_particles, 1), jnp.int32)
        )
        task_keys = jax.random.split(k_sys, self.num_tasks)
        states = jax.vmap(self.system.init, in_axes=(0, None))(task_keys, theta)
        states = self._stagger(theta, states, k_stagger)
        shape = (2, self.num_tasks, self.num_pairs)
        system_state = jax.tree.map(
            lambda x: jnp.broadcast_to(x[None, :, None], shape + x.shape[1:]), states
        )
        state = EstimatorState(es_state=es_state, system_state=system_state, key=k_next,
                               step=jnp.int32(0))
        return _strong(state)

    def _stagger(self, theta: Any, states: Any, key: jax.Array) -> Any:
        """Advance task t by ``offsets[t] / K`` unperturbed truncations."""
        truncs = jnp.asarray([o // self.trunc_length for o in self.offsets], jnp.int32)
        max_truncs = max(self.offsets) // self.trunc_length
        unroll = jax.vmap(
            lambda s, k: self.system.unroll(theta, s, k, self.trunc_length)[0], in_axes=(0, 0)
        )

        def body(r, states):
            keys = jax.random.split(jax.random.fold_in(key, r), self.num_tasks)
            advanced = unroll(states, keys)
            keep = r < truncs
            return jax.tree.map(
                lambda new, old: jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
                advanced, states,
            )

        return jax.lax.fori_loop(0, max_truncs, body, states)

    # ------------------------------------------------------------------ step
    def _unroll_particles(self, population: Any, system_state: Any, key: jax.Array):
        """Unroll every particle: leaves of ``population`` have leading axis N."""
        shape = (2, self.num_tasks, self.num_pairs)
        thetas = jax.tree.map(lambda x: x.reshape(shape + x.shape[1:]), population)
        task_keys = jax.random.split(key, self.num_tasks)
        unroll = functools.partial(_unroll_one, self.system, self.trunc_length)
        if self.particle_batch:
            # Group by group: a task's key goes to each of its particles.
            keys = jnp.broadcast_to(task_keys[None, :, None], shape + task_keys.shape[1:])
            flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[3:]),
                                (thetas, system_state, keys))
            out = jax.lax.map(lambda args: unroll(*args), flat, batch_size=self.particle_batch)
            return jax.tree.map(lambda x: x.reshape(shape + x.shape[1:]), out)
        per_pair = jax.vmap(unroll, in_axes=(0, 0, None))
        per_task = jax.vmap(per_pair, in_axes=(0, 0, 0))
        per_sign = jax.vmap(per_task, in_axes=(0, 0, None))
        return per_sign(thetas, system_state, task_keys)

    def _step(self, state: EstimatorState) -> tuple[EstimatorState, dict, jax.Array]:
        """One outer step: ``(state, metrics, flat gradient estimate f32[D])``."""
        key, k_ask, k_unroll, k_tell = jax.random.split(state.key, 4)
        es_state = state.es_state
        population, es_state = self.es.ask(k_ask, es_state, self.es_params)
        system_state, losses, resets = self._unroll_particles(
            population, state.system_state, k_unroll
        )
        losses, resets = losses.reshape(-1), resets.reshape(-1)
        fitness, num_nonfinite = sanitize(losses, self.fitness_clip, self.nan_fitness)
        if self.strategy == "tes":
            restart = jnp.ones_like(resets)
        else:
            restart = resets
        es_state = es_state.replace(inner_step_counter=restart.astype(jnp.int32)[:, None])
        grad = self._gradient(population, fitness, es_state)
        es_state, _ = self.es.tell(k_tell, population, fitness, es_state, self.es_params)
        theta_flat = es_state.mean
        metrics = {
            "meta_loss": jnp.mean(fitness),
            "meta_loss_finite_mean": jnp.sum(jnp.where(jnp.isfinite(losses), losses, 0.0))
            / jnp.maximum(1, losses.size - num_nonfinite),
            "num_nonfinite": num_nonfinite,
            "num_resets": jnp.sum(resets).astype(jnp.int32),
            "grad_norm": jnp.linalg.norm(grad),
            "update_norm": jnp.linalg.norm(theta_flat - state.es_state.mean),
            "theta_norm": jnp.linalg.norm(theta_flat),
        }
        new_state = _strong(EstimatorState(es_state=es_state, system_state=system_state,
                                           key=key, step=state.step + 1))
        return new_state, metrics, grad

    def _gradient(self, population: Any, fitness: jax.Array, es_state: Any) -> jax.Array:
        """``1/(N sigma^2) sum_i shaped(f)_i xi_i`` -- the same estimate evosax's `tell` uses."""
        flat = jax.vmap(lambda solution: ravel_pytree(solution)[0])(population)
        shaped = self.es.fitness_shaping_fn(flat, fitness, es_state, self.es_params)
        xi = es_state.pert if self.strategy == "nres" else es_state.pert_accum
        return shaped @ xi / (self.sigma**2 * self.num_particles)

    # ------------------------------------------------------------------ views
    def theta(self, state: EstimatorState) -> Any:
        """Current meta-parameters (unravelled pytree)."""
        return self.es.get_mean(state.es_state)

    def perturbations(self, state: EstimatorState) -> jax.Array:
        """``xi`` per particle, f32[2, num_tasks, num_pairs, D] (accumulated for PES)."""
        xi = state.es_state.pert if self.strategy == "nres" else state.es_state.pert_accum
        return xi.reshape((2, self.num_tasks, self.num_pairs, -1))


# Jitted entry points of every estimator with ``_init(key, theta)`` and ``_step(state)``
# (`ESGradientEstimator`, `meta_train.mixture.MixtureEstimator`); the estimator is static.
@functools.partial(jax.jit, static_argnums=0)
def jit_init(estimator: Any, key: jax.Array, theta: Any) -> Any:
    return estimator._init(key, theta)


@functools.partial(jax.jit, static_argnums=0)
def jit_step(estimator: Any, state: Any):
    new_state, metrics, _ = estimator._step(state)
    return new_state, metrics


@functools.partial(jax.jit, static_argnums=0)
def jit_step_and_gradient(estimator: Any, state: Any):
    return estimator._step(state)


def _resolve_particle_batch(particle_batch: int | None, num_particles: int) -> int:
    """Particles per group of the unroll (0: all at once); see `ESGradientEstimator`."""
    if particle_batch is None:
        single_cpu = jax.default_backend() == "cpu" and jax.device_count() == 1
        particle_batch = CPU_PARTICLE_BATCH if single_cpu else 0
    return 0 if particle_batch >= num_particles else particle_batch


def _strong(tree: Any) -> Any:
    """Cast every leaf to its own dtype without weak typing.

    evosax produces some fields as Python scalars (weakly typed); making `init` and `step`
    return identical abstract types means `step` compiles exactly once.
    """
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def _unroll_one(system: Any, length: int, theta: Any, state: Any, key: jax.Array):
    """``system.unroll`` with a static length, outputs cast to ``(state, f32, bool)``."""
    state, loss, reset = system.unroll(theta, state, key, length)
    return state, jnp.asarray(loss, jnp.float32), jnp.asarray(reset, bool)
