"""Inner training system and meta-objective: exact numbers against hand-written loops."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2o import LearnedOptimizer
from meta_train.inner import LearnedOptimizerSystem
from meta_train.objective import loss_scale, meta_loss_bounds, meta_loss_term, sanitize


@dataclasses.dataclass(frozen=True, repr=False)
class LogLrSGD(LearnedOptimizer):
    """A one-parameter 'learned' optimizer: updates = -exp(theta["log_lr"]) * grads."""

    name = "log-lr-sgd"

    def feature_names(self):
        return ["grad"]

    def init_meta_params(self, key):
        return {"log_lr": jnp.float32(math.log(0.1))}

    def init(self, theta, params, num_steps):
        return {"count": jnp.int32(0), "num_steps": jnp.asarray(num_steps, jnp.int32)}

    def update(self, theta, grads, state, params, loss=None, next_loss_fn=None):
        lr = jnp.exp(theta["log_lr"])
        if next_loss_fn is not None:  # record that the guard hook sees the next batch's loss
            lr = lr * jnp.where(next_loss_fn(params) >= 0, 1.0, 0.0)
        updates = jax.tree.map(lambda g: -lr * g, grads)
        return updates, {"count": state["count"] + 1, "num_steps": state["num_steps"]}


THETA = {"log_lr": jnp.float32(math.log(0.1))}


def test_unroll_equals_manual_sgd_and_resets_at_horizon(toy_family):
    system = LearnedOptimizerSystem(toy_family, LogLrSGD(), horizon=6, meta_loss="raw",
                                    max_ratio=1e6)
    state = system.init(jax.random.PRNGKey(0), THETA)
    # Manual SGD from the same start with the same minibatch keys.
    task = toy_family.task(state.cfg)
    params, losses = state.params, []
    for t in range(6):
        loss, grads = jax.value_and_grad(task.loss)(params, jax.random.fold_in(state.data_key, t))
        losses.append(loss)
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

    mid, mean_a, reset_a = system.unroll(THETA, state, jax.random.PRNGKey(1), 3)
    assert not bool(reset_a) and int(mid.inner_step) == 3
    np.testing.assert_allclose(mean_a, np.mean(losses[:3]), rtol=1e-5)
    end, mean_b, reset_b = system.unroll(THETA, mid, jax.random.PRNGKey(1), 3)
    np.testing.assert_allclose(mean_b, np.mean(losses[3:]), rtol=1e-5)
    assert bool(reset_b)
    # After the reset: a fresh run, exactly system.init with the unroll's key.
    fresh = system.init(jax.random.PRNGKey(1), THETA)
    assert int(end.inner_step) == 0
    for a, b in zip(jax.tree.leaves(end), jax.tree.leaves(fresh)):
        np.testing.assert_array_equal(a, b)
    assert int(end.opt_state["num_steps"]) == 6
    # Before the reset the parameters were the manual SGD's.
    np.testing.assert_allclose(
        system.unroll(THETA, mid, jax.random.PRNGKey(1), 2)[0].params["x"],
        _sgd(task, mid.params, state.data_key, 3, 2), rtol=1e-5)


def _sgd(task, params, data_key, start, steps):
    for t in range(start, start + steps):
        grads = jax.grad(task.loss)(params, jax.random.fold_in(data_key, t))
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    return params["x"]


def test_next_loss_fn_is_the_next_steps_batch_loss(toy_family):
    calls = []

    @dataclasses.dataclass(frozen=True, repr=False)
    class Recorder(LogLrSGD):
        needs_next_loss_fn = True

        def update(self, theta, grads, state, params, loss, next_loss_fn=None):
            calls.append(next_loss_fn)
            return super().update(theta, grads, state, params, loss, next_loss_fn=next_loss_fn)

    system = LearnedOptimizerSystem(toy_family, Recorder(), horizon=4)
    state = system.init(jax.random.PRNGKey(0), THETA)
    _, loss, _ = system.inner_step(THETA, state)
    assert calls and calls[-1] is not None
    task = toy_family.task(state.cfg)
    next_batch = task.loss(state.params, jax.random.fold_in(state.data_key, 1))
    np.testing.assert_allclose(calls[-1](state.params), next_batch, rtol=1e-6)


def test_log_meta_loss_is_relative_to_initial_loss(toy_family):
    system = LearnedOptimizerSystem(toy_family, LogLrSGD(), horizon=4, meta_loss="log")
    state = system.init(jax.random.PRNGKey(2), THETA)
    task = toy_family.task(state.cfg)
    initial = task.loss(state.params, jax.random.fold_in(state.data_key, 0))
    np.testing.assert_allclose(state.loss_scale, initial, rtol=1e-6)
    _, loss, term = system.inner_step(THETA, state)
    # The first step's batch is the one that defined the scale: log(1) = 0.
    np.testing.assert_allclose(loss, initial, rtol=1e-6)
    assert abs(float(term)) < 1e-6
    _, mean, _ = system.unroll(THETA, state, jax.random.PRNGKey(0), 2)
    second = system.inner_step(THETA, system.inner_step(THETA, state)[0])[2]
    np.testing.assert_allclose(mean, 0.5 * (0.0 + second), atol=1e-6)
    assert float(second) < 0.0  # SGD made progress


def test_meta_loss_terms_clip_and_keep_nans():
    scale = jnp.float32(2.0)
    np.testing.assert_allclose(meta_loss_term(jnp.float32(1.0), scale, "log", 10.0), math.log(0.5),
                               rtol=1e-6)
    np.testing.assert_allclose(meta_loss_term(jnp.float32(1e3), scale, "log", 10.0), math.log(10.0),
                               rtol=1e-6)
    np.testing.assert_allclose(meta_loss_term(jnp.float32(0.0), scale, "log", 10.0), math.log(1e-12),
                               rtol=1e-6)
    np.testing.assert_allclose(meta_loss_term(jnp.float32(3.0), scale, "normalized", 10.0), 1.5)
    np.testing.assert_allclose(meta_loss_term(jnp.float32(-50.0), scale, "raw", 10.0), -10.0)
    for kind in ("log", "normalized", "raw"):
        assert bool(jnp.isnan(meta_loss_term(jnp.float32(jnp.inf), scale, kind, 10.0)))
    assert meta_loss_bounds("normalized", 5.0) == (0.0, 5.0)
    with pytest.raises(ValueError, match="unknown meta-loss kind 'mse'"):
        meta_loss_term(jnp.float32(1.0), scale, "mse", 10.0)
    np.testing.assert_array_equal(loss_scale(jnp.array([4.0, -3.0, jnp.nan, 0.0])), [4, 3, 1, 1])
    safe, count = sanitize(jnp.array([1.0, jnp.nan, -jnp.inf, 7.0]), 5.0, 9.0)
    np.testing.assert_array_equal(safe, [1.0, 9.0, 9.0, 5.0])
    assert int(count) == 2


def test_log_meta_loss_floor_min_ratio():
    scale = jnp.float32(2.0)
    # 1e-6 of the initial loss is floored at 1e-4; above the floor the log is unchanged.
    np.testing.assert_allclose(
        meta_loss_term(jnp.float32(2e-6), scale, "log", 10.0, min_ratio=1e-4), math.log(1e-4),
        rtol=1e-6)
    np.testing.assert_allclose(
        meta_loss_term(jnp.float32(2e-3), scale, "log", 10.0, min_ratio=1e-4), math.log(1e-3),
        rtol=1e-5)
    # the floor does not touch the other kinds
    np.testing.assert_allclose(
        meta_loss_term(jnp.float32(2e-6), scale, "normalized", 10.0, min_ratio=1e-4), 1e-6)
    assert meta_loss_bounds("log", 10.0, 1e-4) == (math.log(1e-4), math.log(10.0))
    with pytest.raises(ValueError, match=r"min_ratio must be in \(0, max_ratio=10.0\); got 20.0"):
        meta_loss_bounds("log", 10.0, 20.0)


def test_nan_task_makes_unroll_nonfinite(toy_family):
    def poisoned_task(cfg):
        task = toy_family.task(cfg)
        return dataclasses.replace(task, loss=lambda p, k: task.loss(p, k) * jnp.nan)

    family = dataclasses.replace(toy_family, task=poisoned_task)
    system = LearnedOptimizerSystem(family, LogLrSGD(), horizon=4)
    state = system.init(jax.random.PRNGKey(0), THETA)
    assert float(state.loss_scale) == 1.0  # non-finite initial loss -> neutral scale
    _, mean, _ = system.unroll(THETA, state, jax.random.PRNGKey(0), 2)
    assert not bool(jnp.isfinite(mean))


def test_rejects_bad_settings(toy_family):
    with pytest.raises(ValueError, match="meta_loss_split 'valid'"):
        LearnedOptimizerSystem(toy_family, LogLrSGD(), horizon=4, meta_loss_split="valid")
    with pytest.raises(ValueError, match="horizon must be a positive int, got 0"):
        LearnedOptimizerSystem(toy_family, LogLrSGD(), horizon=0)
    with pytest.raises(ValueError, match=r"min_ratio must be in \(0, max_ratio=10.0\); got 0.0"):
        LearnedOptimizerSystem(toy_family, LogLrSGD(), horizon=4, min_ratio=0.0)


def _real_optimizers():
    import l2o
    from l2o import GuardedOptimizer

    mlp = l2o.MLPOptimizer(hidden_sizes=(4,))
    return {
        "mlp": mlp,
        "lstm": l2o.LSTMOptimizer(hidden_size=4, num_layers=1),
        "guarded-mlp": GuardedOptimizer(mlp),
    }


@pytest.mark.parametrize("name", ["mlp", "lstm", "guarded-mlp"])
def test_registered_optimizers_unroll_and_respond_to_theta(toy_family, name):
    lopt = _real_optimizers()[name]
    system = LearnedOptimizerSystem(toy_family, lopt, horizon=4)
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))

    @jax.jit
    def mean_loss(theta):
        state = system.init(jax.random.PRNGKey(1), theta)
        return system.unroll(theta, state, jax.random.PRNGKey(2), 4)[1:]

    base, reset = mean_loss(theta)
    bumped, _ = mean_loss(jax.tree.map(lambda x: x + 0.3, theta))
    assert bool(reset) and np.isfinite(float(base)) and np.isfinite(float(bumped))
    assert float(base) != float(bumped)


def test_held_out_evaluation_reports_the_named_losses(toy_family):
    from meta_train.evaluate import evaluate_theta, summarize
    from tasks.evaluation import final_losses, tail_mean

    key = jax.random.PRNGKey(3)
    result = evaluate_theta(toy_family, LogLrSGD(), THETA, key, 2, 10)
    assert set(result) == {"losses", "final_train_loss", "final_test_loss", "tail_train_loss"}
    np.testing.assert_allclose(result["tail_train_loss"], np.asarray(result["losses"])[:, -1:].mean(1),
                               rtol=1e-6)  # the last 10% of 10 steps is one step
    np.testing.assert_allclose(tail_mean(np.arange(20.0).reshape(1, 20)), [18.5])
    # The same run by hand: final losses of the trained params, same keys.
    system = LearnedOptimizerSystem(toy_family, LogLrSGD(), horizon=10)
    k_init, k_eval = jax.random.split(jax.random.split(key, 2)[0])
    state = system.init(k_init, THETA)
    for _ in range(10):
        state = system.inner_step(THETA, state)[0]
    final = final_losses(toy_family.task(state.cfg), state.params, k_eval)
    for name in ("final_train_loss", "final_test_loss"):
        np.testing.assert_allclose(result[name][0], final[name], rtol=1e-5)
    assert set(summarize(result)) >= {"final_train_loss", "final_test_loss", "tail_train_loss"}
