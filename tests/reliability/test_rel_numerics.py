"""Numerical faults: NaN/inf tasks inside a PES batch, NaN learned updates, half precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2o
from meta_train.train import build, train

from helpers.reliability import (
    CLEAN, CLEAN_FAMILY, FAULTY_FAMILY, SMALL_LSTM, SMALL_MLP, FlakyOptimizer, metrics_rows,
    tiny_config,
)


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def _expected_nonfinite(state) -> int:
    """Particles whose current task is poisoned: every step of their unroll is NaN/inf."""
    return int(jnp.sum(state.system_state.cfg["fault"] != CLEAN))


def test_nan_and_inf_tasks_in_a_pes_batch_keep_theta_finite_and_are_counted(tmp_path):
    config = tiny_config(tmp_path / "run", num_tasks=4, num_pairs=2, horizon=4,
                         trunc_length=2, outer_steps=8, log_every=1)
    components = build(config, family=FAULTY_FAMILY, heldout=CLEAN_FAMILY, lopt=SMALL_MLP)
    result = train(config, progress=False, components=components)
    assert _finite(result.theta)
    assert all(np.isfinite(v) for v in jax.tree.leaves(result.final_eval))

    # Replay the same run step by step (same jitted step) to know which tasks were poisoned.
    estimator = components.estimator
    state = estimator.init(jax.random.fold_in(jax.random.PRNGKey(config.seed), 0),
                           components.theta_init)
    expected, moved = [], []
    for _ in range(config.outer_steps):
        expected.append(_expected_nonfinite(state))
        theta_before = estimator.theta(state)
        state, metrics = estimator.step(state)
        assert int(metrics["num_nonfinite"]) == expected[-1]
        assert np.isfinite(float(metrics["meta_loss"])) and np.isfinite(float(metrics["grad_norm"]))
        moved.append(not all(bool(jnp.array_equal(a, b)) for a, b in
                             zip(jax.tree.leaves(theta_before), jax.tree.leaves(estimator.theta(state)))))
    rows = metrics_rows(result.metrics_path)
    assert [int(r["num_nonfinite"]) for r in rows] == expected
    # The draw made both poisoned and clean batches (else this test would prove nothing)
    # and theta kept learning from the clean particles.
    assert 0 < sum(expected) < config.outer_steps * estimator.num_particles, expected
    assert all(moved)
    for a, b in zip(jax.tree.leaves(estimator.theta(state)), jax.tree.leaves(result.theta)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nan_learned_updates_under_the_guard_fall_back_and_meta_training_stays_finite(tmp_path):
    flaky = FlakyOptimizer(SMALL_MLP, period=3)
    theta = flaky.init_meta_params(jax.random.key(0))
    params = {"x": jnp.ones(3)}
    state = flaky.init(theta, params, 10)
    for step in range(3):  # the rule really produces NaN on its third step
        updates, state = flaky.update(theta, params, state, params, jnp.float32(1.0))
        assert bool(jnp.all(jnp.isnan(updates["x"]))) == (step == 2)

    # A timid fallback (SGD 1e-3 against the optimizer's Adam-like 1e-2 steps), so the
    # learned rule wins whenever its step is finite.
    guarded = l2o.GuardedOptimizer(flaky, optax.sgd(1e-3))
    config = tiny_config(tmp_path / "run", horizon=6, trunc_length=3, num_tasks=2, num_pairs=1)
    estimator = build(config, family=CLEAN_FAMILY, heldout=CLEAN_FAMILY, lopt=guarded).estimator
    state = estimator.init(jax.random.PRNGKey(0), guarded.init_meta_params(jax.random.PRNGKey(1)))
    learned_taken = 0
    for _ in range(5):
        state, metrics = estimator.step(state)
        assert int(metrics["num_nonfinite"]) == 0
        assert np.isfinite(float(metrics["meta_loss"]))
        inner = state.system_state
        assert _finite(inner.params) and _finite(estimator.theta(state))
        stats = l2o.guard_stats(inner.opt_state)
        steps_in_run = np.asarray(inner.opt_state.learned_state.step)
        # Every NaN proposal (each third step of a run) was replaced by the fallback.
        assert np.all(np.asarray(stats["num_fallback"]) >= steps_in_run // 3)
        np.testing.assert_array_equal(np.asarray(stats["num_steps"]), steps_in_run)
        learned_taken += int(np.sum(np.asarray(stats["num_learned"])))
    assert learned_taken > 0  # the learned rule is still used between its NaN steps


@pytest.mark.parametrize("lopt", [SMALL_MLP, SMALL_LSTM, l2o.MLPOptimizer(nominal=False)],
                         ids=["mlp", "lstm", "mlp-no-nominal"])
def test_half_precision_params_get_finite_updates_of_their_dtype(lopt):
    theta = lopt.init_meta_params(jax.random.key(0))
    params = {
        "bf16": jnp.linspace(-3.0, 3.0, 12, dtype=jnp.bfloat16).reshape(3, 4),
        "f16": jnp.linspace(-2.0, 2.0, 5, dtype=jnp.float16),
        "f32": jnp.ones((2,), jnp.float32),
    }
    grads = {
        # Largest finite values, overflowing ones, NaN and tiny subnormals.
        "bf16": jnp.asarray([[3e38, -3e38, jnp.inf, jnp.nan]] * 3, jnp.bfloat16),
        "f16": jnp.asarray([65504.0, -65504.0, jnp.inf, jnp.nan, 6e-8], jnp.float16),
        "f32": jnp.asarray([1e-30, -1e30], jnp.float32),
    }
    state = lopt.init(theta, params, 20)
    step = jax.jit(lopt.update)
    for _ in range(5):
        updates, state = step(theta, grads, state, params, jnp.float32(1.0))
        for name in params:
            assert updates[name].dtype == params[name].dtype, name
            assert updates[name].shape == params[name].shape, name
            assert bool(jnp.all(jnp.isfinite(updates[name]))), (name, updates[name])
        params = optax.apply_updates(params, updates)
        assert _finite(params)
    assert _finite(state)
