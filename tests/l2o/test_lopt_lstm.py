"""LSTMOptimizer: preprocessing formula, LSTM cell against a numpy reference, options."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2o import LSTMOptimizer
from l2o.features import lstm_preprocess


def _reference_preprocess(g, p):
    if abs(g) >= math.exp(-p):
        return (math.log(abs(g)) / p, float(np.sign(g)))
    return (-1.0, math.exp(p) * g)


def test_preprocess_matches_paper_formula():
    p = 10.0
    values = [0.0, 1e-12, -3e-5, math.exp(-p), -math.exp(-p) * 0.999, 4.5e-5, -0.2, 1.0, 7e3]
    got = np.asarray(lstm_preprocess(jnp.asarray(values, jnp.float32), p))
    expected = np.array([_reference_preprocess(float(np.float32(v)), p) for v in values])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@settings(max_examples=50, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False, width=32), st.sampled_from([2.0, 5.0, 10.0]))
def test_preprocess_property(g, p):
    got = np.asarray(lstm_preprocess(jnp.asarray([g], jnp.float32), p))[0]
    np.testing.assert_allclose(got, _reference_preprocess(g, p), rtol=2e-6, atol=1e-6)


def test_zero_output_weights_give_zero_update():
    lopt = LSTMOptimizer()
    theta = lopt.init_meta_params(jax.random.key(0))
    theta["output"] = {"w": jnp.zeros_like(theta["output"]["w"]), "b": jnp.float32(0.0)}
    params = {"a": jnp.ones((3, 2)), "b": jnp.ones(4, jnp.bfloat16)}
    grads = jax.tree.map(lambda x: 0.1 * x, params)
    updates, state = lopt.update(theta, grads, lopt.init(theta, params, 5), params, None)
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))
    assert float(jnp.max(jnp.abs(state.hidden))) > 0.0  # the LSTM itself still ran


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_matches_numpy_lstm_reference_over_steps():
    """Two layers, three steps, every coordinate independent, output_scale * (h w + b)."""
    lopt = LSTMOptimizer(hidden_size=5, num_layers=2, output_scale=0.1)
    theta = lopt.init_meta_params(jax.random.key(1))
    theta["output"]["b"] = jnp.float32(0.03)
    gradients = [np.array([0.5, -1e-6, 2.0], np.float32), np.array([-0.1, 3e-5, 0.0], np.float32), np.array([1.0, 1.0, -1.0], np.float32)]
    params = {"x": jnp.zeros(3)}
    state = lopt.init(theta, params, 10)
    h = np.zeros((2, 3, 5))
    c = np.zeros((2, 3, 5))
    w = [np.asarray(theta[f"layer_{i}"]["w"], np.float64) for i in range(2)]
    b = [np.asarray(theta[f"layer_{i}"]["b"], np.float64) for i in range(2)]
    for g in gradients:
        updates, state = lopt.update(theta, {"x": jnp.asarray(g)}, state, params, None)
        x = np.array([_reference_preprocess(float(v), 10.0) for v in g])
        for layer in range(2):
            z = np.concatenate([x, h[layer]], axis=1) @ w[layer] + b[layer]
            i, f, cand, o = np.split(z, 4, axis=1)
            c[layer] = _sigmoid(f) * c[layer] + _sigmoid(i) * np.tanh(cand)
            h[layer] = _sigmoid(o) * np.tanh(c[layer])
            x = h[layer]
        expected = 0.1 * (x @ np.asarray(theta["output"]["w"], np.float64) + 0.03)
        np.testing.assert_allclose(updates["x"], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(state.cell, c.transpose(1, 0, 2), rtol=1e-5, atol=1e-6)  # (N, L, H)


def test_update_bounded_by_output_weights():
    lopt = LSTMOptimizer(output_scale=0.1)
    theta = lopt.init_meta_params(jax.random.key(2))
    params = {"x": jnp.zeros(50)}
    grads = {"x": jnp.logspace(-8, 8, 50) * jnp.where(jnp.arange(50) % 2 == 0, 1.0, -1.0)}
    updates, _ = lopt.update(theta, grads, lopt.init(theta, params, 5), params, None)
    bound = 0.1 * float(jnp.sum(jnp.abs(theta["output"]["w"])) + jnp.abs(theta["output"]["b"]))
    assert float(jnp.max(jnp.abs(updates["x"]))) <= bound


def test_use_loss_and_momentum_inputs():
    lopt = LSTMOptimizer(use_loss=True, momentum_decay=0.9)
    assert lopt.uses_loss and lopt.num_inputs == 4 and len(lopt.feature_names()) == 5
    theta = lopt.init_meta_params(jax.random.key(3))
    assert theta["layer_0"]["w"].shape == (4 + 20, 80) and theta["layer_0"]["w_global"].shape == (1, 80)
    params = {"x": jnp.zeros(4)}
    grads = {"x": jnp.array([0.1, -0.2, 0.3, 1e-7])}
    state = lopt.init(theta, params, 5)
    low, _ = lopt.update(theta, grads, state, params, jnp.float32(0.01))
    high, new_state = lopt.update(theta, grads, state, params, jnp.float32(100.0))
    assert float(jnp.max(jnp.abs(low["x"] - high["x"]))) > 1e-6  # the loss is an input
    np.testing.assert_allclose(new_state.momentum, 0.1 * grads["x"], rtol=1e-6)
    with pytest.raises(ValueError, match="loss"):
        lopt.update(theta, grads, state, params, None)


@pytest.mark.parametrize(
    "config", [{"hidden_size": 0}, {"num_layers": 0}, {"preprocess_p": -1.0}, {"momentum_decay": 1.0}]
)
def test_invalid_config_raises(config):
    with pytest.raises(ValueError, match=next(iter(config))):
        LSTMOptimizer(**config)
