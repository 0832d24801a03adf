"""Placing an `EstimatorState` on several devices: particles sharded, theta replicated.

The estimators keep every per-particle array with the particle axis leading (evosax's
``pert_accum`` / ``pert`` as ``(N, D)``, system states as ``(2, num_tasks, num_pairs, ...)``)
and compute the gradient as a mean over that axis. Sharding those arrays over a 1-d device
mesh and replicating the rest (theta, outer optimizer state, keys) lets XLA's SPMD
partitioner run the unrolls in parallel and all-reduce only the ``D``-sized estimate.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def particle_mesh(devices: list | None = None, axis_name: str = "particles") -> Mesh:
    """A 1-d mesh over ``devices`` (default: all devices) named ``axis_name``."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (axis_name,))


def state_shardings(state: Any, mesh: Mesh, num_tasks: int, num_pairs: int) -> Any:
    """A pytree of `NamedSharding` matching ``state`` (an `EstimatorState`).

    Per-particle leaves are split over the mesh axis: ``(N, ...)`` arrays of the evosax
    state on axis 0 and ``(2, num_tasks, num_pairs, ...)`` system leaves on the task axis.
    Everything else is replicated. The mesh size must divide ``2 * num_tasks * num_pairs``
    and ``num_tasks`` respectively; otherwise a `ValueError` says which.
    """
    (axis,) = mesh.axis_names
    size = mesh.shape[axis]
    num_particles = 2 * num_tasks * num_pairs
    if num_particles % size or num_tasks % size:
        raise ValueError(
            f"cannot split {num_tasks} tasks ({num_particles} particles) over {size} devices; "
            "choose num_tasks divisible by the number of devices."
        )
    replicated = NamedSharding(mesh, PartitionSpec())

    def es_leaf(x):
        shape = np.shape(x)
        if len(shape) >= 1 and shape[0] == num_particles:
            return NamedSharding(mesh, PartitionSpec(axis))
        return replicated

    def system_leaf(x):
        return NamedSharding(mesh, PartitionSpec(None, axis))

    return state.replace(
        es_state=jax.tree.map(es_leaf, state.es_state),
        system_state=jax.tree.map(system_leaf, state.system_state),
        key=replicated,
        step=replicated,
    )


def shard_state(state: Any, mesh: Mesh, num_tasks: int, num_pairs: int) -> Any:
    """``jax.device_put`` of ``state`` with `state_shardings`; `ESGradientEstimator.step`
    then runs sharded (jit follows its inputs' shardings)."""
    return jax.device_put(state, state_shardings(state, mesh, num_tasks, num_pairs))
