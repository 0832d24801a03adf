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

from typing import Any

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from meta_train.sharding import ShardedEstimator, _check_mesh, state_shardings


class ShardedMixture(ShardedEstimator):
    """A `MixtureEstimator` whose init and outer step run SPMD over ``mesh``.

    Same interface as `ShardedEstimator` (``init``, ``step``, ``theta``, ``place``,
    ``shardings``); every group must have the mesh's ``num_tasks`` and ``num_pairs`` layout.
    """

    def __init__(self, mixture: Any, mesh: Mesh):
        for est in mixture.estimators:
            _check_mesh(mesh, est.num_tasks, est.num_pairs)
        self.estimator, self.mesh = mixture, mesh

    @staticmethod
    def abstract_shardings(mixture: Any, mesh: Mesh) -> Any:
        """Each group's `state_shardings`; outer state and step replicated."""
        theta = mixture.estimators[0].es.solution
        abstract = jax.eval_shape(mixture._init, jax.random.PRNGKey(0), theta)
        replicated = NamedSharding(mesh, PartitionSpec())
        groups = tuple(state_shardings(group, mesh, est.num_tasks, est.num_pairs)
                       for group, est in zip(abstract.groups, mixture.estimators))
        return abstract.replace(
            groups=groups,
            outer_state=jax.tree.map(lambda _: replicated, abstract.outer_state),
            step=replicated)

    def theta(self, state: Any) -> Any:
        """Current meta-parameters as local arrays (theta is replicated)."""
        mean = state.groups[0].es_state.mean
        local = np.asarray(mean.addressable_data(0))
        unravel = ravel_pytree(self.estimator.estimators[0].es.solution)[1]
        return unravel(jax.numpy.asarray(local))
