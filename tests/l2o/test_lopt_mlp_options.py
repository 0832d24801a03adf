"""MLPOptimizer options: per-tensor RMS-normalised learned term, fan-in scaling, named configs."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import l2o
from l2o import MLPOptimizer
from l2o.mlp import fan_in

PARAMS = {
    "conv": 0.2 * jax.random.normal(jax.random.key(1), (3, 3, 2, 4)),
    "dense": {"w": 0.3 * jax.random.normal(jax.random.key(2), (20, 16)), "b": jnp.zeros((16,))},
    "scale": jnp.float32(1.5),
}
FAN_INS = {"conv": 18, "dense/w": 20, "dense/b": 1, "scale": 1}


def _random_theta(lopt, seed=0):
    """Meta-parameters with every weight O(0.5): the network's outputs vary by coordinate."""
    theta = lopt.init_meta_params(jax.random.key(seed))
    leaves, treedef = jax.tree.flatten(theta)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    theta = jax.tree.unflatten(treedef, [0.5 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
    if "log_lr" in theta:
        theta["log_lr"] = jnp.float32(math.log(1e-2))
    return theta


def _grads(step):
    keys = jax.random.split(jax.random.key(10 + step), 4)
    leaves, treedef = jax.tree.flatten(PARAMS)
    return jax.tree.unflatten(treedef, [10.0 ** (i - 2) * jax.random.normal(k, x.shape)
                                        for i, (k, x) in enumerate(zip(keys, leaves))])


def _updates(lopt, theta, steps=3):
    """Updates of each of ``steps`` steps from the same gradients, params held fixed."""
    state, update = lopt.init(theta, PARAMS, 20), jax.jit(lopt.update)
    out = []
    for t in range(steps):
        updates, state = update(theta, _grads(t), state, PARAMS)
        out.append(updates)
    return out


def _by_name(tree):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(x) for path, x in flat}


def test_fan_in_of_kernels_and_vectors():
    assert fan_in((3, 3, 2, 4)) == 18 and fan_in((20, 16)) == 20
    assert fan_in((16,)) == 1 and fan_in(()) == 1


def test_normalized_learned_term_has_rms_step_mult_in_every_tensor():
    """Without the nominal term: update = -step_mult * u / rms_tensor(u), u the raw learned term."""
    plain = MLPOptimizer(nominal=False, exp_mult=0.3, step_mult=0.01)
    normed = dataclasses.replace(plain, normalize_update=True)
    theta = _random_theta(plain)
    for raw, got in zip(_updates(plain, theta), _updates(normed, theta)):
        for name, u in _by_name(raw).items():
            u = u.astype(np.float64) / -plain.step_mult  # the learned term d * exp(exp_mult m)
            want = -plain.step_mult * u / np.sqrt(np.mean(u**2) + 1e-12)
            g = _by_name(got)[name]
            np.testing.assert_allclose(g, want, rtol=2e-5, atol=1e-9, err_msg=name)
            if u.size > 1:
                assert abs(np.sqrt(np.mean(g.astype(np.float64) ** 2)) - plain.step_mult) < 1e-6


def test_normalized_update_keeps_the_nominal_term_and_weight_decay():
    """With the nominal term: update = (nominal + decay) - step_mult * u / rms_tensor(u)."""
    base = MLPOptimizer(weight_decay=0.1, exp_mult=0.3)
    normed = dataclasses.replace(base, normalize_update=True)
    theta = _random_theta(base)
    # step_mult -> 0 leaves the nominal and decay terms; the difference is -step_mult * u.
    nominal_only = dataclasses.replace(base, step_mult=1e-30)
    for full, rest, got in zip(_updates(base, theta), _updates(nominal_only, theta),
                               _updates(normed, theta)):
        for name, r in _by_name(rest).items():
            r = r.astype(np.float64)
            u = (r - _by_name(full)[name]) / base.step_mult
            want = r - base.step_mult * u / np.sqrt(np.mean(u**2) + 1e-12)
            np.testing.assert_allclose(_by_name(got)[name], want, rtol=1e-4,
                                       atol=1e-6 * np.max(np.abs(want)), err_msg=name)


def test_normalized_update_blocked_equals_one_pass():
    lopt = MLPOptimizer(normalize_update=True, fan_in_scaling="inverse_sqrt")
    theta = _random_theta(lopt)
    blocked = _updates(dataclasses.replace(lopt, chunk_size=7), theta)
    whole = _updates(dataclasses.replace(lopt, chunk_size=0), theta)
    for a, b in zip(blocked, whole):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):  # sums in another order
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6 * np.max(np.abs(y)))


@pytest.mark.parametrize("config", [
    {"hidden_sizes": (8, 8)},
    {"hidden_sizes": (16, 4), "normalize_update": True, "fan_in_scaling": "inverse_sqrt",
     "unroll": True},
    {"hidden_sizes": (8,), "nominal": False, "weight_decay": 0.01, "normalize_over": "all"},
])
def test_unrolled_small_network_equals_the_matmul_form(config):
    """Networks no wider than UNROLL_MAX_WIDTH (or with unroll=True) run as scalar
    multiply-adds; the updates and states equal the feature-major matmul form's
    (``unroll=False``, and its blocked one), also under vmap."""
    lopt = MLPOptimizer(**config)
    assert lopt.unrolled
    theta = _random_theta(lopt)
    thetas = jax.tree.map(lambda x: jnp.stack([x, 0.7 * x]), theta)

    def run(lopt):
        state = lopt.init(theta, PARAMS, 20)
        step = jax.jit(jax.vmap(lopt.update, in_axes=(0, None, None, None)))
        updates, states = step(thetas, _grads(0), state, PARAMS)
        return jax.tree.leaves(updates) + jax.tree.leaves(states)

    unrolled = run(lopt)
    assert not dataclasses.replace(lopt, unroll=False).unrolled
    for chunk_size in (0, 7):
        matmul = run(dataclasses.replace(lopt, chunk_size=chunk_size, unroll=False))
        for x, y in zip(unrolled, matmul):  # same sums in another order
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * np.max(np.abs(y)))
        assert any(np.max(np.abs(np.asarray(x))) > 0 for x in unrolled[:4])


def test_unroll_option_forces_either_form():
    """``unroll=True`` unrolls a network wider than UNROLL_MAX_WIDTH (same results as its
    matmul form); anything but None/True/False is a clear error."""
    from l2o import mlp

    wide = MLPOptimizer(hidden_sizes=(mlp.UNROLL_MAX_WIDTH + 4,))
    assert not wide.unrolled and MLPOptimizer(hidden_sizes=(8, 8)).unrolled
    assert not MLPOptimizer(hidden_sizes=(16, 16)).unrolled  # hard to compile unrolled
    forced = dataclasses.replace(wide, unroll=True)
    assert forced.unrolled
    theta = _random_theta(wide)
    got, want = jax.tree.leaves(_updates(forced, theta)), jax.tree.leaves(_updates(wide, theta))
    assert len(got) == len(want) > 0 and any(np.max(np.abs(y)) > 0 for y in want)
    for x, y in zip(got, want):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * np.max(np.abs(y)))
    with pytest.raises(ValueError, match="unroll must be None"):
        MLPOptimizer(unroll="yes")


@pytest.mark.parametrize("scaling, power", [("inverse_sqrt", 0.5), ("inverse", 1.0)])
def test_fan_in_scaling_multiplies_each_tensor_update(scaling, power):
    base = MLPOptimizer(weight_decay=0.05, exp_mult=0.3)
    scaled = dataclasses.replace(base, fan_in_scaling=scaling)
    theta = _random_theta(base)
    for plain, got in zip(_updates(base, theta), _updates(scaled, theta)):
        got = _by_name(got)
        for name, u in _by_name(plain).items():
            np.testing.assert_allclose(got[name], u * FAN_INS[name] ** -power, rtol=1e-6, err_msg=name)


def test_bad_fan_in_scaling_is_rejected():
    with pytest.raises(ValueError, match="fan_in_scaling must be one of .*'inverse_sqrt'.*got 'sqrt'"):
        MLPOptimizer(fan_in_scaling="sqrt")


def test_named_small_configs():
    assert l2o.registry.get("mlp-2x8").hidden_sizes == (8, 8)
    assert l2o.registry.get("mlp-2x16").hidden_sizes == (16, 16)
    lopt = l2o.registry.get("mlp-2x8", normalize_update=True, hidden_sizes=(8, 4))
    assert lopt == MLPOptimizer(hidden_sizes=(8, 4), normalize_update=True)
    assert {"mlp-2x8", "mlp-2x16"} <= set(l2o.registry.all_names())
    assert l2o.registry.to_dict(l2o.registry.get("mlp-2x16"))["architecture"] == "mlp"
    with pytest.raises(KeyError, match="Did you mean 'mlp-2x8'"):
        l2o.registry.get("mlp-2x9")


def test_options_survive_save_and_load(tmp_path):
    lopt = l2o.registry.get("mlp-2x16", normalize_update=True, fan_in_scaling="inverse")
    theta = _random_theta(lopt)
    l2o.save(tmp_path / "opt", lopt, theta, {"note": "options"})
    record = json.loads((tmp_path / "opt.json").read_text())
    config = record["config"] if "config" in record else record["optimizer"]["config"]
    assert config["normalize_update"] is True and config["fan_in_scaling"] == "inverse"
    assert config["hidden_sizes"] == [16, 16]
    loaded = l2o.load(tmp_path / "opt")
    assert loaded.lopt == lopt
    want = _updates(lopt, theta, steps=1)[0]
    got = _updates(loaded.lopt, loaded.theta, steps=1)[0]
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(x, y)
