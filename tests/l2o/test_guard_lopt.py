"""GuardedOptimizer around the registered learned optimizers (MLP, LSTM)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import l2o
from helpers.guard import SETTINGS, fallback_alone, gd_fallback, make_run, quadratic_problem
from helpers.lopt import ARCHITECTURES
from l2o.base import LearnedOptimizer
from l2o import GuardedOptimizer, GuardState, guard_stats

NAMES = ARCHITECTURES


def scaled_theta(lopt, scale, seed=0):
    """Random meta-parameters times ``scale`` (x300 makes every optimizer diverge alone)."""
    return jax.tree.map(lambda x: scale * x, lopt.init_meta_params(jax.random.key(seed)))


def train_protocol(guarded, theta, problem, steps, key):
    """The meta-training inner loop: ``update`` with ``next_loss_fn`` (needs_next_loss_fn)."""

    def step(carry, t):
        params, state = carry
        loss, grads = jax.value_and_grad(problem.loss)(params, jax.random.fold_in(key, t))
        next_key = jax.random.fold_in(key, t + 1)
        kwargs = ({"next_loss_fn": lambda p: problem.loss(p, next_key)}
                  if guarded.needs_next_loss_fn else {})
        updates, state = guarded.update(theta, grads, state, params, loss, **kwargs)
        return (optax.apply_updates(params, updates), state), loss

    state = guarded.init(theta, problem.params, steps)
    return jax.lax.scan(step, (problem.params, state), jnp.arange(steps))


@pytest.mark.parametrize("name", NAMES)
def test_guarded_optimizer_is_a_learned_optimizer(name):
    lopt = l2o.registry.get(name)
    guarded = GuardedOptimizer(lopt, optax.sgd(0.1))
    assert isinstance(guarded, LearnedOptimizer)
    assert guarded.needs_next_loss_fn is True
    with pytest.warns(DeprecationWarning, match="needs_next_loss_fn"):
        assert guarded.needs_value_fn is True
    assert guarded.name == f"guarded-{lopt.name}"
    assert guarded.uses_loss == bool(getattr(lopt, "uses_loss", False))
    theta = guarded.init_meta_params(jax.random.key(0))
    expected = lopt.init_meta_params(jax.random.key(0))
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)
    state = guarded.init(theta, quadratic_problem().params, 50)
    assert isinstance(state, GuardState) and int(state.num_learned) == 0


@pytest.mark.parametrize("name", NAMES)
def test_protocol_and_optax_forms_take_identical_steps(name):
    lopt = l2o.registry.get(name)
    guarded = GuardedOptimizer(lopt, optax.adam(0.05))
    theta = scaled_theta(lopt, 30.0)
    problem = quadratic_problem()
    # Op by op (compiled, the two programs may fuse differently and this theta amplifies
    # rounding: measured 1e-3 apart after 20 steps), the two forms are bit for bit equal.
    with jax.disable_jit():
        (params_a, state_a), _ = train_protocol(guarded, theta, problem, 20, jax.random.key(0))
        params_b, state_b, _ = make_run(guarded.as_optax(theta, 20), problem, 20)(
            problem.params, jax.random.key(0))
    np.testing.assert_array_equal(params_a, params_b)
    assert int(state_a.num_learned) == int(state_b.num_learned)
    assert int(state_a.num_fallback) == int(state_b.num_fallback) == 20 - int(state_a.num_learned)


CASES = [
    pytest.param(name, setting, marks=[pytest.mark.slow] if (name, setting) == ("lstm", "digits-adam") else [])
    for name in NAMES
    for setting in ("quadratic-adam", "rosenbrock-adam", "digits-adam")
]


@pytest.mark.parametrize("name, setting", CASES)
def test_diverging_learned_optimizer_is_contained(name, setting):
    """theta x300: alone the optimizer reaches inf / 1e26 losses; guarded it matches Adam."""
    make_problem, fallback, steps = SETTINGS[setting]
    problem = make_problem()
    lopt = l2o.registry.get(name)
    tx = GuardedOptimizer(lopt, fallback).as_optax(scaled_theta(lopt, 300.0), steps)
    params, state, losses = make_run(tx, problem, steps)(problem.params, jax.random.key(1))
    assert np.all(np.isfinite(losses))
    final = float(problem.full_loss(params))
    alone = float(problem.full_loss(fallback_alone(setting)))
    assert final <= 1.01 * alone + 1e-6, (final, alone)
    assert final < 0.5 * float(problem.full_loss(problem.params))
    assert int(guard_stats(state)["num_steps"]) == steps


def test_vmap_over_a_population_of_theta():
    lopt = l2o.MLPOptimizer()
    guarded = GuardedOptimizer(lopt, gd_fallback())
    problem = quadratic_problem()
    thetas = [scaled_theta(lopt, s) for s in (1.0, 30.0, 300.0)]
    population = jax.tree.map(lambda *xs: jnp.stack(xs), *thetas)
    train = jax.jit(lambda th: train_protocol(guarded, th, problem, 30, jax.random.key(0)))
    (params, state), losses = jax.vmap(train)(population)
    assert losses.shape == (3, 30) and np.all(np.isfinite(losses))
    # GD fallback with step 1/L on this strongly convex quadratic: every member's loss is
    # non-increasing whatever its theta proposes.
    assert np.all(np.diff(np.asarray(losses), axis=1) <= 1e-6 * np.asarray(losses[:, :-1]))
    for i, theta in enumerate(thetas):
        (one_params, one_state), _ = train(theta)
        np.testing.assert_allclose(params[i], one_params, rtol=1e-5, atol=1e-7)
        assert int(state.num_learned[i]) == int(one_state.num_learned)


def test_protocol_errors():
    lopt = l2o.MLPOptimizer()
    guarded = GuardedOptimizer(lopt)
    theta = lopt.init_meta_params(jax.random.key(0))
    params = quadratic_problem().params
    state = guarded.init(theta, params, 10)
    with pytest.raises(ValueError, match="guarded-mlp.update needs next_loss_fn"):
        guarded.update(theta, params, state, params, jnp.float32(1.0))
    with pytest.raises(TypeError, match="learned must be a LearnedOptimizer"):
        GuardedOptimizer(optax.adam(1e-3))
    with pytest.raises(TypeError, match="fallback must be an optax"):
        GuardedOptimizer(lopt, fallback="adam")
