"""The particle axis of the PES outer step split over devices: `jax.sharding`, theta replicated.

The estimators keep every per-particle array with the particle axis leading: evosax's
``pert_accum`` / ``pert`` as f32[N, D] and the counter as i32[N, 1] with
``N = 2 * num_tasks * num_pairs`` laid out sign-major (``[+eps; -eps]``, each half
``(num_tasks, num_pairs)`` row-major), and system states as ``(2, num_tasks, num_pairs, ...)``.
`particle_mesh` arranges ``d`` devices as a 3-d mesh ``("sign", "tasks", "pairs")`` of
shape ``(s, d_t, d_p)`` (`mesh_shape`); system leaves are split along their first three
axes by those mesh axes and the ``(N, ...)`` leaves along axis 0 by all three jointly.
``N`` is the row-major flattening of ``(2, num_tasks, num_pairs)``, and the mesh splits
the sign first, then tasks, then pairs, so both splits give each device the *same*
particles: the unrolls run without communication and the gradient
``1/(N sigma^2) sum_i f_i xi_i`` (a sum over the particle axis) becomes an all-reduce of
a D-vector, inserted by XLA. Theta, the outer optimizer state and the keys are replicated.

    mesh = particle_mesh(num_tasks=8, num_pairs=8)          # all devices, or devices=[...]
    sharded = ShardedEstimator(estimator, mesh)              # same interface as the estimator
    state = sharded.init(key, theta); state, metrics = sharded.step(state)
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from meta_train.truncation import divisors

MESH_AXES: tuple[str, str, str] = ("sign", "tasks", "pairs")


def valid_device_counts(num_tasks: int, num_pairs: int) -> list[int]:
    """Device counts that split the particle layout without communication: 1, 2 (the
    antithetic sign), ``2 * d_t`` for ``d_t | num_tasks``, ``2 * num_tasks * d_p`` for
    ``d_p | num_pairs`` (see `mesh_shape`)."""
    counts = {1, 2} | {2 * t for t in divisors(num_tasks)}
    counts |= {2 * num_tasks * p for p in divisors(num_pairs)}
    return sorted(counts)


def mesh_shape(num_devices: int, num_tasks: int, num_pairs: int) -> tuple[int, int, int]:
    """``(s, d_t, d_p)``: how ``num_devices`` split the axes ``(2, num_tasks, num_pairs)``.

    The particle axis is their row-major flattening, so a contiguous split of it matches
    the split of the three axes only when a leading axis is split completely before the
    next one is split at all: the sign first (``s = 2``), then tasks, then pairs.

    Raises:
      ValueError: ``num_devices`` is not in `valid_device_counts`.
    """
    valid = valid_device_counts(num_tasks, num_pairs)
    if isinstance(num_devices, bool) or num_devices not in valid:
        raise ValueError(
            f"cannot split {2 * num_tasks * num_pairs} particles (2 signs x {num_tasks} tasks x "
            f"{num_pairs} pairs) over {num_devices!r} devices; valid device counts for this "
            f"layout: {valid}. Change num_devices, or num_tasks/num_pairs (powers of two fit "
            "power-of-two device counts)."
        )
    if num_devices == 1:
        return 1, 1, 1
    half = num_devices // 2
    if num_tasks % half == 0:
        return 2, half, 1
    return 2, num_tasks, half // num_tasks


def resolve_num_devices(requested: int, num_tasks: int, num_pairs: int,
                        available: int | None = None) -> int:
    """Devices to shard over: ``requested`` if > 0 (validated), else (auto) the largest of
    `valid_device_counts` that is ``<= available`` (default ``jax.device_count()``).

    Raises:
      ValueError: ``requested`` exceeds ``available`` or does not fit the layout.
    """
    available = jax.device_count() if available is None else available
    if requested > available:
        raise ValueError(
            f"num_devices={requested} but only {available} device(s) are visible; use "
            f"num_devices<={available} or 0 (auto)."
        )
    if requested > 0:
        mesh_shape(requested, num_tasks, num_pairs)
        return requested
    return max(d for d in valid_device_counts(num_tasks, num_pairs) if d <= available)


def particle_mesh(num_tasks: int, num_pairs: int, devices: list | None = None) -> Mesh:
    """The ``("sign", "tasks", "pairs")`` mesh over ``devices`` (default ``jax.devices()``,
    i.e. every device of every process), shaped by `mesh_shape`."""
    devices = jax.devices() if devices is None else list(devices)
    shape = mesh_shape(len(devices), num_tasks, num_pairs)
    return Mesh(np.asarray(devices, dtype=object).reshape(shape), MESH_AXES)


def _check_mesh(mesh: Mesh, num_tasks: int, num_pairs: int) -> None:
    if tuple(mesh.axis_names) != MESH_AXES:
        raise ValueError(f"expected a mesh with axes {MESH_AXES} (see particle_mesh), got "
                         f"{tuple(mesh.axis_names)}.")
    sign, tasks, pairs = (mesh.shape[a] for a in MESH_AXES)
    if 2 % sign or num_tasks % tasks or num_pairs % pairs:
        raise ValueError(
            f"mesh shape {(sign, tasks, pairs)} does not split the layout (2, {num_tasks}, "
            f"{num_pairs}); build it with particle_mesh(num_tasks, num_pairs)."
        )


def state_shardings(state: Any, mesh: Mesh, num_tasks: int, num_pairs: int) -> Any:
    """A pytree of `NamedSharding` matching ``state`` (an `EstimatorState`, concrete or
    abstract): ``(N, ...)`` evosax leaves split on axis 0 over all mesh axes, system leaves
    ``(2, num_tasks, num_pairs, ...)`` split on their first three axes, the rest replicated."""
    _check_mesh(mesh, num_tasks, num_pairs)
    num_particles = 2 * num_tasks * num_pairs
    replicated = NamedSharding(mesh, PartitionSpec())
    particles = NamedSharding(mesh, PartitionSpec(MESH_AXES))
    systems = NamedSharding(mesh, PartitionSpec(*MESH_AXES))

    def es_leaf(x):
        shape = np.shape(x) if not hasattr(x, "shape") else x.shape
        return particles if len(shape) >= 2 and shape[0] == num_particles else replicated

    return state.replace(
        es_state=jax.tree.map(es_leaf, state.es_state),
        system_state=jax.tree.map(lambda _: systems, state.system_state),
        key=replicated,
        step=replicated,
    )


def shard_state(state: Any, mesh: Mesh, num_tasks: int, num_pairs: int) -> Any:
    """``jax.device_put`` of ``state`` onto `state_shardings` (works across processes when
    every process passes the same host values)."""
    return jax.device_put(state, state_shardings(state, mesh, num_tasks, num_pairs))


class ShardedEstimator:
    """An `ESGradientEstimator` whose init and outer step run SPMD over ``mesh``.

    Same interface as the estimator it wraps (``init``, ``step``, ``theta``); states are
    global arrays with `state_shardings`, metrics are replicated. The jitted functions are
    cached per ``(estimator, mesh)``, so equal estimators share one compilation.
    """

    def __init__(self, estimator: Any, mesh: Mesh):
        _check_mesh(mesh, estimator.num_tasks, estimator.num_pairs)
        self.estimator, self.mesh = estimator, mesh

    @staticmethod
    def abstract_shardings(estimator: Any, mesh: Mesh) -> Any:
        """`state_shardings` of ``estimator``'s state, from its abstract shape."""
        abstract = jax.eval_shape(estimator._init, jax.random.PRNGKey(0), estimator.es.solution)
        return state_shardings(abstract, mesh, estimator.num_tasks, estimator.num_pairs)

    @property
    def num_devices(self) -> int:
        """Devices in the mesh."""
        return self.mesh.size

    def shardings(self) -> Any:
        """`state_shardings` of this estimator's state (from its abstract shape)."""
        return _cached_shardings(type(self).abstract_shardings, self.estimator, self.mesh)

    def init(self, key: jax.Array, theta: Any) -> Any:
        """`ESGradientEstimator.init`, output placed with `shardings` (one SPMD program).
        ``key`` and ``theta`` must be equal on every process."""
        replicated = NamedSharding(self.mesh, PartitionSpec())
        key, theta = jax.device_put((key, theta), replicated)
        return self._compiled()[0](key, theta)

    def step(self, state: Any) -> tuple[Any, dict]:
        """One outer step over the mesh: ``(state, metrics)``, the state keeping its shardings."""
        return self._compiled()[1](state)

    def place(self, state: Any) -> Any:
        """Put a host (e.g. restored) state onto the mesh with `shardings`."""
        return jax.device_put(state, self.shardings())

    def theta(self, state: Any) -> Any:
        """Current meta-parameters as a pytree of local arrays (theta is replicated, so
        each process reads its own copy; no communication)."""
        mean = state.es_state.mean
        local = np.asarray(mean.addressable_data(0))
        unravel = ravel_pytree(self.estimator.es.solution)[1]
        return unravel(jax.numpy.asarray(local))

    def _compiled(self):
        """The jitted ``(init, step)`` pair, cached per ``(estimator, mesh)``."""
        return _sharded_fns(type(self).abstract_shardings, self.estimator, self.mesh)


@functools.lru_cache(maxsize=16)
def _cached_shardings(abstract_shardings: Any, estimator: Any, mesh: Mesh) -> Any:
    return abstract_shardings(estimator, mesh)


@functools.lru_cache(maxsize=16)
def _sharded_fns(abstract_shardings: Any, estimator: Any, mesh: Mesh):
    shardings = _cached_shardings(abstract_shardings, estimator, mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    init = jax.jit(estimator._init, out_shardings=shardings)

    def step(state):
        new_state, metrics, _ = estimator._step(state)
        return new_state, metrics

    step = jax.jit(step, in_shardings=(shardings,), out_shardings=(shardings, replicated))
    return init, step
