"""LSTM optimizer options of the generalist recipe: nominal Adam term, fan-in scaling,
progress inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import l2o
from l2o.features import fan_in

PARAMS = {"w": jnp.ones((8, 4)), "b": jnp.zeros((4,))}


def _grads(i):
    return jax.tree.map(
        lambda p: jnp.sin((i + 1) * p + jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape)),
        PARAMS)


def _zero_output(theta):
    return {**theta, "output": jax.tree.map(jnp.zeros_like, theta["output"])}


def test_untrained_nominal_term_is_adam():
    """With the learned output head at zero, the update is Adam(nominal_lr) (lr head starts
    at zero), step for step."""
    lopt = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, nominal_lr=0.01)
    theta = _zero_output(lopt.init_meta_params(jax.random.PRNGKey(0)))
    state = lopt.init(theta, PARAMS, 10)
    adam = optax.adam(0.01, eps=1e-8)
    adam_state = adam.init(PARAMS)
    for i in range(4):
        updates, state = lopt.update(theta, _grads(i), state, PARAMS)
        expected, adam_state = adam.update(_grads(i), adam_state, PARAMS)
        for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)


def test_lr_head_and_log_lr_scale_the_nominal_step():
    lopt = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, nominal_lr=0.01)
    theta = _zero_output(lopt.init_meta_params(jax.random.PRNGKey(0)))
    state = lopt.init(theta, PARAMS, 10)
    base, _ = lopt.update(theta, _grads(0), state, PARAMS)
    doubled = {**theta, "log_lr": theta["log_lr"] + jnp.log(2.0)}
    bigger, _ = lopt.update(doubled, _grads(0), state, PARAMS)
    np.testing.assert_allclose(bigger["w"], 2.0 * base["w"], rtol=1e-5)
    shifted = {**theta, "lr_head": {"w": theta["lr_head"]["w"], "b": jnp.log(3.0)}}
    tripled, _ = lopt.update(shifted, _grads(0), state, PARAMS)
    np.testing.assert_allclose(tripled["w"], 3.0 * base["w"], rtol=1e-5)


@pytest.mark.parametrize("scaling, power", [("inverse_sqrt", 0.5), ("inverse", 1.0)])
def test_fan_in_scaling_multiplies_each_tensors_whole_update(scaling, power):
    theta_key = jax.random.PRNGKey(1)
    plain = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, nominal_lr=0.01)
    scaled = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, nominal_lr=0.01,
                               fan_in_scaling=scaling)
    theta = plain.init_meta_params(theta_key)  # learned head non-zero: both terms scaled
    u_plain, _ = plain.update(theta, _grads(0), plain.init(theta, PARAMS, 5), PARAMS)
    u_scaled, _ = scaled.update(theta, _grads(0), scaled.init(theta, PARAMS, 5), PARAMS)
    assert fan_in((8, 4)) == 8
    np.testing.assert_allclose(u_scaled["w"], u_plain["w"] * 8.0**-power, rtol=1e-5)
    np.testing.assert_allclose(u_scaled["b"], u_plain["b"], rtol=1e-6)  # vectors: fan-in 1


def test_progress_inputs_reach_the_update():
    lopt = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, progress_scales=(1.0, 10.0))
    theta = lopt.init_meta_params(jax.random.PRNGKey(2))
    assert theta["layer_0"]["w_progress"].shape == (2, 16)
    assert lopt.feature_names()[-2:] == ["tanh(1 t/T)", "tanh(10 t/T)"]
    early = lopt.init(theta, PARAMS, 100)
    late = early.replace(step=jnp.int32(90))
    u_early, _ = lopt.update(theta, _grads(0), early, PARAMS)
    u_late, _ = lopt.update(theta, _grads(0), late, PARAMS)
    assert float(jnp.max(jnp.abs(u_early["w"] - u_late["w"]))) > 1e-6
    no_progress = {**theta, "layer_0": {**theta["layer_0"],
                                        "w_progress": jnp.zeros_like(theta["layer_0"]["w_progress"])}}
    a, _ = lopt.update(no_progress, _grads(0), early, PARAMS)
    b, _ = lopt.update(no_progress, _grads(0), late, PARAMS)
    np.testing.assert_array_equal(a["w"], b["w"])


def test_state_size_and_defaults_unchanged():
    """Without the nominal term the state has no Adam accumulators (no extra memory or
    leaves) and the meta-parameters are the plain LSTM's."""
    plain = l2o.LSTMOptimizer(hidden_size=4, num_layers=1)
    theta = plain.init_meta_params(jax.random.PRNGKey(0))
    assert set(theta) == {"layer_0", "output"}
    state = plain.init(theta, PARAMS, 5)
    assert state.adam_m is None and state.adam_v is None
    assert len(jax.tree.leaves(state)) == 5  # step, num_steps, hidden, cell, momentum
    nominal = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, nominal_lr=0.1)
    state = nominal.init(nominal.init_meta_params(jax.random.PRNGKey(0)), PARAMS, 5)
    assert state.adam_m.shape == (36,) and state.adam_v.shape == (36,)


def test_nominal_lstm_round_trips_through_save_and_load(tmp_path):
    lopt = l2o.LSTMOptimizer(hidden_size=4, num_layers=1, nominal_lr=0.05,
                             fan_in_scaling="inverse_sqrt", progress_scales=[1, 10])
    theta = lopt.init_meta_params(jax.random.PRNGKey(0))
    l2o.save(tmp_path / "opt", lopt, theta, {})
    loaded, loaded_theta, _ = l2o.load(tmp_path / "opt")
    assert loaded == lopt
    u1, _ = lopt.update(theta, _grads(0), lopt.init(theta, PARAMS, 5), PARAMS)
    u2, _ = loaded.update(loaded_theta, _grads(0), loaded.init(loaded_theta, PARAMS, 5), PARAMS)
    np.testing.assert_array_equal(u1["w"], u2["w"])


@pytest.mark.parametrize("kwargs, match", [
    ({"nominal_lr": 0.0}, r"nominal_lr must be None or > 0; got 0.0"),
    ({"fan_in_scaling": "sqrt"}, r"fan_in_scaling must be one of \['inverse', 'inverse_sqrt', 'none'\]; got 'sqrt'"),
    ({"progress_scales": (1.0, -2.0)}, r"progress_scales must be positive; got \(1.0, -2.0\)"),
])
def test_bad_options_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        l2o.LSTMOptimizer(**kwargs)
