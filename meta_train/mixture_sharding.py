"""A `MixtureEstimator`'s particles split over devices, as `meta_train.sharding` does for one.

Every group lays out its particles as ``(2, num_tasks, num_pairs)``, so one
``("sign", "tasks", "pairs")`` mesh (`sharding.particle_mesh`) splits each group the same
way (`sharding.state_shardings` per group): the groups' unrolls run without communication,
and each group's estimate becomes an all-reduce of a D-vector. Theta, the outer optimizer
state and the step counter are replicated.

    sharded = ShardedMixture(mixture, particle_mesh(num_tasks, num_pairs))
    state = sharded.init(key, theta); state, metrics = sharded.step(state)
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from meta_train.sharding import _check_mesh, state_shardings


class ShardedMixture:
    """A `MixtureEstimator` whose init and outer step run SPMD over ``mesh``.

    Same interface as the mixture (``init``, ``step``, ``theta``) plus ``place``; every
    group must have the mesh's ``num_tasks`` and ``num_pairs`` layout.
    """

    def __init__(self, mixture: Any, mesh: Mesh):
        for est in mixture.estimators:
            _check_mesh(mesh, est.num_tasks, est.num_pairs)
        self.estimator, self.mesh = mixture, mesh

    @property
    def num_devices(self) -> int:
        """Devices in the mesh."""
        return self.mesh.size

    def shardings(self) -> Any:
        """Shardings of this mixture's state (from its abstract shape)."""
        return _abstract_shardings(self.estimator, self.mesh)

    def init(self, key: jax.Array, theta: Any) -> Any:
        """`MixtureEstimator.init`, output placed with `shardings`."""
        replicated = NamedSharding(self.mesh, PartitionSpec())
        key, theta = jax.device_put((key, theta), replicated)
        return _sharded_fns(self.estimator, self.mesh)[0](key, theta)

    def step(self, state: Any) -> tuple[Any, dict]:
        """One outer step over the mesh: ``(state, metrics)``, shardings kept."""
        return _sharded_fns(self.estimator, self.mesh)[1](state)

    def place(self, state: Any) -> Any:
        """Put a host (e.g. restored) state onto the mesh with `shardings`."""
        return jax.device_put(state, self.shardings())

    def theta(self, state: Any) -> Any:
        """Current meta-parameters as local arrays (theta is replicated)."""
        mean = state.groups[0].es_state.mean
        local = np.asarray(mean.addressable_data(0))
        unravel = ravel_pytree(self.estimator.estimators[0].es.solution)[1]
        return unravel(jax.numpy.asarray(local))


@functools.lru_cache(maxsize=16)
def _abstract_shardings(mixture: Any, mesh: Mesh) -> Any:
    theta = mixture.estimators[0].es.solution
    abstract = jax.eval_shape(mixture._init, jax.random.PRNGKey(0), theta)
    replicated = NamedSharding(mesh, PartitionSpec())
    groups = tuple(state_shardings(group, mesh, est.num_tasks, est.num_pairs)
                   for group, est in zip(abstract.groups, mixture.estimators))
    return abstract.replace(groups=groups,
                            outer_state=jax.tree.map(lambda _: replicated, abstract.outer_state),
                            step=replicated)


@functools.lru_cache(maxsize=16)
def _sharded_fns(mixture: Any, mesh: Mesh):
    shardings = _abstract_shardings(mixture, mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    init = jax.jit(mixture._init, out_shardings=shardings)

    def step(state):
        new_state, metrics, _ = mixture._step(state)
        return new_state, metrics

    step = jax.jit(step, in_shardings=(shardings,), out_shardings=(shardings, replicated))
    return init, step
