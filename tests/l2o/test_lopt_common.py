"""Properties every registered learned optimizer must have (parametrized over the registry)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2o
from l2o.flat import count_params
from helpers.lopt import nested_params, quadratic_loss, train


def test_is_learned_optimizer_and_hashable(lopt):
    assert isinstance(lopt, l2o.LearnedOptimizer)
    assert hash(lopt) == hash(type(lopt)())
    assert lopt == l2o.registry.get(lopt.name)
    theta = lopt.init_meta_params(jax.random.key(0))
    text = repr(lopt)
    assert f"num_meta_params={count_params(theta)}" in text
    assert f"meta-parameters: {count_params(theta):,}" in lopt.summary()


def test_updates_keep_structure_shapes_and_dtypes(lopt):
    params = nested_params(jax.random.key(0))
    theta = lopt.init_meta_params(jax.random.key(1))
    grads = jax.grad(quadratic_loss)(params)
    state = lopt.init(theta, params, 50)
    assert state.step.dtype == jnp.int32 and int(state.num_steps) == 50
    updates, state = jax.jit(lopt.update)(theta, grads, state, params, jnp.float32(2.0))
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
        assert u.shape == p.shape and u.dtype == p.dtype
        assert bool(jnp.all(jnp.isfinite(u.astype(jnp.float32))))
    assert int(state.step) == 1


def test_untrained_finite_for_1000_steps_on_mixed_dtypes(lopt):
    """Nested float32/bfloat16/float16 quadratic; registered families: test_lopt_tasks.py."""
    params, loss_fn = nested_params(jax.random.key(3)), quadratic_loss
    theta = lopt.init_meta_params(jax.random.key(4))
    run = jax.jit(functools.partial(train, lopt, loss_fn=loss_fn, num_steps=1000))
    final, losses = run(theta, params=params)
    assert losses.shape == (1000,)
    assert bool(jnp.all(jnp.isfinite(losses)))
    for leaf in jax.tree.leaves(final):
        assert bool(jnp.all(jnp.isfinite(leaf.astype(jnp.float32))))


def test_vmap_over_population_matches_loop(lopt):
    params = nested_params(jax.random.key(0))
    grads = jax.grad(quadratic_loss)(params)
    thetas = jax.vmap(lopt.init_meta_params)(jax.random.split(jax.random.key(5), 8))
    states = jax.vmap(lambda t: lopt.init(t, params, 100))(thetas)

    def two_steps(theta, state):
        updates, state = lopt.update(theta, grads, state, params, jnp.float32(1.5))
        return lopt.update(theta, grads, state, params, jnp.float32(1.0))

    batched_updates, batched_state = jax.jit(jax.vmap(two_steps))(thetas, states)
    single = jax.jit(two_steps)
    for i in range(8):
        member = jax.tree.map(lambda x: x[i], (thetas, states))
        updates, state = single(*member)
        for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(batched_updates)):
            np.testing.assert_allclose(
                np.asarray(a, np.float32), np.asarray(b[i], np.float32), rtol=1e-4, atol=1e-7
            )
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(batched_state)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=1e-4, atol=1e-6)


def test_vmap_over_tasks(lopt):
    """One theta, a batch of 4 parameter vectors (tasks): matches the per-task loop."""
    theta = lopt.init_meta_params(jax.random.key(0))
    params = {"w": jax.random.normal(jax.random.key(1), (4, 7)), "b": jnp.arange(4.0)[:, None] * jnp.ones((4, 2))}
    grads = jax.tree.map(lambda x: 0.5 * x + 0.1, params)

    def step(p, g):
        return lopt.update(theta, g, lopt.init(theta, p, 10), p, jnp.float32(1.0))[0]

    batched = jax.jit(jax.vmap(step))(params, grads)
    for i in range(4):
        single = jax.jit(step)(*jax.tree.map(lambda x: x[i], (params, grads)))
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched)):
            np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-7)


def test_init_rejects_integer_and_empty_params(lopt):
    theta = lopt.init_meta_params(jax.random.key(0))
    with pytest.raises(TypeError, match="floating-point"):
        lopt.init(theta, {"w": jnp.ones(3), "count": jnp.int32(1)}, 10)
    with pytest.raises(ValueError, match="no array leaves"):
        lopt.init(theta, {}, 10)
    with pytest.raises(ValueError, match="num_steps"):
        lopt.init(theta, {"w": jnp.ones(3)}, 0)


def test_row_blocks_give_the_same_step(lopt):
    """chunk_size=7 (blocks + a tail over 101 coordinates) == one pass, also under vmap."""
    params = nested_params(jax.random.key(0))
    grads = jax.grad(quadratic_loss)(params)
    blocked = dataclasses.replace(lopt, chunk_size=7)
    whole = dataclasses.replace(lopt, chunk_size=0)
    thetas = jax.vmap(lopt.init_meta_params)(jax.random.split(jax.random.key(1), 2))

    def two_steps(opt, theta):
        state = opt.init(theta, params, 10)
        updates, state = opt.update(theta, grads, state, params, jnp.float32(1.0))
        return opt.update(theta, grads, state, params, jnp.float32(0.5))

    for a, b in zip(
        jax.tree.leaves(jax.jit(jax.vmap(functools.partial(two_steps, blocked)))(thetas)),
        jax.tree.leaves(jax.jit(jax.vmap(functools.partial(two_steps, whole)))(thetas)),
    ):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-5, atol=1e-7)
