"""``lr_adapt`` of the MLP and LSTM optimizers: the nominal term's per-tensor learning rate
adapted by the hypergradient (`l2o.hypergradient`), against a NumPy reference of the formula."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2o
from l2o import LSTMOptimizer, MLPOptimizer, hypergradient

PARAMS = {"w": 0.3 * jax.random.normal(jax.random.key(2), (6, 4)), "b": jnp.zeros((4,))}


def _grads(step):
    keys = jax.random.split(jax.random.key(10 + step), 2)
    # a shared component keeps consecutive gradients correlated, so the offsets move
    return {"w": 0.5 + jax.random.normal(keys[0], (6, 4)),
            "b": 0.01 * (jax.random.normal(keys[1], (4,)) - 0.2 * step)}


def _silent(lopt):
    """Meta-parameters whose network outputs are 0: the update is the nominal term alone."""
    theta = lopt.init_meta_params(jax.random.key(0))
    last = f"layer_{len(lopt.hidden_sizes)}"
    theta["mlp"][last] = jax.tree.map(jnp.zeros_like, theta["mlp"][last])
    return theta


def _reference(lr, rate, fan_ins, steps, b1=0.9, b2=0.999, eps=1e-8):
    """Adam at ``lr * fan_in^-1/2 * exp(s)``, with each tensor's s moved by
    ``rate * cos(g_t, d_{t-1})`` (clipped to +-LIMIT) before the step."""
    m = {k: np.zeros(np.shape(x)) for k, x in PARAMS.items()}
    v = {k: np.zeros(np.shape(x)) for k, x in PARAMS.items()}
    s = {k: 0.0 for k in PARAMS}
    out = []
    for t in range(1, steps + 1):
        g = {k: np.asarray(x, np.float64) for k, x in _grads(t - 1).items()}
        updates = {}
        for k in PARAMS:
            if t > 1:
                d = (m[k] / (1 - b1 ** (t - 1))) / (np.sqrt(v[k] / (1 - b2 ** (t - 1))) + eps)
                cos = np.sum(g[k] * d) / np.sqrt(np.sum(g[k] ** 2) * np.sum(d ** 2))
                s[k] = float(np.clip(s[k] + rate * cos, -hypergradient.LIMIT, hypergradient.LIMIT))
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            d = (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
            updates[k] = -lr * fan_ins[k] ** -0.5 * np.exp(s[k]) * d
        out.append((updates, dict(s)))
    return out


def _check_against_reference(lopt, theta, offsets_by_name):
    """Five steps of ``lopt`` (learned term silenced) against `_reference`; returns the
    last state. ``offsets_by_name(state)`` maps the state's offsets to {"w": .., "b": ..}."""
    state, update = lopt.init(theta, PARAMS, 20), jax.jit(lopt.update)
    for t, (updates_ref, offsets_ref) in enumerate(_reference(0.1, 0.5, {"w": 6, "b": 1}, 5)):
        updates, state = update(theta, _grads(t), state, PARAMS)
        offsets = offsets_by_name(state)
        for k in PARAMS:
            np.testing.assert_allclose(updates[k], updates_ref[k], rtol=2e-5, atol=1e-9)
            np.testing.assert_allclose(offsets[k], offsets_ref[k], rtol=1e-5, atol=1e-7)
    # the offsets moved (and apart): the test would not pass with lr_adapt ignored
    assert abs(float(offsets["w"])) > 0.2 and abs(float(offsets["w"] - offsets["b"])) > 0.1
    return state


@pytest.mark.parametrize("unroll", [True, False])
def test_updates_match_reference_formula(unroll):
    lopt = MLPOptimizer(hidden_sizes=(8, 8), nominal_lr=0.1, fan_in_scaling="inverse_sqrt",
                        lr_adapt=0.5, unroll=unroll)
    _check_against_reference(lopt, _silent(lopt), lambda state: state.lr_offsets)


def test_lstm_updates_match_reference_formula():
    lopt = LSTMOptimizer(hidden_size=4, num_layers=1, nominal_lr=0.1,
                         fan_in_scaling="inverse_sqrt", lr_adapt=0.5)
    theta = lopt.init_meta_params(jax.random.key(0))
    theta["output"] = jax.tree.map(jnp.zeros_like, theta["output"])  # learned term 0
    # the LSTM's state is flat, its tensors in the params' leaf order (b, then w)
    _check_against_reference(lopt, theta, lambda state: dict(zip(("b", "w"), state.lr_offsets)))
    assert LSTMOptimizer(nominal_lr=0.1).init(theta, PARAMS, 5).lr_offsets is None
    with pytest.raises(ValueError, match="needs the nominal term"):
        LSTMOptimizer(lr_adapt=0.1)


def test_off_by_default_and_same_updates_as_before():
    lopt = MLPOptimizer(hidden_sizes=(8, 8), nominal_lr=0.1, fan_in_scaling="inverse_sqrt")
    assert lopt.lr_adapt == 0.0 and lopt.init(_silent(lopt), PARAMS, 20).lr_offsets is None
    # rate 0 with offsets kept in the state gives the plain update exactly
    adapted = dataclasses.replace(lopt, lr_adapt=1e-30)
    theta = _silent(lopt)
    s0, s1 = lopt.init(theta, PARAMS, 20), adapted.init(theta, PARAMS, 20)
    for t in range(3):
        u0, s0 = lopt.update(theta, _grads(t), s0, PARAMS)
        u1, s1 = adapted.update(theta, _grads(t), s1, PARAMS)
        for k in PARAMS:
            np.testing.assert_allclose(u0[k], u1[k], rtol=1e-6)


def test_offsets_clip_and_ignore_non_finite_agreement():
    assert float(hypergradient.adapt(jnp.float32(6.9), jnp.float32(1.0), 0.5)) == hypergradient.LIMIT
    assert float(hypergradient.adapt(jnp.float32(0.3), jnp.float32(jnp.nan), 0.5)) == pytest.approx(0.3)
    assert float(hypergradient.agreement(jnp.ones(3), jnp.zeros(3))) == 0.0
    assert float(hypergradient.agreement(jnp.ones(3), -2.0 * jnp.ones(3))) == pytest.approx(-1.0)


def test_config_round_trip_and_optax(tmp_path):
    lopt = MLPOptimizer(hidden_sizes=(8, 8), lr_adapt=0.1, loss_decays=(0.9,))
    assert MLPOptimizer.from_config(lopt.to_config()) == lopt
    theta = lopt.init_meta_params(jax.random.key(0))
    path, _ = l2o.save(tmp_path / "hd", lopt, theta)
    loaded, theta2, _ = l2o.load(path)
    assert loaded.lr_adapt == 0.1
    tx = loaded.as_optax(theta2, num_steps=10)
    state = tx.init(PARAMS)
    updates, state = tx.update(_grads(0), state, PARAMS, value=jnp.float32(1.0))
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(updates))


@pytest.mark.parametrize("kwargs, message", [
    ({"lr_adapt": -0.1}, "lr_adapt must be a number in"),
    ({"lr_adapt": "fast"}, "lr_adapt must be a number in"),
    ({"lr_adapt": True}, "lr_adapt must be a number in"),
    ({"lr_adapt": 0.1, "nominal": False}, "needs the nominal term"),
])
def test_bad_lr_adapt_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLPOptimizer(**kwargs)


def test_state_from_an_optimizer_without_adaptation_is_a_clear_error():
    plain, adapted = MLPOptimizer(hidden_sizes=(8,)), MLPOptimizer(hidden_sizes=(8,), lr_adapt=0.1)
    theta = adapted.init_meta_params(jax.random.key(0))
    with pytest.raises(ValueError, match="no lr_offsets"):
        adapted.update(theta, _grads(0), plain.init(theta, PARAMS, 5), PARAMS)
