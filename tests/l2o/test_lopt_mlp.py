"""MLPOptimizer: reproduces Adam with a zero network, output-head formula, config checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2o import MLPOptimizer
from helpers.lopt import quadratic_loss, train


def _zero_last_layer(lopt, theta, bias=None):
    last = f"layer_{len(lopt.hidden_sizes)}"
    layer = theta["mlp"][last]
    new = {"w": jnp.zeros_like(layer["w"]), "b": jnp.zeros_like(layer["b"]) if bias is None else jnp.asarray(bias, jnp.float32)}
    return {**theta, "mlp": {**theta["mlp"], last: new}}


def _grad_sequence(key, params, num_steps):
    """Random gradients with per-leaf scales spanning 1e-4 .. 1e2."""
    keys = jax.random.split(key, num_steps)
    scales = [1e-4, 1.0, 1e2]
    return [
        jax.tree.map(lambda p, s: s * jax.random.normal(k, p.shape), params, dict(zip(params, scales)))
        for k in keys
    ]


PARAMS = {"a": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.ones((5,)), "c": jnp.float32(0.5)}


@pytest.mark.parametrize("lr", [3e-3, 1e-1])
def test_zero_network_with_nominal_term_is_adam(lr):
    lopt = MLPOptimizer(nominal_lr=lr)
    theta = _zero_last_layer(lopt, lopt.init_meta_params(jax.random.key(0)))
    adam = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)
    params, ref_params = PARAMS, PARAMS
    state, ref_state = lopt.init(theta, params, 30), adam.init(params)
    update = jax.jit(lopt.update)
    for grads in _grad_sequence(jax.random.key(1), params, 30):
        updates, state = update(theta, grads, state, params, jnp.float32(0.0))
        ref_updates, ref_state = adam.update(grads, ref_state, ref_params)
        for u, r in zip(jax.tree.leaves(updates), jax.tree.leaves(ref_updates)):
            np.testing.assert_allclose(u, r, rtol=0, atol=1e-6)
            np.testing.assert_allclose(u, r, rtol=1e-4, atol=1e-9)
        params = optax.apply_updates(params, updates)
        ref_params = optax.apply_updates(ref_params, ref_updates)


def test_output_heads_formula():
    """Constant outputs (d, m, l) give -(exp(log_lr + l) * adam_dir + b d exp(a m))."""
    lopt = MLPOptimizer(weight_decay=0.1)
    d, m, log_lr_mod = 0.7, 300.0, -0.5
    theta = _zero_last_layer(lopt, lopt.init_meta_params(jax.random.key(0)), [d, m, log_lr_mod])
    grads = {"w": jnp.array([0.3, -2.0, 1e-3])}
    params = {"w": jnp.array([1.0, 2.0, -3.0])}
    updates, state = lopt.update(theta, grads, lopt.init(theta, params, 10), params, None)
    g = np.array([0.3, -2.0, 1e-3], np.float64)
    # bias-corrected first step; the corrections use float32 decays, as optax.adam does
    m_hat = 0.1 * g / (1.0 - float(np.float32(0.9)))
    v_hat = 0.001 * g**2 / (1.0 - float(np.float32(0.999)))
    lr = lopt.nominal_lr * math.exp(log_lr_mod)
    expected = -(lr * m_hat / (np.sqrt(v_hat) + 1e-8) + 1e-3 * d * math.exp(1e-3 * m))
    expected -= 0.1 * lopt.nominal_lr * np.array([1.0, 2.0, -3.0])
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(state.momenta["w"][2], 0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(state.second_moment["w"], 1e-3 * g**2, rtol=1e-6)


def test_without_nominal_zero_network_gives_zero_update():
    lopt = MLPOptimizer(nominal=False)
    theta = _zero_last_layer(lopt, lopt.init_meta_params(jax.random.key(0)))
    assert "log_lr" not in theta
    updates, _ = lopt.update(theta, PARAMS, lopt.init(theta, PARAMS, 10), PARAMS, None)
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))


def test_untrained_behaves_like_adam_on_quadratic():
    lopt = MLPOptimizer(nominal_lr=0.03)
    theta = lopt.init_meta_params(jax.random.key(0))
    params = {"x": jnp.linspace(-2.0, 2.0, 16)}
    _, losses = jax.jit(lambda t: train(lopt, t, quadratic_loss, params, 300))(theta)
    _, adam_losses = jax.jit(lambda t: train(_AdamAsLopt(lopt.nominal_lr), t, quadratic_loss, params, 300))(theta)
    # Same curve as Adam while the loss is large; the near-zero learned term only sets a
    # noise floor far below the start (Adam reaches ~1e-11 here).
    np.testing.assert_allclose(losses[:50], adam_losses[:50], rtol=0.03)
    assert float(losses[-1]) < 1e-5 * float(losses[0])


class _AdamAsLopt:
    """optax.adam behind the LearnedOptimizer call signature (reference for the test above)."""

    def __init__(self, lr):
        self.tx = optax.adam(lr)

    def init(self, theta, params, num_steps):
        return self.tx.init(params)

    def update(self, theta, grads, state, params, loss):
        return self.tx.update(grads, state, params)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"nominal_beta1": 0.95}, "nominal_beta1"),
        ({"momentum_decays": ()}, "momentum_decays"),
        ({"momentum_decays": (0.9, 1.5)}, "momentum_decays"),
        ({"hidden_sizes": (0,)}, "hidden_sizes"),
        ({"normalize_over": "rows"}, "normalize_over"),
        ({"nominal_lr": 0.0}, "nominal_lr"),
    ],
)
def test_invalid_config_raises(config, match):
    with pytest.raises(ValueError, match=match):
        MLPOptimizer(**config)


def test_lists_become_tuples_and_normalize_all_works():
    lopt = MLPOptimizer(hidden_sizes=[8], momentum_decays=[0.9, 0.99], normalize_over="all")
    assert lopt.hidden_sizes == (8,)
    assert hash(lopt) == hash(MLPOptimizer(hidden_sizes=(8,), momentum_decays=(0.9, 0.99),
                                           normalize_over="all"))
    theta = lopt.init_meta_params(jax.random.key(0))
    assert theta["mlp"]["layer_0"]["w"].shape == (2 + 2 * 2 + 5, 8)
    assert theta["mlp"]["layer_1"]["w"].shape == (8, 3)
    updates, _ = lopt.update(theta, PARAMS, lopt.init(theta, PARAMS, 10), PARAMS, None)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
