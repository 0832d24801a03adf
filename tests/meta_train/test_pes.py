"""Gradient estimators: unbiasedness of PES, bias of truncated ES, staggering, NaN safety."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from meta_train.pes import ESGradientEstimator, STRATEGIES, stagger_offsets
from meta_train.toy import InfluenceBalancing

from helpers.systems import PoisonableSystem

HORIZON, TRUNC = 40, 5
THETA = jnp.array([0.5], jnp.float32)


def _mean_gradient(strategy: str, num_pairs: int, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-step gradient estimates over 7 horizons after a 1-horizon burn-in, theta fixed."""
    system = InfluenceBalancing(horizon=HORIZON)
    estimator = ESGradientEstimator(
        system, THETA, strategy=strategy, sigma=0.01, num_tasks=HORIZON // TRUNC,
        num_pairs=num_pairs, trunc_length=TRUNC, horizon=HORIZON,
        outer_optimizer=optax.set_to_zero(),
    )
    state = estimator.init(jax.random.PRNGKey(key), THETA)

    @jax.jit
    def run(state):
        def body(state, _):
            state, _, grad = estimator._step(state)
            return state, grad

        return jax.lax.scan(body, state, None, length=8 * HORIZON // TRUNC)

    _, grads = run(state)
    return np.asarray(grads[HORIZON // TRUNC :, 0])


@pytest.fixture(scope="module")
def exact_gradient() -> float:
    system = InfluenceBalancing(horizon=HORIZON)
    return float(jax.grad(system.full_horizon_loss)(THETA)[0])


def test_pes_is_unbiased_and_truncated_es_is_not(exact_gradient):
    pes = _mean_gradient("pes", num_pairs=256, key=0)
    tes = _mean_gradient("tes", num_pairs=256, key=0)
    pes_error = abs(pes.mean() - exact_gradient) / abs(exact_gradient)
    tes_error = abs(tes.mean() - exact_gradient) / abs(exact_gradient)
    # Standard error of the PES mean across the 56 (correlated) steps, for the record.
    stderr = pes.std() / np.sqrt(pes.size) / abs(exact_gradient)
    assert pes_error < 0.05, (pes.mean(), exact_gradient, stderr)
    assert stderr < 0.05
    # Truncated ES only sees 5 of 40 steps of influence: far off, many standard errors.
    assert tes_error > 0.5, (tes.mean(), exact_gradient)
    assert tes_error > 10 * pes_error


def test_noise_reuse_es_is_unbiased(exact_gradient):
    nres = _mean_gradient("nres", num_pairs=256, key=1)
    assert abs(nres.mean() - exact_gradient) / abs(exact_gradient) < 0.05


def test_gradient_matches_evosax_update_and_formula():
    """The applied update is evosax's tell with our estimate: theta' = theta - lr * g."""
    system = InfluenceBalancing(horizon=HORIZON)
    estimator = ESGradientEstimator(
        system, THETA, strategy="pes", sigma=0.1, num_tasks=2, num_pairs=3,
        trunc_length=TRUNC, horizon=HORIZON, outer_optimizer=optax.sgd(0.5),
    )
    state = estimator.init(jax.random.PRNGKey(3), THETA)
    before = estimator.theta(state)
    new_state, _, grad = estimator.step_and_gradient(state)
    np.testing.assert_allclose(estimator.theta(new_state), before - 0.5 * grad, rtol=1e-6)
    # Recompute g = 1/(N sigma^2) sum_i xi_i L_i by hand from the particles' losses.
    fresh = _perturbations_of_step(estimator, state)
    xi = estimator.perturbations(state).reshape(-1, 1) + fresh
    thetas = before + fresh.reshape(2, 2, 3, 1)
    losses = jax.vmap(jax.vmap(jax.vmap(
        lambda th, st: system.unroll(th, st, None, TRUNC)[1])))(thetas, state.system_state)
    manual = jnp.sum(losses.reshape(-1) * xi[:, 0]) / (12 * 0.1**2)
    np.testing.assert_allclose(grad[0], manual, rtol=1e-4)


def _perturbations_of_step(estimator, state):
    """The fresh antithetic noise evosax's ask draws at this step (same key split)."""
    _, k_ask, _, _ = jax.random.split(state.key, 4)
    _, asked = estimator.es.ask(k_ask, state.es_state, estimator.es_params)
    return asked.pert_accum - state.es_state.pert_accum


def test_staggered_starts_and_per_task_resets():
    system = InfluenceBalancing(horizon=HORIZON)
    estimator = ESGradientEstimator(
        system, THETA, strategy="pes", sigma=0.01, num_tasks=4, num_pairs=2,
        trunc_length=TRUNC, horizon=HORIZON,
    )
    assert estimator.offsets == [0, 10, 20, 30] == stagger_offsets(4, HORIZON, TRUNC)
    state = estimator.init(jax.random.PRNGKey(0), THETA)
    steps = np.asarray(state.system_state.inner_step)
    assert steps.shape == (2, 4, 2)
    np.testing.assert_array_equal(steps[0, :, 0], [0, 10, 20, 30])
    np.testing.assert_array_equal(steps, steps[:1, :, :1] * np.ones((2, 1, 2), int))
    # The staggered state equals running the task alone from scratch with theta.
    s = system.init(None, THETA)
    for _ in range(2):
        s, _, _ = system.unroll(THETA, s, None, TRUNC)
    np.testing.assert_allclose(state.system_state.s[0, 1, 0], s.s, rtol=1e-6)

    # Task 3 starts at step 30: after 2 truncations it resets, the others do not.
    state, metrics = estimator.step(state)
    assert int(metrics["num_resets"]) == 0
    state, metrics = estimator.step(state)
    assert int(metrics["num_resets"]) == 2 * 2  # both signs, both pairs of one task
    xi = np.asarray(estimator.perturbations(state))
    assert np.all(xi[:, 3] == 0.0)
    assert np.all(np.abs(xi[:, :3]) > 0.0)
    # Antithetic members carry opposite accumulated noise.
    np.testing.assert_allclose(xi[0, :3], -xi[1, :3], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(state.system_state.inner_step)[0, :, 0], [10, 20, 30, 0])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nan_task_keeps_theta_finite_and_is_counted(strategy):
    theta = jnp.zeros((2,), jnp.float32)
    system = PoisonableSystem(poison_task=None)
    healthy = ESGradientEstimator(system, theta, strategy=strategy, num_tasks=3, num_pairs=2,
                                  trunc_length=1, horizon=4, sigma=0.1, outer_lr=0.1)
    # Poison the task whose key's first word is that of task 1's key.
    task_keys = jax.random.split(jax.random.split(jax.random.PRNGKey(0), 4)[1], 3)
    system = PoisonableSystem(poison_task=int(task_keys[1][0]))
    estimator = ESGradientEstimator(system, theta, strategy=strategy, num_tasks=3, num_pairs=2,
                                    trunc_length=1, horizon=4, sigma=0.1, outer_lr=0.1,
                                    fitness_clip=100.0)
    state = estimator.init(jax.random.PRNGKey(0), theta)
    assert bool(jnp.all(state.system_state.poisoned[:, 1])) and not bool(
        jnp.any(state.system_state.poisoned[:, [0, 2]]))
    for _ in range(6):
        state, metrics = estimator.step(state)
        assert int(metrics["num_nonfinite"]) == 4  # 2 signs x 2 pairs of the poisoned task
        assert float(metrics["meta_loss"]) == pytest.approx(
            (4 * 100.0 + 8 * float(metrics["meta_loss_finite_mean"])) / 12, rel=1e-5)
    theta_after = estimator.theta(state)
    assert bool(jnp.all(jnp.isfinite(theta_after)))
    # The healthy tasks still drive theta toward the optimum at 1.
    assert float(jnp.min(theta_after)) > 0.2
    assert healthy != estimator and hash(healthy) != hash(estimator)


def test_equal_settings_share_one_compilation():
    make = lambda: ESGradientEstimator(InfluenceBalancing(horizon=HORIZON), THETA,
                                       num_tasks=2, num_pairs=2, trunc_length=TRUNC,
                                       horizon=HORIZON)
    a, b = make(), make()
    assert a == b and hash(a) == hash(b)
    state = a.init(jax.random.PRNGKey(0), THETA)
    s_a, _ = a.step(state)
    s_b, _ = b.step(state)
    np.testing.assert_array_equal(a.theta(s_a), b.theta(s_b))
    # A stepped state has the same abstract type as a fresh one: no second compilation.
    assert jax.eval_shape(a.step, state)[0] == jax.eval_shape(lambda s: s, s_a)


def test_rejects_bad_settings():
    system = InfluenceBalancing(horizon=HORIZON)
    with pytest.raises(ValueError, match=r"must divide horizon=40 \(divisors of 40: .*\); try trunc_length=8"):
        ESGradientEstimator(system, THETA, trunc_length=7, horizon=40)
    with pytest.raises(ValueError, match="unknown strategy 'es'.*'pes'"):
        ESGradientEstimator(system, THETA, strategy="es", trunc_length=5, horizon=40)
    with pytest.raises(ValueError, match="num_pairs must be a positive int, got 0"):
        ESGradientEstimator(system, THETA, num_pairs=0, trunc_length=5, horizon=40)
    with pytest.raises(TypeError, match="missing \\['unroll'\\]"):
        ESGradientEstimator(object.__new__(type("Half", (), {"init": lambda s: 0})), THETA)


@pytest.mark.parametrize("strategy", [s if s == "pes" else pytest.param(s, marks=pytest.mark.slow)
                                      for s in STRATEGIES])
def test_particles_in_groups_give_the_vmapped_estimate(strategy):
    """particle_batch (lax.map over groups of particles, one group not full) changes the
    loop order only: states, resets and gradients equal the all-at-once vmap (PES by
    default; the other strategies share the grouping code and run with the slow tests)."""
    import l2o
    from helpers.toy_family import toy_family
    from meta_train.inner import LearnedOptimizerSystem

    lopt = l2o.MLPOptimizer(hidden_sizes=(4,))
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    system = LearnedOptimizerSystem(family=toy_family(), lopt=lopt, horizon=6)
    runs = []
    for batch in (0, 5):
        estimator = ESGradientEstimator(system, theta, strategy=strategy, num_tasks=3,
                                        num_pairs=2, trunc_length=2, horizon=6,
                                        particle_batch=batch)
        assert estimator.particle_batch == batch
        state = estimator.init(jax.random.PRNGKey(1), theta)
        grads, resets = [], 0
        for _ in range(4):
            state, metrics, grad = estimator.step_and_gradient(state)
            grads.append(np.asarray(grad))
            resets += int(metrics["num_resets"])
        runs.append((np.stack(grads), resets, state))
    (g0, r0, s0), (g1, r1, s1) = runs
    assert r0 == r1 > 0
    np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-7 * np.max(np.abs(g0)))
    for a, b in zip(jax.tree.leaves(s1.system_state), jax.tree.leaves(s0.system_state)):
        if jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        else:  # inner steps and data keys (uint32 key data) are exact
            np.testing.assert_array_equal(a, b)


def test_particle_batch_default_and_validation():
    system = InfluenceBalancing(horizon=HORIZON)
    make = lambda **kw: ESGradientEstimator(system, THETA, num_tasks=4, num_pairs=4,  # noqa: E731
                                            trunc_length=TRUNC, horizon=HORIZON, **kw)
    from meta_train.pes import CPU_PARTICLE_BATCH

    single_cpu = jax.default_backend() == "cpu" and jax.device_count() == 1
    assert make().particle_batch == (CPU_PARTICLE_BATCH if single_cpu else 0)
    assert make(particle_batch=64).particle_batch == 0  # a group of all 32 particles
    with pytest.raises(ValueError, match="particle_batch must be None or an int >= 0"):
        make(particle_batch=-1)
