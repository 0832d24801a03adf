"""Mixture estimator: weighted combination of per-family PES groups, one outer update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2o
from meta_train.inner import LearnedOptimizerSystem
from meta_train.mixture import MixtureEstimator, group_estimator, group_keys, normalized_weights
from meta_train.pes import ESGradientEstimator

from helpers.systems import TOY_FAMILY, TOY_MATRIX_FAMILY

LOPT = l2o.MLPOptimizer(hidden_sizes=(4,))
THETA = LOPT.init_meta_params(jax.random.PRNGKey(1))
SETTINGS = dict(sigma=0.05, num_tasks=2, num_pairs=2, trunc_length=4, horizon=8)


def _groups(**settings):
    systems = [LearnedOptimizerSystem(family=f, lopt=LOPT, horizon=8)
               for f in (TOY_FAMILY, TOY_MATRIX_FAMILY)]
    return [group_estimator(s, THETA, **{**SETTINGS, **settings}) for s in systems]


def _flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def test_two_family_estimate_is_the_weighted_mean_of_single_family_estimates():
    groups = _groups()
    mixture = MixtureEstimator(groups, weights=[3.0, 1.0], outer_optimizer=optax.sgd(0.1))
    key = jax.random.PRNGKey(7)
    state = mixture.init(key, THETA)
    singles = [g.init(k, THETA) for g, k in zip(groups, group_keys(key, 2))]
    for step in range(3):
        theta_before = _flat(mixture.theta(state))
        state, metrics, grad = mixture.step_and_gradient(state)
        alone = []
        for i, (g, s) in enumerate(zip(groups, singles)):
            s, m, grad_i = g.step_and_gradient(s)
            alone.append((grad_i, m))
            # Continue each single group from the mixture's theta, as the mixture does.
            singles[i] = s.replace(es_state=s.es_state.replace(mean=state.groups[i].es_state.mean))
        expected = 0.75 * alone[0][0] + 0.25 * alone[1][0]
        assert float(jnp.linalg.norm(expected)) > 0
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
        # One outer update (sgd 0.1) of the combined estimate.
        np.testing.assert_allclose(_flat(mixture.theta(state)), theta_before - 0.1 * grad,
                                   rtol=1e-5, atol=1e-7)
        assert float(metrics["meta_loss"]) == pytest.approx(
            0.75 * float(alone[0][1]["meta_loss"]) + 0.25 * float(alone[1][1]["meta_loss"]),
            rel=1e-6)
        assert float(metrics["meta_loss/1"]) == float(alone[1][1]["meta_loss"])
        assert int(metrics["num_resets"]) == sum(int(m["num_resets"]) for _, m in alone)
        assert int(state.step) == step + 1
    # The groups keep their own persistent inner states, of different shapes.
    assert state.groups[0].system_state.params["x"].shape == (2, 2, 2, 8)
    assert state.groups[1].system_state.params["w"].shape == (2, 2, 2, 5, 3)
    for a, b in zip(jax.tree.leaves(state.groups[1].system_state),
                    jax.tree.leaves(singles[1].system_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_one_group_mixture_applies_its_estimate():
    (group,) = _groups()[:1]
    mixture = MixtureEstimator([group], weights=[5.0], outer_optimizer=optax.sgd(0.5))
    key = jax.random.PRNGKey(0)
    state = mixture.init(key, THETA)
    single = group.init(key, THETA)
    state, _, grad = mixture.step_and_gradient(state)
    _, _, grad_alone = group.step_and_gradient(single)
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(grad_alone))


def test_nan_group_keeps_theta_finite():
    from helpers.systems import PoisonableSystem

    theta = jnp.zeros((2,), jnp.float32)
    group_key = jax.random.fold_in(jax.random.PRNGKey(0), 1)
    task_keys = jax.random.split(jax.random.split(group_key, 4)[1], 3)
    poisoned = PoisonableSystem(poison_task=int(task_keys[1][0]))
    groups = [group_estimator(s, theta, num_tasks=3, num_pairs=2, trunc_length=1, horizon=4,
                              sigma=0.1, fitness_clip=100.0)
              for s in (PoisonableSystem(poison_task=None), poisoned)]
    mixture = MixtureEstimator(groups, weights=[1.0, 1.0], outer_lr=0.1)
    state = mixture.init(jax.random.PRNGKey(0), theta)
    for _ in range(5):
        state, metrics = mixture.step(state)
        assert int(metrics["num_nonfinite"]) == 4
    theta = mixture.theta(state)
    assert bool(jnp.all(jnp.isfinite(theta))) and float(jnp.min(theta)) > 0.2


def test_equal_mixtures_compare_equal_and_bad_settings_are_explained():
    assert MixtureEstimator(_groups(), [1, 2]) == MixtureEstimator(_groups(), [1, 2])
    assert hash(MixtureEstimator(_groups(), [1, 2])) == hash(MixtureEstimator(_groups(), [1, 2]))
    assert MixtureEstimator(_groups(), [1, 2]) != MixtureEstimator(_groups(), [2, 1])
    with pytest.raises(ValueError, match="at least one group"):
        MixtureEstimator([], [])
    with pytest.raises(ValueError, match="weight 1 must be a finite number > 0, got -1"):
        MixtureEstimator(_groups(), [1.0, -1])
    with pytest.raises(ValueError, match="one weight per group: 2 group\\(s\\), 1 weight"):
        MixtureEstimator(_groups(), [1.0])
    other = ESGradientEstimator(LearnedOptimizerSystem(family=TOY_FAMILY, lopt=LOPT, horizon=8),
                                {"w": jnp.zeros(3)}, **SETTINGS)
    with pytest.raises(ValueError, match="group 1 has meta-parameters of another structure"):
        MixtureEstimator([_groups()[0], other], [1, 1])
    assert normalized_weights([1, 3], 2) == (0.25, 0.75)
