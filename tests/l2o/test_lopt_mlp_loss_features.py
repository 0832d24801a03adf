"""MLPOptimizer's loss features (``loss_decays``): formula, no-op at zero weights, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2o
from l2o import MLPOptimizer

PARAMS = {"w": 0.3 * jax.random.normal(jax.random.key(0), (6, 5)), "b": jnp.zeros((5,))}
LOSSES = [2.0, 1.5, 1.8, 0.9]
DECAYS = (0.5, 0.9)


def _grads(step):
    return jax.tree.map(lambda x: jax.random.normal(jax.random.key(step), x.shape), PARAMS)


def _reference_shared_features(losses, decays):
    """Loss features of each step, written out from the module doc's formula."""
    out, emas, first = [], None, None
    for loss in losses:
        l = math.log(loss)
        if emas is None:
            emas, first = [l] * len(decays), l
        out.append([math.tanh(l - e) for e in emas] + [math.tanh((l - first) / 5.0)])
        emas = [c * e + (1 - c) * l for c, e in zip(decays, emas)]
    return np.array(out), emas, first


def test_loss_stats_and_features_follow_the_formula():
    lopt = MLPOptimizer(hidden_sizes=(4,), loss_decays=DECAYS)
    assert lopt.uses_loss and lopt.feature_names()[-3:] == [
        "tanh(log loss - ema_0.5)", "tanh(log loss - ema_0.9)", "tanh((log loss - log loss_0)/5)"]
    theta = lopt.init_meta_params(jax.random.key(1))
    state, update = lopt.init(theta, PARAMS, 10), jax.jit(lopt.update)
    got = []
    for t, loss in enumerate(LOSSES):
        shared, _ = lopt._loss_features(state, jnp.float32(loss))
        got.append(np.asarray(shared))
        _, state = update(theta, _grads(t), state, PARAMS, jnp.float32(loss))
    want, emas, first = _reference_shared_features(LOSSES, DECAYS)
    np.testing.assert_allclose(np.array(got), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state.loss_stats), emas + [first], rtol=1e-5)
    assert want[2, 0] > 0 > want[1, 0] and np.abs(want).max() > 0.2  # rise at step 3, fall at 2


def test_zero_loss_weights_give_the_plain_optimizer_and_weights_change_the_step():
    plain = MLPOptimizer(hidden_sizes=(8, 8))
    with_loss = MLPOptimizer(hidden_sizes=(8, 8), loss_decays=DECAYS)
    theta = plain.init_meta_params(jax.random.key(2))
    theta["mlp"]["layer_2"]["w"] = 30.0 * theta["mlp"]["layer_2"]["w"]  # learned term matters
    extra = len(DECAYS) + 1
    w0 = theta["mlp"]["layer_0"]["w"]
    theta_loss = jax.tree.map(lambda x: x, theta)
    theta_loss["mlp"] = dict(theta["mlp"], layer_0={
        "w": jnp.concatenate([w0, jnp.zeros((extra, w0.shape[1]))]), "b": theta["mlp"]["layer_0"]["b"]})

    def run(lopt, theta):
        state, update = lopt.init(theta, PARAMS, 10), jax.jit(lopt.update)
        for t, loss in enumerate(LOSSES):
            updates, state = update(theta, _grads(t), state, PARAMS, jnp.float32(loss))
        return updates

    want = run(plain, theta)
    got = run(with_loss, theta_loss)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)
    theta_loss["mlp"]["layer_0"]["w"] = theta_loss["mlp"]["layer_0"]["w"].at[-extra:].set(1.0)
    moved = run(with_loss, theta_loss)
    assert max(float(jnp.max(jnp.abs(x - y)))
               for x, y in zip(jax.tree.leaves(moved), jax.tree.leaves(want))) > 1e-6


def test_missing_loss_is_a_clear_error():
    lopt = MLPOptimizer(hidden_sizes=(4,), loss_decays=DECAYS)
    theta = lopt.init_meta_params(jax.random.key(0))
    state = lopt.init(theta, PARAMS, 10)
    with pytest.raises(ValueError, match="reads the loss .* but update got loss=None"):
        lopt.update(theta, _grads(0), state, PARAMS)
    plain_state = MLPOptimizer(hidden_sizes=(4,)).init(theta, PARAMS, 10)
    with pytest.raises(ValueError, match="state has no loss statistics.*without loss_decays"):
        lopt.update(theta, _grads(0), plain_state, PARAMS, jnp.float32(1.0))
    tx = lopt.as_optax(theta, num_steps=10)
    with pytest.raises(ValueError, match="value"):
        tx.update(_grads(0), tx.init(PARAMS), PARAMS)
    updates, _ = tx.update(_grads(0), tx.init(PARAMS), PARAMS, value=jnp.float32(1.0))
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_bad_loss_decays_and_nan_loss():
    with pytest.raises(ValueError, match="loss_decays"):
        MLPOptimizer(loss_decays=(1.5,))
    lopt = MLPOptimizer(hidden_sizes=(4,), loss_decays=DECAYS)
    theta = lopt.init_meta_params(jax.random.key(0))
    state = lopt.init(theta, PARAMS, 10)
    updates, state = lopt.update(theta, _grads(0), state, PARAMS, jnp.float32(jnp.nan))
    assert bool(jnp.all(jnp.isfinite(state.loss_stats)))
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_loss_decays_survive_save_and_load(tmp_path):
    lopt = MLPOptimizer(hidden_sizes=(4,), loss_decays=DECAYS)
    l2o.save(tmp_path / "opt", lopt, lopt.init_meta_params(jax.random.key(0)))
    loaded = l2o.load(tmp_path / "opt")
    assert loaded.lopt == lopt and loaded.lopt.loss_decays == DECAYS
